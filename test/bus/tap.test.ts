import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { runActor } from "../../bus/actor.ts";
import { connectBus } from "../../bus/connect.ts";
import { encodeEnvelope, makeEnvelope } from "../../bus/envelope.ts";
import { Metrics, WeightsPublished } from "../../bus/messages.ts";
import { enqueue, ensureStreams } from "../../bus/queues.ts";
import { busStatus } from "../../bus/status.ts";
import { subjects } from "../../bus/subjects.ts";
import { subjectSubset, tap } from "../../bus/tap.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";
import { TestJob } from "./fixtures/messages.ts";

let server: NatsServerHandle;
let nc: NatsConnection;
let js: JetStreamClient;
const producer = { actor: "test", instance: "1" };

before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: [server.url] });
  js = jetstream(nc);
  await ensureStreams(await jetstreamManager(nc), "tap");
});

after(async () => {
  await nc.close();
  await server.stop();
});

async function lines(n: number, out: string[], ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (out.length < n) {
    if (Date.now() > deadline) throw new Error(`expected ${n} lines, got ${out.length}: ${out.join("\n")}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("live tap prints each message as one JSON line, typed arrays summarized, bad bytes flagged", async () => {
  const out: string[] = [];
  const stop = await tap(nc, "srlm.tap.>", { out: (l) => out.push(l) });
  const payload = new Float32Array(1000).map((_, i) => i);
  const job = makeEnvelope(
    TestJob,
    { n: 3, sleepMs: 0, payload },
    { run: "tap", producer, policyVersion: 2 },
  );
  await enqueue(js, "tap", "judge", job);
  nc.publish(subjects("tap").metrics, new Uint8Array([0xc1]));
  await lines(2, out);
  await stop();
  const first = JSON.parse(out[0]);
  assert.equal(first.subject, "srlm.tap.work.judge");
  assert.equal(first.type, "test.job");
  assert.equal(first.policyVersion, 2);
  assert.deepEqual(first.body.payload, { dtype: "float32", length: 1000, head: [0, 1, 2, 3, 4, 5, 6, 7] });
  const second = JSON.parse(out[1]);
  assert.match(second.invalid, /bad msgpack/);
});

test("tap --raw prints base64, and --since replays the run's streams", async () => {
  const s = subjects("tap");
  const w = makeEnvelope(
    WeightsPublished,
    { version: 1, bucket: "b", name: "v1", digest: "d", bytes: 4 },
    { run: "tap", producer },
  );
  await js.publish(s.weights, encodeEnvelope(w));
  await js.publish(
    s.metrics,
    encodeEnvelope(makeEnvelope(Metrics, { step: 1, values: { loss: 0.5 } }, { run: "tap", producer })),
  );

  const replay: string[] = [];
  const stop = await tap(nc, "srlm.tap.weights", { since: "5m", out: (l) => replay.push(l) });
  await lines(1, replay);
  await stop();
  const line = JSON.parse(replay[0]);
  assert.equal(line.type, "weights.published");
  assert.equal(line.body.version, 1);
  assert.equal(typeof line.seq, "number");

  const raw: string[] = [];
  const stopRaw = await tap(nc, "srlm.tap.metrics", { since: 1, raw: true, out: (l) => raw.push(l) });
  await lines(1, raw);
  await stopRaw();
  const r = JSON.parse(raw[0]);
  assert.ok(typeof r.raw === "string" && r.raw.length > 0);
  await assert.rejects(tap(nc, "srlm.*.metrics", { since: "5m", out: () => {} }), /inside one run/);
  await assert.rejects(tap(nc, "srlm.tap.>", { since: "yesterday", out: () => {} }), /neither a duration/);
});

test("subjectSubset follows NATS wildcards", () => {
  assert.ok(subjectSubset("srlm.r.result.scores", "srlm.r.result.>"));
  assert.ok(subjectSubset("srlm.r.dead", "srlm.r.*"));
  assert.ok(!subjectSubset("srlm.r.>", "srlm.r.result.>"));
  assert.ok(!subjectSubset("srlm.r", "srlm.r.>"));
});

test("busStatus finds a running actor through the services API, with its stats and queue depths", async () => {
  const actor = await runActor({
    actor: "judge",
    impl: "test",
    instance: "i1",
    run: "tap",
    version: "0.0.1",
    bus: { servers: [server.url] },
    handleSignals: false,
    log: (await import("pino")).pino({ level: "silent" }),
    async start(ctx) {
      await ctx.consume("judge", async () => {}, { pullExpiresMs: 1000 });
    },
  });
  // Something waiting in another queue, for the depth figures.
  await enqueue(js, "tap", "samples", makeEnvelope(TestJob, { n: 1, sleepMs: 0 }, { run: "tap", producer }));
  const st = await busStatus(nc, "tap", { waitMs: 500 });
  await actor.stop();
  assert.equal(st.actors.length, 1);
  assert.equal(st.actors[0].service, "srlm-judge");
  assert.equal(st.actors[0].impl, "test");
  assert.equal(st.actors[0].instance, "i1");
  assert.equal(typeof st.actors[0].stats?.processed, "number");
  assert.ok("idleMs" in (st.actors[0].stats ?? {}));
  const samples = st.queues.find((q) => q.queue === "samples")!;
  assert.equal(samples.pending, 1);
  assert.ok(st.streams.some((x) => x.name === "SRLM_tap_WORK"));
  assert.equal((await busStatus(nc, "other", { waitMs: 300 })).actors.length, 0);
});
