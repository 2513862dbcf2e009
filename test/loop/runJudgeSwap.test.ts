// The judge swapped inside a whole `srlm run`, as the README's judge section tells a user to do it:
// the run's server comes from `srlm nats-config` (the embedded one admits nothing from outside),
// `srlm run --set actors.judges=0` starts no judge of its own, and the user's `self` judge
// process scores until M1's evaluation has begun; then it is stopped and an `openai` judge, on
// `srlm serve` over the run's own M1 checkpoint, takes its place. The trainer never restarts, the
// run completes, and its report says which judge scored what, matching the results on the bus.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import type { JudgeIdentityCount, JudgeUse } from "../../actors/trainer/judgeUse.ts";
import { connectBus } from "../../bus/connect.ts";
import { bodyOf, decodeEnvelope } from "../../bus/envelope.ts";
import { ActorEvent, ScoresResult, StageProgress } from "../../bus/messages.ts";
import { inboxPrefix } from "../../bus/permissions.ts";
import { subjects } from "../../bus/subjects.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";
import { killAll, runSrlm, SHORT_TINY_RUN, type SrlmProcess, spawnSrlm } from "../helpers/srlm.ts";

const RUN = "runswap";
const KEY = "sk-swap-secret-9e2b";

let dir: string;
let keys: string;
let out: string;
let server: NatsServerHandle;
let nc: NatsConnection;
// What a reader sees on the bus: who published each result, in order, and the trainer's progress.
const scored: {
  impl: string;
  instance: string;
  model?: string;
  endpoint?: string;
  weightsVersion?: number;
}[] = [];
const trainerStarts: string[] = [];
let judgeEvalDone: () => void = () => {};
const m1JudgeEvalDone = new Promise<void>((r) => {
  judgeEvalDone = r;
});

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "srlm-runswap-"));
  keys = join(dir, "keys");
  out = join(dir, "out");
  const made = await runSrlm(["nats-config", "--run", RUN, "--out", keys]);
  assert.equal(made.code, 0, made.stderr);
  // The accounts block as written, in the test's own server config (nats includes are relative).
  server = await startNatsServer({ conf: readFileSync(join(keys, "accounts.conf"), "utf8") });
  // A reader, as `srlm tap` connects: it may see every subject of the run and publish none.
  nc = await connectBus({
    servers: [server.url],
    nkeySeed: readFileSync(join(keys, "reader.nk"), "utf8").trim(),
    inboxPrefix: inboxPrefix(RUN, "reader"),
  });
  const s = subjects(RUN);
  nc.subscribe(s.events, {
    callback: (_err, m) => {
      const d = decodeEnvelope(m.subject, m.data);
      if (!d.ok) return;
      const p = bodyOf(StageProgress, d.msg);
      // Fired as each judge-set job of M1's evaluation settles: the self judge has answered one.
      if (p && p.stage === "eval M1" && p.detail === "judge agreement" && p.done >= 1) judgeEvalDone();
      const e = bodyOf(ActorEvent, d.msg);
      if (e?.actor === "trainer" && e.event === "started") trainerStarts.push(e.instance);
    },
  });
  nc.subscribe(s.result("scores"), {
    callback: (_err, m) => {
      const d = decodeEnvelope(m.subject, m.data);
      const r = d.ok ? bodyOf(ScoresResult, d.msg) : null;
      if (r) scored.push(r.judge);
    },
  });
  await nc.flush();
});

after(async () => {
  killAll();
  await nc?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const bus = () => ["--nats", server.url, "--run", RUN, "--set", `nats.keysDir=${keys}`];

async function exited(p: SrlmProcess, who: string): Promise<void> {
  assert.equal(await p.exit, 0, `${who} exit\n${p.output()}`);
}

/** Resolves once `url` answers a chat request (the checkpoint has loaded); 503 until then. */
async function ready(url: string, serve: SrlmProcess): Promise<void> {
  for (;;) {
    const res = await fetch(`${url}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ model: "M1", messages: [{ role: "user", content: "x" }], max_tokens: 1 }),
    });
    if (res.status === 200) return;
    assert.equal(res.status, 503, await res.text());
    if (serve.proc.exitCode !== null) assert.fail(`serve exited:\n${serve.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test("srlm run: the self judge swapped for an openai judge on srlm serve; the report names who scored", {
  timeout: 900_000,
}, async () => {
  const selfJudge = spawnSrlm(["actor", "judge", "--impl", "self", "--instance", "judge-self", ...bus()]);
  const run = spawnSrlm([
    "run",
    "--preset",
    "tiny",
    "--out",
    out,
    ...bus(),
    "--set",
    "actors.judges=0",
    ...SHORT_TINY_RUN,
    // An HTTP judge on a shared 2-core host holds a job longer than the tiny preset's 10 s.
    "--set",
    "actors.ackWaitMs=120000",
  ]);
  const runDied = run.exit.then((code) => {
    throw new Error(`srlm run exited (${code}) before M1's evaluation:\n${run.output()}`);
  });
  runDied.catch(() => {});
  await Promise.race([m1JudgeEvalDone, runDied]);

  // 1. The self judge stops: it drains what it holds and exits. Jobs wait in the queue meanwhile.
  selfJudge.proc.kill("SIGTERM");
  await exited(selfJudge, "self judge");

  // 2. M1, the checkpoint the run just wrote, served over HTTP and judging through it.
  const serve = spawnSrlm(
    ["serve", "--model", join(out, "checkpoints", "M1"), "--port", "0", "--api-key-env", "SERVE_KEY"],
    { SERVE_KEY: KEY },
  );
  const { url, model } = await serve.jsonLine<{ url: string; model: string }>(
    (x) => typeof x.url === "string",
  );
  assert.equal(model, "M1");
  await ready(url, serve);
  const endpoint = new URL(url).host;
  const httpJudge = spawnSrlm(
    [
      "actor",
      "judge",
      "--impl",
      "openai",
      "--instance",
      "judge-openai",
      ...bus(),
      "--set",
      `judge.openai.baseUrl=${url}`,
      "--set",
      `judge.openai.model=${model}`,
      "--set",
      "judge.openai.apiKeyEnv=SERVE_KEY",
    ],
    { SERVE_KEY: KEY },
  );

  await exited(run, "srlm run");
  assert.match(run.output(), /actors\.judges=0: no judge started/);
  httpJudge.proc.kill("SIGTERM");
  serve.proc.kill("SIGTERM");
  await exited(httpJudge, "openai judge");
  await exited(serve, "serve");
  assert.deepEqual(trainerStarts, ["t0"], "one trainer, never restarted");

  // On the bus: the self judge's results, then (it had exited before the other started) only the
  // openai judge's, naming its model and endpoint and no srlm weights.
  const who = (j: (typeof scored)[number]) =>
    [j.impl, j.instance, j.model ?? "-", j.endpoint ?? "-", j.weightsVersion ?? "-"].join(" ");
  const selfResults = scored.filter((j) => j.impl === "self").length;
  assert.ok(selfResults >= 1 && scored.length > selfResults, `results by ${scored.map(who)}`);
  assert.deepEqual(scored.map(who), [
    ...Array(selfResults).fill("self judge-self - - 1"),
    ...Array(scored.length - selfResults).fill(`openai judge-openai M1 ${endpoint} -`),
  ]);

  const report = JSON.parse(readFileSync(join(out, "report.json"), "utf8"));
  assert.deepEqual(
    report.iterations.map((it: { model: string }) => it.model),
    ["M1", "M2"],
  );
  const [m1, m2] = report.iterations as { judges: JudgeUse; pairs: number }[];
  const id = (j: JudgeIdentityCount) => [j.impl, j.model, j.endpoint, j.instances.join(",")].join(" ");
  // M1's evaluation: the self judge, then the openai judge for the jobs left in the queue.
  const m1Self = m1.judges.identities.filter((j) => j.impl === "self");
  assert.deepEqual(m1Self.map(id), ["self   judge-self"]);
  assert.equal(m1Self[0].results, selfResults);
  for (const j of m1.judges.identities.filter((j) => j.impl !== "self"))
    assert.equal(id(j), `openai M1 ${endpoint} judge-openai`);
  // Iteration 1 was judged by the openai judge alone, training and evaluation, and trained on it.
  assert.deepEqual(m2.judges.identities.map(id), [`openai M1 ${endpoint} judge-openai`]);
  assert.deepEqual(Object.keys(m2.judges.identities[0].byStage).sort(), ["eval M2", "judge"]);
  assert.ok(m2.pairs > 0, "the openai judge's scores formed pairs");
  // The report's counts are the results on the bus, each counted once.
  const counted = (impl: string) =>
    report.iterations
      .flatMap((it: { judges: JudgeUse }) => it.judges.identities)
      .filter((j: JudgeIdentityCount) => j.impl === impl)
      .reduce((a: number, j: JudgeIdentityCount) => a + j.results, 0);
  assert.equal(counted("self"), selfResults);
  assert.equal(counted("openai"), scored.length - selfResults);
  assert.deepEqual(m2.judges.ab, [], "no A/B judging ran");

  const summary = readFileSync(join(out, "summary.txt"), "utf8");
  assert.match(summary, new RegExp(`judges M2: openai M1 at ${endpoint} \\d+ jobs \\(judge-openai\\)`));
  // The key the openai judge sent never reaches the report, the summary or any log.
  for (const text of [
    JSON.stringify(report),
    summary,
    ...readdirSync(join(out, "logs")).map((f) => readFileSync(join(out, "logs", f), "utf8")),
    selfJudge.output(),
    httpJudge.output(),
    run.output(),
  ])
    assert.ok(!text.includes(KEY), "the API key leaked");
});
