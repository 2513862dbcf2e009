// `srlm run` against a 3-node JetStream cluster with the run's streams and weights object store at
// 3 replicas: one node, the leader of the results stream, is SIGKILLed while the first iteration
// samples, and the run goes on with the other two to a complete report. The cluster runs with open
// auth: permissions are test/loop/run.test.ts's concern, failover is this one's.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectBus } from "../../bus/connect.ts";
import { bodyOf, decodeEnvelope } from "../../bus/envelope.ts";
import { StageProgress } from "../../bus/messages.ts";
import { weightsBucket } from "../../bus/permissions.ts";
import { subjects } from "../../bus/subjects.ts";
import { type NatsClusterHandle, startNatsCluster } from "../helpers/nats.ts";
import { killAll, SHORT_TINY_RUN, spawnSrlm } from "../helpers/srlm.ts";

const RUN = "cluster";
let dir: string;
let cluster: NatsClusterHandle;
let nc: NatsConnection;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "srlm-cluster-"));
  cluster = await startNatsCluster(3);
  nc = await connectBus({ servers: cluster.urls, name: "cluster-test" });
});

after(async () => {
  killAll();
  await nc?.close();
  await cluster?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("srlm run on a 3-node cluster at 3 replicas completes after the results leader is SIGKILLed", {
  timeout: 600_000,
}, async (t) => {
  const s = subjects(RUN);
  let sampling: () => void = () => {};
  const sampled = new Promise<void>((r) => {
    sampling = r;
  });
  const progress: { at: number; stage: string }[] = [];
  nc.subscribe(s.events, {
    callback: (_err, m) => {
      const d = decodeEnvelope(m.subject, m.data);
      const p = d.ok ? bodyOf(StageProgress, d.msg) : null;
      if (p) progress.push({ at: Date.now(), stage: p.stage });
      if (p && p.stage === "sample" && p.done >= 1) sampling();
    },
  });
  await nc.flush();

  const out = join(dir, "out");
  const started = Date.now();
  const run = spawnSrlm([
    "run",
    "--preset",
    "tiny",
    "--out",
    out,
    "--run",
    RUN,
    "--nats",
    cluster.urls.join(","),
    "--set",
    "nats.replicas=3",
    ...SHORT_TINY_RUN,
  ]);
  const runDied = run.exit.then((code) => {
    throw new Error(`srlm run exited (${code}) before sampling began:\n${run.output()}`);
  });
  runDied.catch(() => {});
  await Promise.race([sampled, runDied]);

  const jsm = await jetstreamManager(nc);
  const results = await jsm.streams.info(s.resultStream);
  for (const stream of [s.workStream, s.resultStream, s.eventStream, `OBJ_${weightsBucket(RUN)}`]) {
    const info = await jsm.streams.info(stream);
    assert.equal(info.config.num_replicas, 3, `${stream} replicas`);
  }
  const leader = results.cluster?.leader ?? "";
  const node = Number(leader.replace(/^n/, ""));
  assert.ok(
    Number.isInteger(node) && node >= 0 && node < 3,
    `results stream leader ${JSON.stringify(leader)}`,
  );
  await cluster.kill(node);
  const killedAt = Date.now();

  const code = await run.exit;
  assert.equal(code, 0, `srlm run failed after node ${leader} was killed:\n${run.output()}`);
  // How long the run stood still: the longest wait between two progress events after the kill.
  let stall = { ms: 0, before: "" };
  const after = progress.filter((p) => p.at >= killedAt);
  for (let i = 1; i < after.length; i++) {
    const ms = after[i].at - after[i - 1].at;
    if (ms > stall.ms) stall = { ms, before: after[i].stage };
  }
  t.diagnostic(
    `killed ${leader} (results leader) ${((killedAt - started) / 1000).toFixed(1)} s into the run; ` +
      `run ended ${((Date.now() - killedAt) / 1000).toFixed(1)} s later; longest wait between progress ` +
      `events after the kill ${(stall.ms / 1000).toFixed(1)} s (before "${stall.before}")`,
  );
  const report = JSON.parse(readFileSync(join(out, "report.json"), "utf8"));
  assert.equal(report.method, "self-rewarding");
  assert.deepEqual(
    report.iterations.map((it: { model: string }) => it.model),
    ["M1", "M2"],
  );
  // Nothing the kill cost went uncounted as lost: every job got its result.
  assert.equal(report.bus.timedOutJobs, 0);
  for (const it of report.iterations) {
    assert.ok(it.heldOutAccuracy >= 0 && it.heldOutAccuracy <= 1, `${it.model} heldOutAccuracy`);
    assert.ok(Number.isFinite(it.judge.pairwiseAccuracy), `${it.model} judge.pairwiseAccuracy`);
  }
  const m2 = report.iterations[1];
  assert.ok(m2.pairs > 0, "M2: no preference pairs were trained");
  assert.ok(m2.dpo && Number.isFinite(m2.dpo.loss), "M2: DPO ran");
  assert.ok(m2.winRateVsPrevious, "M2 has a win rate against M1");
});
