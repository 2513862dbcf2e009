import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectBus } from "../../bus/connect.ts";
import { decodeEnvelope, type Envelope, makeEnvelope } from "../../bus/envelope.ts";
import type { DeadLetterBody } from "../../bus/messages.ts";
import {
  consume,
  enqueue,
  ensureStreams,
  publishResult,
  readResults,
  resultMsgID,
  watchExhaustedJobs,
} from "../../bus/queues.ts";
import { subjects } from "../../bus/subjects.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";
import { TestJob } from "./fixtures/messages.ts";

let server: NatsServerHandle;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
const ctx = (run: string) => ({ run, producer: { actor: "test", instance: "1" } });

before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: [server.url] });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
});

after(async () => {
  await nc.close();
  await server.stop();
});

function until(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  return (async () => {
    while (!(await cond())) {
      if (Date.now() > deadline) throw new Error("condition not met in time");
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
}

function collectDead(run: string): DeadLetterBody[] {
  const dead: DeadLetterBody[] = [];
  nc.subscribe(subjects(run).deadAll, {
    callback: (_err, m) => {
      const d = decodeEnvelope(m.subject, m.data);
      assert.ok(d.ok, "dead letters are valid messages themselves");
      dead.push(d.msg.body as DeadLetterBody);
    },
  });
  return dead;
}

test("bad messages are dead-lettered with a reason, counted, term()'d, and do not stop the consumer", async () => {
  const run = "dl";
  await ensureStreams(jsm, run);
  const dead = collectDead(run);
  const s = subjects(run);
  const seen: number[] = [];
  const h = await consume(js, run, "judge", async (msg) => {
    seen.push((msg.body as { n: number }).n);
  });
  await js.publish(s.work("judge"), new Uint8Array([0xc1, 0xff, 0x00]));
  await js.publish(s.work("judge"), new TextEncoder().encode("not msgpack at all"));
  const wrong = makeEnvelope(TestJob, { n: 1, sleepMs: 0 }, ctx(run)) as Envelope;
  await js.publish(
    s.work("judge"),
    (await import("../../bus/codec.ts")).encode({ ...wrong, body: { n: "x" } }),
  );
  await enqueue(js, run, "judge", makeEnvelope(TestJob, { n: 7, sleepMs: 0 }, ctx(run)));
  await until(() => dead.length === 3 && seen.length === 1);
  await h.stop();
  assert.deepEqual(seen, [7]);
  assert.equal(h.stats.deadLettered, 3);
  assert.equal(h.stats.processed, 1);
  assert.match(dead[0].reason, /bad msgpack/);
  assert.match(dead[2].reason, /bad test\.job body/);
  assert.deepEqual(Array.from(dead[0].raw), [0xc1, 0xff, 0x00]);
  assert.equal(dead[0].subject, s.work("judge"));
  // term() is processed by the server after the dead letter was already seen.
  await until(async () => (await jsm.streams.info(s.workStream)).state.messages === 0);
  const events = await jsm.streams.info(s.eventStream);
  assert.equal(events.state.messages, 3, "dead letters are kept in the EVENTS stream");
});

test("a failing job is retried with backoff, then dead-lettered with its last error after max_deliver", async () => {
  const run = "retry";
  // The run's owner sets the retry policy; a worker started with other settings leaves it alone.
  await ensureStreams(jsm, run, { maxDeliver: 3, ackWaitMs: 5000 });
  const dead = collectDead(run);
  const deliveries: number[] = [];
  const h = await consume(
    js,
    run,
    "judge",
    async (_msg, ctl) => {
      deliveries.push(ctl.deliveryCount);
      throw new Error(`boom ${ctl.deliveryCount}`);
    },
    { maxDeliver: 7, ackWaitMs: 30_000, nakDelayMs: () => 50 },
  );
  const { config } = await jsm.consumers.info(subjects(run).workStream, subjects(run).workConsumer("judge"));
  assert.equal(config.max_deliver, 3, "a worker's defaults do not override the run's max_deliver");
  await enqueue(js, run, "judge", makeEnvelope(TestJob, { n: 1, sleepMs: 0 }, ctx(run)));
  await until(() => dead.length === 1);
  await h.stop();
  assert.deepEqual(deliveries, [1, 2, 3]);
  assert.match(dead[0].reason, /failed on all 3 deliveries; last error: boom 3/);
  assert.equal(h.stats.failed, 3);
  await until(async () => (await jsm.streams.info(subjects(run).workStream)).state.messages === 0);
});

test("results published twice with the same msgID are stored once, and readResults resumes by sequence", async () => {
  const run = "res";
  await ensureStreams(jsm, run);
  const jobs = [0, 1, 2, 3].map((n) => makeEnvelope(TestJob, { n, sleepMs: 0 }, ctx(run)));
  for (const job of jobs) {
    for (let attempt = 0; attempt < 2; attempt++) {
      const result = makeEnvelope(TestJob, job.body, ctx(run));
      const ack = await publishResult(js, run, "scores", result, resultMsgID(job.id));
      assert.equal(ack.duplicate, attempt === 1);
    }
  }
  const reader = await readResults(js, run, "scores");
  const got: Array<{ seq: number; n: number }> = [];
  for await (const r of reader) {
    got.push({ seq: r.seq, n: (r.msg.body as { n: number }).n });
    if (got.length === 4) break;
  }
  await reader.stop();
  assert.deepEqual(
    got.map((g) => g.n),
    [0, 1, 2, 3],
  );
  const resumed = await readResults(js, run, "scores", { fromSeq: got[1].seq + 1 });
  const rest: number[] = [];
  for await (const r of resumed) {
    rest.push((r.msg.body as { n: number }).n);
    if (rest.length === 2) break;
  }
  await resumed.stop();
  assert.deepEqual(rest, [2, 3]);
});

test("stop() lets an in-flight job finish and acks it", async () => {
  const run = "stop";
  await ensureStreams(jsm, run);
  let finished = false;
  const h = await consume(js, run, "samples", async () => {
    await new Promise((r) => setTimeout(r, 300));
    finished = true;
  });
  await enqueue(js, run, "samples", makeEnvelope(TestJob, { n: 1, sleepMs: 0 }, ctx(run)));
  await until(() => h.stats.inFlight === 1);
  await h.stop();
  assert.ok(finished);
  assert.equal(h.stats.processed, 1);
  // The ack reaches the server asynchronously.
  await until(async () => {
    const lag = await h.lag();
    return lag.pending === 0 && lag.ackPending === 0;
  });
});

test("connectBus names the URL and the fix when no server listens", async () => {
  await assert.rejects(
    connectBus({ servers: ["nats://127.0.0.1:1"] }),
    (err: Error) =>
      /nats:\/\/127\.0\.0\.1:1/.test(err.message) &&
      /nats-server -js/.test(err.message) &&
      /SRLM_NATS_URL/.test(err.message),
  );
});

test("a job whose holder dies on its last delivery is dead-lettered from the server's advisory", async () => {
  const run = "exhausted";
  await ensureStreams(jsm, run, { ackWaitMs: 1000, maxDeliver: 1 });
  const dead = collectDead(run);
  const s = subjects(run);
  const watcher = watchExhaustedJobs(nc, jsm, { js, ...ctx(run) });
  const job = makeEnvelope(TestJob, { n: 42, sleepMs: 0 }, ctx(run));
  await enqueue(js, run, "judge", job);
  // A holder that takes the job and never acks or naks it: what a SIGKILLed process leaves.
  const consumer = await js.consumers.get(s.workStream, s.workConsumer("judge"));
  const held = await consumer.next({ expires: 2000 });
  assert.ok(held, "the job was delivered once");
  // The server notices the exhausted job when it would redeliver it, i.e. to a waiting pull.
  const other = consumer.next({ expires: 5000 });
  await until(() => dead.length === 1);
  assert.equal(await other, null, "the job is never delivered again");
  watcher.stop();
  assert.match(dead[0].reason, /exhausted its 1 deliveries/);
  const decoded = decodeEnvelope(dead[0].subject, dead[0].raw);
  assert.ok(decoded.ok && decoded.msg.id === job.id, "the dead letter carries the job itself");
  await until(async () => (await jsm.streams.info(s.workStream)).state.messages === 0);
});
