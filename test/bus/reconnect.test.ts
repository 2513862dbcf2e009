// A nats-server restarted on its port and file store mid-run: the trainer's JobBoard (ordered result
// consumers) and a worker's work-queue consumer, each on its own connection as in separate
// processes, must come back without losing or repeating a job. The time from the server accepting
// again to the jobs settling is printed (a diagnostic, not an assertion: it depends on the machine).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { JobBoard, type JobOutcome } from "../../actors/trainer/jobs.ts";
import { connectBus } from "../../bus/connect.ts";
import { makeEnvelope } from "../../bus/envelope.ts";
import type { PromptsResultBody } from "../../bus/messages.ts";
import { consume, ensureStreams, publishResult, resultMsgID } from "../../bus/queues.ts";
import { subjects } from "../../bus/subjects.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";

const run = "restart";
let server: NatsServerHandle;
let trainerNc: NatsConnection;
let workerNc: NatsConnection;

before(async () => {
  server = await startNatsServer();
  trainerNc = await connectBus({ servers: [server.url], name: "trainer" });
  workerNc = await connectBus({ servers: [server.url], name: "worker" });
});
after(async () => {
  await trainerNc?.close();
  await workerNc?.close();
  await server?.stop();
});

const weights = { version: 1, bucket: "b", name: "v1", digest: `sha256:${"0".repeat(64)}` };
const sampling = { temperature: 0, topP: 1, topK: 0, maxNewTokens: 4, seed: 0 };
const job = (tag: string) => ({
  iteration: 0,
  inputs: [tag],
  format: "plain" as const,
  weights,
  sampling,
});

type Outcome = JobOutcome<PromptsResultBody>;

test("jobs submitted before, across and after a server restart all settle once, none lost", async (t) => {
  const js: JetStreamClient = jetstream(trainerNc);
  const wjs: JetStreamClient = jetstream(workerNc);
  await ensureStreams(await jetstreamManager(trainerNc), run);
  // The deadline only turns a hang into failed outcomes the assertions below name.
  const board = await JobBoard.open(
    trainerNc,
    js,
    run,
    { actor: "trainer", instance: "t" },
    { timeoutMs: 100_000 },
  );
  const handled = new Map<string, number>();
  let slow = 0;
  const worker = await consume(
    wjs,
    run,
    "prompts",
    async (msg) => {
      handled.set(msg.id, (handled.get(msg.id) ?? 0) + 1);
      if (slow > 0) await new Promise((r) => setTimeout(r, slow));
      const input = (msg.body as { inputs: string[] }).inputs[0];
      const body: PromptsResultBody = { jobId: msg.id, iteration: 0, texts: [`answer to ${input}`] };
      const env = makeEnvelope("result.prompts", body, {
        run,
        producer: { actor: "generator", instance: "g" },
      });
      await publishResult(wjs, run, "prompts", env, resultMsgID(msg.id));
    },
    { ensure: false },
  );
  try {
    const tags: string[] = [];
    const outcomes: Promise<Outcome>[] = [];
    // A publish while the client is still reconnecting (or JetStream still recovering) fails or
    // times out; it is tried again as a new job, as the trainer's stage would.
    const submit = (tag: string): Promise<Outcome> => {
      const outcome = (async () => {
        for (;;) {
          try {
            return await board.submit("prompts", job(tag));
          } catch {
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      })();
      tags.push(tag);
      outcomes.push(outcome);
      return outcome;
    };
    for (let i = 0; i < 10; i++) submit(`before-${i}`);
    assert.ok(
      (await Promise.all(outcomes)).every((o) => o.ok),
      "jobs before the restart settle",
    );

    // Jobs queued and in flight while the server goes away: the worker is slowed so that they wait.
    slow = 200;
    for (let i = 0; i < 10; i++) submit(`across-${i}`);
    const jsm = await jetstreamManager(trainerNc);
    const s = subjects(run);
    while ((await jsm.streams.info(s.workStream)).state.last_seq < 20)
      await new Promise((r) => setTimeout(r, 20));
    await server.restart();
    const back = Date.now();
    slow = 0;
    const firstAfter = submit("after-0").then((o) => ({ o, at: Date.now() }));
    for (let i = 1; i < 10; i++) submit(`after-${i}`);
    const all = await Promise.all(outcomes);
    const settled = Date.now();
    const first = await firstAfter;
    t.diagnostic(
      `recovery after the restart: first new job settled after ${((first.at - back) / 1000).toFixed(2)} s, ` +
        `every job after ${((settled - back) / 1000).toFixed(2)} s`,
    );

    const failed = all.flatMap((o, i) => (o.ok ? [] : [`${tags[i]}: ${o.reason}`]));
    assert.deepEqual(failed, [], "every job settles with its result");
    // Each job got the answer to its own input, not another's.
    assert.deepEqual(
      all.map((o) => (o.ok ? o.result.texts[0] : null)),
      tags.map((tag) => `answer to ${tag}`),
    );
    // One stored result per job: a job redelivered across the restart is de-duplicated.
    assert.ok(first.o.ok, first.o.ok ? "" : first.o.reason);
    // One stored result per job handled, however often it was handled (a job redelivered across
    // the restart is de-duplicated by its msgID).
    const info = await jsm.streams.info(s.resultStream);
    assert.equal(info.state.messages, handled.size);
    const ids = new Set(all.map((o) => (o.ok ? o.result.jobId : "")));
    assert.equal(ids.size, tags.length, "no two jobs settled with the same result");
  } finally {
    await worker.stop();
    await board.close();
  }
});
