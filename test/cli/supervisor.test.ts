// The supervisor keeps crashing actors running for the whole run, within a restart budget, and
// says which role is down once it cannot. The actors here are tiny `node -e` scripts.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { type ActorCommand, type ActorSpec, type Restart, Supervisor } from "../../cli/supervisor.ts";

const logDir = mkdtempSync(join(tmpdir(), "srlm-supervisor-"));
after(() => rmSync(logDir, { recursive: true, force: true }));

const script =
  (code: string): ActorCommand =>
  () => ({ command: process.execPath, args: ["-e", code] });
const sleeper = script("setInterval(() => {}, 1000)");
const crasher = script("process.exit(3)");

const spec = (actor: string, instance = "0"): ActorSpec => ({ actor, instance, configFile: "unused" });

async function until<T>(what: string, probe: () => T | undefined, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("an instance killed more often than the old fixed limit of 5 is restarted every time", async () => {
  const restarts: Restart[] = [];
  const downs: string[] = [];
  const sup = new Supervisor(
    logDir,
    { onExit: (_s, _c, _sig, r) => r && restarts.push(r), onRoleDown: (role) => downs.push(role) },
    { command: sleeper, policy: { baseDelayMs: 10, maxDelayMs: 40, budget: 50, windowMs: 60_000 } },
  );
  try {
    sup.start(spec("generator"));
    let pid = await until("first pid", () => sup.pids()["generator/0"]);
    for (let kill = 1; kill <= 8; kill++) {
      process.kill(pid, "SIGKILL");
      const previous = pid;
      pid = await until(`restart after kill ${kill}`, () => {
        const now = sup.pids()["generator/0"];
        return now !== undefined && now !== previous ? now : undefined;
      });
    }
    assert.equal(restarts.length, 8);
    // Backoff doubles from the base and stops at the cap.
    assert.deepEqual(
      restarts.slice(0, 4).map((r) => r.delayMs),
      [10, 20, 40, 40],
    );
    assert.deepEqual(downs, []);
  } finally {
    await sup.stopAll(2000);
  }
});

test("a crash loop spends the budget and the role is reported down, by name", async () => {
  const restarts: Restart[] = [];
  const gaveUp: string[] = [];
  let down: { role: string; reason: string } | undefined;
  const sup = new Supervisor(
    logDir,
    {
      onExit: (_s, _c, _sig, r) => r && restarts.push(r),
      onGiveUp: (_s, reason) => gaveUp.push(reason),
      onRoleDown: (role, reason) => {
        down = { role, reason };
      },
    },
    {
      command: (s) => (s.actor === "judge" ? crasher(s) : sleeper(s)),
      policy: { baseDelayMs: 5, maxDelayMs: 20, budget: 3, windowMs: 60_000, roleDownMs: 60_000 },
    },
  );
  try {
    sup.start(spec("judge"));
    sup.start(spec("reference"));
    const verdict = await until("role down", () => down);
    assert.equal(verdict.role, "judge");
    assert.match(verdict.reason, /every judge instance crashed past its restart budget/);
    assert.equal(restarts.length, 3, "restarted exactly `budget` times");
    assert.equal(gaveUp.length, 1);
    assert.match(gaveUp[0], /judge\/0 crashed after 3 restarts within 60 s/);
    assert.ok(sup.pids()["reference/0"], "the healthy role keeps running");
  } finally {
    await sup.stopAll(2000);
  }
});

test("a role with no running instance for roleDownMs is down even with budget left", async () => {
  let down: { role: string; reason: string } | undefined;
  const sup = new Supervisor(
    logDir,
    {
      onRoleDown: (role, reason) => {
        down = { role, reason };
      },
    },
    { command: crasher, policy: { baseDelayMs: 5000, budget: 100, roleDownMs: 300 } },
  );
  try {
    const started = Date.now();
    sup.start(spec("reference"));
    const verdict = await until("role down", () => down);
    assert.equal(verdict.role, "reference");
    assert.match(verdict.reason, /no reference instance has been running for 0.3 s \(actors.roleDownMs\)/);
    assert.ok(Date.now() - started < 4000, "reported before the first restart was even due");
  } finally {
    await sup.stopAll(2000);
  }
});

test("a clean exit or a stop is not a crash: nothing restarts, no role is down", async () => {
  const restarts: Restart[] = [];
  const downs: string[] = [];
  const sup = new Supervisor(
    logDir,
    { onExit: (_s, _c, _sig, r) => r && restarts.push(r), onRoleDown: (role) => downs.push(role) },
    { command: sleeper, policy: { baseDelayMs: 5, roleDownMs: 100 } },
  );
  sup.start(spec("generator"));
  await until("pid", () => sup.pids()["generator/0"]);
  await sup.stopAll(2000);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(restarts, []);
  assert.deepEqual(downs, []);
});
