// The trainer's JobBoard never waits forever: a job past its deadline settles as failed, naming
// the queue and the timeout, and results for jobs nobody waits on are kept only up to a bound.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { JobBoard } from "../../actors/trainer/jobs.ts";
import { connectBus } from "../../bus/connect.ts";
import { makeEnvelope } from "../../bus/envelope.ts";
import type { PromptsResultBody } from "../../bus/messages.ts";
import { consume, ensureStreams, publishResult, resultMsgID } from "../../bus/queues.ts";
import { subjects } from "../../bus/subjects.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";

const producer = { actor: "trainer", instance: "test" };
let server: NatsServerHandle;
let nc: NatsConnection;
let js: JetStreamClient;

before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: [server.url] });
  js = jetstream(nc);
});
after(async () => {
  await nc?.close();
  await server?.stop();
});

const weights = { version: 1, bucket: "b", name: "v1", digest: `sha256:${"0".repeat(64)}` };
const sampling = { temperature: 0, topP: 1, topK: 0, maxNewTokens: 4, seed: 0 };
const promptsJob = { iteration: 0, inputs: ["Write|a|b|"], format: "plain" as const, weights, sampling };

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test("a job nobody answers settles as failed at its deadline, naming queue and timeout", async () => {
  const run = "deadline";
  await ensureStreams(await jetstreamManager(nc), run);
  const board = await JobBoard.open(nc, js, run, producer, { timeoutMs: 300 });
  try {
    const started = Date.now();
    const outcome = await board.submit("prompts", promptsJob);
    assert.equal(outcome.ok, false);
    if (outcome.ok) return;
    assert.match(
      outcome.reason,
      /^job \S+ on queue prompts got no result within 300 ms \(actors\.jobTimeoutMs\)$/,
    );
    assert.ok(Date.now() - started >= 290, "not before the deadline");
    assert.equal(board.counts.timedOut, 1);
  } finally {
    await board.close();
  }
});

test("a job answered in time is not failed later by its deadline", async () => {
  const run = "answered";
  await ensureStreams(await jetstreamManager(nc), run);
  const board = await JobBoard.open(nc, js, run, producer, { timeoutMs: 500 });
  const worker = await consume(js, run, "prompts", async (msg) => {
    const body: PromptsResultBody = { jobId: msg.id, iteration: 0, texts: ["new prompt"] };
    const env = makeEnvelope("result.prompts", body, {
      run,
      producer: { actor: "generator", instance: "g" },
    });
    await publishResult(js, run, "prompts", env, resultMsgID(msg.id));
  });
  try {
    const outcome = await board.submit("prompts", promptsJob);
    assert.ok(outcome.ok, outcome.ok ? "" : outcome.reason);
    assert.deepEqual(outcome.result.texts, ["new prompt"]);
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(board.counts.timedOut, 0);
  } finally {
    await worker.stop();
    await board.close();
  }
});

test("results for unknown jobs are bounded: the oldest beyond the limit are dropped and counted", async () => {
  const run = "early";
  await ensureStreams(await jetstreamManager(nc), run);
  const board = await JobBoard.open(nc, js, run, producer, { earlyLimit: 2 });
  try {
    for (let i = 0; i < 5; i++) {
      const body: PromptsResultBody = { jobId: `stranger-${i}`, iteration: 0, texts: [] };
      const env = makeEnvelope("result.prompts", body, {
        run,
        producer: { actor: "generator", instance: "g" },
      });
      await publishResult(js, run, "prompts", env, resultMsgID(body.jobId));
    }
    await until("three drops", () => board.counts.earlyDropped === 3);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(board.counts.earlyDropped, 3, "only what exceeds the bound is dropped");
  } finally {
    await board.close();
  }
});

test("a dead letter fails a job only when the role that works its queue (or the trainer) sent it", async () => {
  const run = "deadrole";
  // One delivery: a failing handler dead-letters the job at once.
  await ensureStreams(await jetstreamManager(nc), run, { maxDeliver: 1 });
  const judgeLetters: string[] = [];
  nc.subscribe(subjects(run).deadOf("judge"), {
    callback: (_e, m) => {
      judgeLetters.push(m.subject);
    },
  });
  const board = await JobBoard.open(nc, js, run, producer, { timeoutMs: 60_000 });
  // Each job is dead-lettered as soon as it is enqueued, by whoever `by` names.
  const letterFrom = (by: string) =>
    consume(
      js,
      run,
      "prompts",
      async () => {
        throw new Error(`failed at the ${by}`);
      },
      { producer: { actor: by, instance: "x" }, maxDeliver: 1 },
    );
  try {
    const judge = await letterFrom("judge");
    let settled = false;
    const forged = board.submit("prompts", promptsJob).then((o) => {
      settled = true;
      return o;
    });
    await until("the judge's dead letter", () => judgeLetters.length === 1);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(settled, false, "a judge's dead letter failed a generator's job");
    await judge.stop();
    // The same kind of letter from the generator settles a fresh job at once.
    const generator = await letterFrom("generator");
    const outcome = await board.submit("prompts", promptsJob);
    assert.equal(outcome.ok, false);
    assert.match(outcome.ok ? "" : outcome.reason, /failed at the generator/);
    await generator.stop();
    void forged;
  } finally {
    await board.close();
  }
});
