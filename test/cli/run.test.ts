// `srlm run` as a whole, with the actors replaced by small scripts: it fails, naming the role, when
// a role is down; it fails, saying so, when its embedded nats-server dies; and the config it hands
// the actors holds no secret, which they get through their environment instead; and a run told to
// start no judge of its own is refused where no judge of the user's could join it.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { runLoop } from "../../cli/run.ts";
import type { ActorCommand } from "../../cli/supervisor.ts";
import { loadConfig } from "../../config/load.ts";
import { startNatsServer } from "../helpers/nats.ts";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function config(extra: Record<string, unknown> = {}) {
  const out = mkdtempSync(join(tmpdir(), "srlm-runloop-"));
  dirs.push(out);
  return loadConfig({ env: {}, flags: { out, run: "fake", "nats.url": "", ...extra } });
}

// Each fake actor writes the credentials it was given next to the config, then idles; `crash` ones exit 1.
const fakeActors =
  (crash: string[] = []): ActorCommand =>
  (spec) => ({
    command: process.execPath,
    args: [
      "-e",
      crash.includes(spec.actor)
        ? "process.exit(1)"
        : `const e = process.env;
           require("node:fs").writeFileSync(process.argv[1], e.SRLM_NATS__PASS ?? "<none>");
           require("node:fs").writeFileSync(process.argv[1] + ".seed", e.SRLM_NATS__NKEY_SEED ?? "<none>");
           setInterval(() => {}, 1000);`,
      `${spec.configFile}.${spec.actor}-${spec.instance}.pass`,
    ],
  });

test("a role that keeps crashing fails the run with a message naming it", async () => {
  // A server of the user's own with a password: the actors must get it, through their environment.
  const server = await startNatsServer({ conf: "authorization { user: alice, password: hunter2 }" });
  after(() => server.stop());
  const cfg = config({
    "nats.url": server.url,
    "nats.user": "alice",
    "nats.pass": "hunter2",
    "actors.restartBudget": 2,
    "actors.restartWindowMs": 60_000,
  });
  const lines: string[] = [];
  const code = await runLoop(cfg, { command: fakeActors(["generator"]), say: (l) => lines.push(l) });
  assert.equal(code, 1);
  const text = lines.join("\n");
  assert.match(
    text,
    /generator\/g0 exited \(code 1\), restarting in 0\.3 s \(restart 1 of at most 2 within 60 s\)/,
  );
  assert.match(
    text,
    /the run failed: the generator role is down: every generator instance crashed past its restart budget/,
  );

  const configFile = join(cfg.out, "config.json");
  assert.equal(statSync(configFile).mode & 0o777, 0o600, "config.json is private");
  const stored = readFileSync(configFile, "utf8");
  assert.ok(!stored.includes("hunter2"), `the password is in ${configFile}`);
  assert.equal(JSON.parse(stored).nats.user, "alice");
  const passFile = `${configFile}.reference-r0.pass`;
  assert.ok(existsSync(passFile), "the reference actor ran");
  assert.equal(
    readFileSync(passFile, "utf8"),
    "hunter2",
    "the actor got the password through its environment",
  );
});

test("with the embedded server each actor gets its own role's key, in its environment only", async () => {
  const cfg = config({ "nats.user": "alice", "nats.pass": "hunter2" });
  const lines: string[] = [];
  let stopAt: () => void = () => {};
  const stopped = new Promise<void>((r) => {
    stopAt = r;
  });
  const running = runLoop(cfg, {
    command: fakeActors(),
    say: (l) => lines.push(l),
    onNats: (nats) => {
      // Once the actors had time to start, end the run the way a dead bus does.
      setTimeout(() => {
        process.kill(nats.pid, "SIGKILL");
        stopAt();
      }, 3000);
    },
  });
  await stopped;
  assert.equal(await running, 1);
  assert.match(lines.join("\n"), /one user per role/);
  const configFile = join(cfg.out, "config.json");
  const stored = readFileSync(configFile, "utf8");
  const seeds = new Map<string, string>();
  for (const who of ["reference-r0", "generator-g0", "judge-j0", "trainer-t0"]) {
    const base = `${configFile}.${who}.pass`;
    assert.equal(
      readFileSync(base, "utf8"),
      "<none>",
      `${who} got the config's password for a server it is not for`,
    );
    const seed = readFileSync(`${base}.seed`, "utf8");
    assert.match(seed, /^SU[A-Z2-7]{56}$/, `${who} got no nkey seed`);
    assert.ok(!stored.includes(seed), `${who}'s seed is in ${configFile}`);
    seeds.set(who, seed);
  }
  assert.equal(new Set(seeds.values()).size, 4, "every role has a key of its own");
  assert.ok(!JSON.parse(stored).nats.user, "the embedded server's actors do not carry the config's user");
});

test("the embedded nats-server dying fails the run instead of hanging it", async () => {
  const cfg = config();
  const lines: string[] = [];
  let natsPid = 0;
  const started = Date.now();
  const code = await runLoop(cfg, {
    command: fakeActors(),
    say: (l) => lines.push(l),
    onNats: (nats) => {
      natsPid = nats.pid;
      setTimeout(() => process.kill(nats.pid, "SIGKILL"), 500);
    },
  });
  assert.ok(natsPid > 0);
  assert.equal(code, 1);
  assert.match(
    lines.join("\n"),
    new RegExp(
      `the run failed: the embedded nats-server \\(pid ${natsPid}, port \\d+\\) exited .*cannot go on without its bus`,
    ),
  );
  assert.ok(Date.now() - started < 20_000, "noticed within seconds");
});

test("no judge of its own with the embedded server is refused: no outside judge could join it", async () => {
  const cfg = config({ "actors.judges": 0 });
  await assert.rejects(
    runLoop(cfg, { command: fakeActors(), say: () => {} }),
    /actors\.judges=0 starts no judge, and no judge of your own can join the embedded nats-server: .*srlm nats-config --run fake/,
  );
});

test("a fresh run sets an earlier resume point aside; --resume without one is refused", async () => {
  const cfg = config();
  writeFileSync(join(cfg.out, "resume.json"), "{}");
  await assert.rejects(
    runLoop(config(), {}, { resume: true }),
    /--resume: .* holds no resume point \(.*resume\.json\)/,
  );
  const lines: string[] = [];
  const code = await runLoop(cfg, {
    command: fakeActors(),
    say: (l) => lines.push(l),
    onNats: (nats) => {
      setTimeout(() => process.kill(nats.pid, "SIGKILL"), 500);
    },
  });
  assert.equal(code, 1);
  const said = lines.find((l) =>
    /starting run fake over; the earlier run's resume point was moved to/.test(l),
  );
  assert.ok(said, lines.join("\n"));
  assert.equal(existsSync(join(cfg.out, "resume.json")), false);
  assert.ok(readdirSync(cfg.out).some((f) => /^resume\.set-aside-.*\.json$/.test(f)));
});
