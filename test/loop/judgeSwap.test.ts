// Swapping judges while the loop runs: the submitting side (the trainer's JobBoard) and the
// nats-server stay up while one judge process (`srlm actor judge --impl verifier`) is stopped and
// another (`--impl ab`) takes its place. Jobs submitted meanwhile wait in the durable queue and are
// answered by the new judge, which scores with the policy and the verifier and reports both.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { disposePolicy, type Policy, policyToBlob } from "../../actors/policy.ts";
import { JobBoard, type JobOutcome } from "../../actors/trainer/jobs.ts";
import { connectBus } from "../../bus/connect.ts";
import { decodeEnvelope } from "../../bus/envelope.ts";
import type { ActorEventBody, JudgeJobBody, ScoresResultBody, WeightRef } from "../../bus/messages.ts";
import { putBlob } from "../../bus/objects.ts";
import { ensureStreams } from "../../bus/queues.ts";
import { subjects } from "../../bus/subjects.ts";
import { selectBackend } from "../../model/backend.ts";
import { presetConfig } from "../../model/config.ts";
import { Llama } from "../../model/llama.ts";
import { CharTokenizer } from "../../model/tokenizer.ts";
import { DOMAIN_CHARSET, judgePrompt, pairwiseAccuracy, trueScore } from "../../tasks/index.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";

const SRLM = fileURLToPath(new URL("../../bin/srlm.js", import.meta.url));
const RUN = "judgeswap";
// Generous: the CI host may have 2 busy cores. A job is never redelivered within this test.
const ACK_WAIT_MS = 120_000;
const SAMPLES = 2;

// Valid task prompts with candidates of different true scores (5 is the exact answer).
const ITEMS: { prompt: string; candidates: string[] }[] = [
  { prompt: "Reverse: garden", candidates: ["nedrag", "garden", ""] },
  { prompt: "Sort the letters: table", candidates: ["abelt", "table", "abel"] },
  { prompt: "Uppercase: lamp", candidates: ["LAMP", "lamp", "LAM"] },
];

let server: NatsServerHandle;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let board: JobBoard;
let weights: WeightRef;
let eventsSub: Subscription;
const events: ActorEventBody[] = [];
const children = new Set<ChildProcess>();

before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: [server.url] });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, RUN, { ackWaitMs: ACK_WAIT_MS });
  eventsSub = nc.subscribe(subjects(RUN).events, {
    callback: (_err, m) => {
      const d = decodeEnvelope(m.subject, m.data);
      if (d.ok && d.msg.type === "actor.event") events.push(d.msg.body as ActorEventBody);
    },
  });

  // A random-weight policy, published as the trainer publishes M1 (actors/trainer/schedule.ts).
  await selectBackend("cpu", { info() {} });
  const tokenizer = new CharTokenizer(DOMAIN_CHARSET);
  const policy: Policy = {
    version: 1,
    model: Llama.init(presetConfig("tiny", tokenizer), { seed: 3 }),
    tokenizer,
  };
  const ref = await putBlob(nc, `srlm-${RUN}-weights`, "v1", policyToBlob(policy));
  disposePolicy(policy);
  weights = { version: 1, bucket: ref.bucket, name: ref.name, digest: ref.digest };

  // The submitting side: the trainer's own job board, open for the whole file.
  board = await JobBoard.open(nc, js, RUN, { actor: "trainer", instance: "test" });
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await board?.close();
  eventsSub?.unsubscribe();
  await nc?.close();
  await server?.stop();
});

interface Judge {
  proc: ChildProcess;
  instance: string;
  exit: Promise<number | null>;
  output(): string;
}

function startJudge(impl: string, instance: string): Judge {
  const proc = spawn(
    process.execPath,
    [
      SRLM,
      "actor",
      "judge",
      "--impl",
      impl,
      "--instance",
      instance,
      "--nats",
      server.url,
      "--run",
      RUN,
      "--backend",
      "cpu",
      "--set",
      `actors.ackWaitMs=${ACK_WAIT_MS}`,
    ],
    { env: { ...process.env, SRLM_LOG_LEVEL: "info" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  children.add(proc);
  let out = "";
  const keep = (c: Buffer) => {
    out = (out + c.toString()).slice(-8000);
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
  const exit = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  return { proc, instance, exit, output: () => out };
}

/** Waits for an actor event of `judge` (it may arrive a moment after the process exited). */
async function waitForEvent(judge: Judge, event: ActorEventBody["event"], ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!events.some((e) => e.actor === "judge" && e.instance === judge.instance && e.event === event)) {
    if (Date.now() > deadline) {
      throw new Error(`judge ${judge.instance}: no "${event}" event; its output:\n${judge.output()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

function jobs(seed: number): JudgeJobBody[] {
  return ITEMS.map((item, i) => ({
    iteration: 1,
    purpose: "eval",
    task: "synthetic",
    prompt: item.prompt,
    candidates: item.candidates,
    judgePrompts: item.candidates.map((c) => judgePrompt(item.prompt, c)),
    format: "plain",
    parser: "first-line",
    samples: SAMPLES,
    weights,
    sampling: { temperature: 1, topP: 1, topK: 0, maxNewTokens: 16, seed: seed + i },
  }));
}

const truth = (item: { prompt: string; candidates: string[] }) =>
  item.candidates.map((c) => trueScore(item.prompt, c).score);

/** Outcomes of submitted jobs; fails at once, with the judge's output, if the judge dies first. */
async function answered<T>(outcomes: Promise<T>, judge: Judge): Promise<T> {
  const died = judge.exit.then((code) => {
    throw new Error(`judge ${judge.instance} exited (${code}) before answering:\n${judge.output()}`);
  });
  died.catch(() => {});
  return Promise.race([outcomes, died]);
}

/** The result of a job that must have succeeded, and the instance that published it. */
function okResult(o: JobOutcome<ScoresResultBody>, judge: Judge): ScoresResultBody {
  if (!o.ok) assert.fail(`judge job ${o.jobId} failed: ${o.reason}\n${judge.output()}`);
  return o.result;
}

test("a judge swapped from verifier to ab mid-run answers the same board; A/B reports both judges", {
  timeout: 120_000,
}, async () => {
  // The fixture's candidates really are told apart by the rubric.
  for (const item of ITEMS) {
    const t = truth(item);
    assert.equal(t[0], 5, `${item.prompt}: the exact answer scores 5`);
    assert.ok(new Set(t).size > 1, `${item.prompt}: candidates of different true scores`);
  }

  // 1. The verifier judge: exact rubric scores, no model, no weights version.
  const verifier = startJudge("verifier", "judge-verifier");
  const first = await answered(board.submitAll("judge", jobs(10)), verifier);
  first.forEach((o, i) => {
    const r = okResult(o, verifier);
    assert.equal(r.judge.impl, "verifier");
    assert.equal(r.judge.instance, "judge-verifier");
    assert.equal(r.judge.weightsVersion, undefined);
    assert.equal(r.prompt, ITEMS[i].prompt);
    assert.deepEqual(
      r.scores,
      truth(ITEMS[i]).map((s) => Array(SAMPLES).fill(s)),
    );
    assert.equal(r.parseFailures, 0);
    assert.equal(r.judgements, ITEMS[i].candidates.length * SAMPLES);
    assert.equal(r.secondary, undefined);
    assert.equal(r.texts, undefined, "the verifier writes no judgement");
  });

  // 2. Stop it: it drains and exits 0. Nothing else restarts: same server, same connection, same board.
  verifier.proc.kill("SIGTERM");
  assert.equal(await verifier.exit, 0, `verifier judge exit\n${verifier.output()}`);
  await waitForEvent(verifier, "stopped");

  // Jobs submitted while no judge runs wait in the durable queue…
  const pending = board.submitAll("judge", jobs(20));
  // …until a judge of another implementation starts in the old one's place.
  const ab = startJudge("ab", "judge-ab");
  const second = await answered(pending, ab);
  assert.ok(!nc.isClosed(), "the submitting side kept its connection");

  const primaryMeans: number[][] = [];
  const secondaryMeans: number[][] = [];
  let failures = 0;
  second.forEach((o, i) => {
    const item = ITEMS[i];
    const r = okResult(o, ab);
    assert.equal(r.judge.impl, "ab:self+verifier");
    assert.equal(r.judge.instance, "judge-ab", "answered by the new process");
    assert.equal(r.judge.weightsVersion, 1, "the self judge used the published weights");
    assert.equal(r.prompt, item.prompt);
    // The second judge: the verifier's mean per candidate, i.e. the true score.
    assert.equal(r.secondary?.impl, "verifier");
    assert.deepEqual(r.secondary?.means, truth(item));
    // The self judge: one entry per candidate and sample; an unparsable judgement is null and counted.
    assert.equal(r.judgements, item.candidates.length * SAMPLES);
    assert.equal(r.scores.length, item.candidates.length);
    // What the self judge wrote travels with its scores, for whoever taps result.scores.
    assert.deepEqual(
      r.texts?.map((t) => t.length),
      item.candidates.map(() => SAMPLES),
    );
    for (const samples of r.scores) {
      assert.equal(samples.length, SAMPLES);
      for (const s of samples)
        assert.ok(s === null || (Number.isInteger(s) && s >= 0 && s <= 5), `score ${s}`);
    }
    const nulls = r.scores.flat().filter((s) => s === null).length;
    assert.equal(r.parseFailures, nulls, "every unparsable judgement is counted");
    failures += r.parseFailures;
    primaryMeans.push(
      r.scores.map((samples) => {
        const valid = samples.filter((x): x is number => x !== null);
        return valid.length ? valid.reduce((a, b) => a + b, 0) / valid.length : Number.NaN;
      }),
    );
    secondaryMeans.push((r.secondary?.means ?? []).map((m) => m ?? Number.NaN));
  });
  // A random-weight model almost never ends a line in "Score: N": its failures are reported, not dropped.
  assert.ok(failures > 0, "the random policy's unparsable judgements were counted");

  // Agreement of the two judges, computed as the trainer's evaluation does (ab.pairwiseAgreement).
  const agreement = pairwiseAccuracy(primaryMeans, secondaryMeans);
  assert.ok(agreement.pairs > 0);
  assert.ok(agreement.accuracy >= 0 && agreement.accuracy <= 1);
  // Pairs the primary judge left unscored (a candidate with no parsed judgement) are counted as such.
  let unscored = 0;
  secondaryMeans.forEach((t, g) => {
    for (let i = 0; i < t.length; i++)
      for (let j = i + 1; j < t.length; j++)
        if (t[i] !== t[j] && !(Number.isFinite(primaryMeans[g][i]) && Number.isFinite(primaryMeans[g][j])))
          unscored++;
  });
  assert.equal(agreement.unjudged, unscored);

  ab.proc.kill("SIGTERM");
  assert.equal(await ab.exit, 0, `ab judge exit\n${ab.output()}`);
  await waitForEvent(ab, "stopped");
  // Acks go out after the result; once the judge has drained, every job is acked and gone.
  assert.equal((await jsm.streams.info(subjects(RUN).workStream)).state.messages, 0);
  // Exactly two judge processes ran, one after the other, each announcing its implementation.
  const lifecycle = events
    .filter((e) => e.event === "started" || e.event === "stopped")
    .map((e) => `${e.event} ${e.instance} ${e.impl}`);
  assert.deepEqual(lifecycle, [
    "started judge-verifier verifier",
    "stopped judge-verifier verifier",
    "started judge-ab ab",
    "stopped judge-ab ab",
  ]);
});
