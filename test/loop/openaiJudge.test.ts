// The judge swapped for an HTTP one mid-run: the trainer's JobBoard and the nats-server stay up
// while a `self` judge process is stopped and an `openai` judge takes its place, scoring through
// `srlm serve`, which follows the run's published weights. Greedy judging makes the two judges'
// work comparable: the same weights and the same plain prompt format give the same judgements,
// so the swap changes who scored, and the results say so, but not what was scored.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { disposePolicy, type Policy, policyToBlob, samplePolicy } from "../../actors/policy.ts";
import { JobBoard, type JobOutcome } from "../../actors/trainer/jobs.ts";
import { connectBus } from "../../bus/connect.ts";
import { encodeEnvelope, makeEnvelope } from "../../bus/envelope.ts";
import {
  type JudgeJobBody,
  type ScoresResultBody,
  type WeightRef,
  WeightsPublished,
} from "../../bus/messages.ts";
import { putBlob } from "../../bus/objects.ts";
import { ensureStreams } from "../../bus/queues.ts";
import { subjects } from "../../bus/subjects.ts";
import { selectBackend } from "../../model/backend.ts";
import { presetConfig } from "../../model/config.ts";
import { Llama } from "../../model/llama.ts";
import { CharTokenizer } from "../../model/tokenizer.ts";
import { DOMAIN_CHARSET, judgePrompt } from "../../tasks/index.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";
import { killAll, type SrlmProcess, spawnSrlm } from "../helpers/srlm.ts";

const RUN = "openaijudge";
const ACK_WAIT_MS = 120_000;
const SAMPLES = 2;
const KEY = "sk-serve-secret-4c1d";
const GREEDY = { temperature: 0, topP: 1, topK: 0, maxNewTokens: 12, seed: 0 };
const ITEMS = [
  { prompt: "Reverse: garden", candidates: ["nedrag", "garden"] },
  { prompt: "Uppercase: lamp", candidates: ["LAMP", "lamp", "LAM"] },
];

let server: NatsServerHandle;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let board: JobBoard;
const tokenizer = new CharTokenizer(DOMAIN_CHARSET);
const policies = new Map<number, Policy>();
const refs = new Map<number, WeightRef>();

before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: [server.url] });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  await ensureStreams(jsm, RUN, { ackWaitMs: ACK_WAIT_MS });
  await selectBackend("cpu", { info() {} });
  board = await JobBoard.open(nc, js, RUN, { actor: "trainer", instance: "test" });
});

after(async () => {
  killAll();
  for (const p of policies.values()) disposePolicy(p);
  await board?.close();
  await nc?.close();
  await server?.stop();
});

/** Publishes weights as the trainer does: the blob in the object store, then the announcement. */
async function publishWeights(version: number, seed: number): Promise<WeightRef> {
  const policy: Policy = { version, model: Llama.init(presetConfig("tiny", tokenizer), { seed }), tokenizer };
  policies.set(version, policy);
  const ref = await putBlob(nc, `srlm-${RUN}-weights`, `v${version}`, policyToBlob(policy));
  const weights = { version, bucket: ref.bucket, name: ref.name, digest: ref.digest };
  const env = makeEnvelope(
    WeightsPublished,
    { ...weights, bytes: ref.bytes },
    {
      run: RUN,
      producer: { actor: "trainer", instance: "test" },
    },
  );
  await js.publish(subjects(RUN).weights, encodeEnvelope(env));
  refs.set(version, weights);
  return weights;
}

function jobs(weights: WeightRef): JudgeJobBody[] {
  return ITEMS.map((item) => ({
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
    sampling: GREEDY,
  }));
}

const common = ["--nats", "", "--run", RUN, "--backend", "cpu", "--set", `actors.ackWaitMs=${ACK_WAIT_MS}`];
const withNats = () => common.map((a, i) => (i === 1 ? server.url : a));

function judge(impl: string, instance: string, extra: string[] = []): SrlmProcess {
  return spawnSrlm(["actor", "judge", "--impl", impl, "--instance", instance, ...withNats(), ...extra], {
    SERVE_KEY: KEY,
  });
}

async function answered<T>(outcomes: Promise<T>, p: SrlmProcess, who: string): Promise<T> {
  const died = p.exit.then((code) => {
    throw new Error(`${who} exited (${code}) before answering:\n${p.output()}`);
  });
  died.catch(() => {});
  return Promise.race([outcomes, died]);
}

function ok(o: JobOutcome<ScoresResultBody>, p: SrlmProcess): ScoresResultBody {
  if (!o.ok) assert.fail(`judge job ${o.jobId} failed: ${o.reason}\n${p.output()}`);
  return o.result;
}

interface ChatAnswer {
  system_fingerprint: string;
  choices: { message: { content: string } }[];
}

async function chat(url: string, content: string, key = KEY): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({
      model: `srlm-${RUN}`,
      messages: [{ role: "user", content }],
      temperature: 0,
      max_tokens: GREEDY.maxNewTokens,
    }),
  });
  return { status: res.status, body: await res.json() };
}

const greedyText = (version: number, prompt: string) =>
  samplePolicy(policies.get(version)!, [prompt], 1, GREEDY, "plain")[0].samples[0].text;

test("a self judge swapped for an openai judge on srlm serve: same board, same judgements, new identity", {
  timeout: 300_000,
}, async () => {
  // srlm serve follows the run before any weights exist: it answers 503 until the first ones come.
  const serve = spawnSrlm(["serve", "--port", "0", "--api-key-env", "SERVE_KEY", ...withNats()], {
    SERVE_KEY: KEY,
  });
  const { url, model } = await serve.jsonLine<{ url: string; model: string }>(
    (x) => typeof x.url === "string",
  );
  assert.equal(model, `srlm-${RUN}`);
  const early = await chat(url, "hello");
  assert.equal(early.status, 503, JSON.stringify(early.body));
  assert.match(JSON.stringify(early.body), /no weights have been published on run openaijudge/);

  const v1 = await publishWeights(1, 3);

  // 1. The self judge answers the board's first jobs with the published weights.
  const self = judge("self", "judge-self");
  const first = await answered(board.submitAll("judge", jobs(v1)), self, "self judge");
  const selfResults = first.map((o) => ok(o, self));
  for (const r of selfResults) {
    assert.equal(r.judge.impl, "self");
    assert.equal(r.judge.weightsVersion, 1);
    assert.equal(r.judge.model, undefined);
  }
  self.proc.kill("SIGTERM");
  assert.equal(await self.exit, 0, `self judge exit\n${self.output()}`);

  // 2. Jobs submitted while no judge runs wait in the queue for the openai judge.
  const pending = board.submitAll("judge", jobs(v1));
  const http = judge("openai", "judge-openai", [
    "--set",
    `judge.openai.baseUrl=${url}`,
    "--set",
    `judge.openai.model=${model}`,
    "--set",
    "judge.openai.apiKeyEnv=SERVE_KEY",
  ]);
  const second = await answered(pending, http, "openai judge");
  const port = new URL(url).host;
  second.forEach((o, i) => {
    const r = ok(o, http);
    assert.equal(r.judge.impl, "openai");
    assert.equal(r.judge.instance, "judge-openai");
    assert.equal(r.judge.model, `srlm-${RUN}`);
    assert.equal(r.judge.endpoint, port);
    assert.equal(r.judge.weightsVersion, undefined, "an HTTP judge names no srlm weights version");
    // Same weights, same rendering, greedy: the judgements agree with the self judge's.
    assert.deepEqual(r.scores, selfResults[i].scores);
    assert.equal(r.parseFailures, selfResults[i].parseFailures);
    assert.equal(r.judgements, ITEMS[i].candidates.length * SAMPLES);
    assert.equal(r.parseFailures, r.scores.flat().filter((s) => s === null).length);
  });
  assert.ok(!nc.isClosed(), "the submitting side never restarted");

  // What the openai judge read is what the self judge would have written for that prompt.
  const prompt = jobs(v1)[0].judgePrompts[0];
  const viaServe = (await chat(url, prompt)).body as ChatAnswer;
  assert.equal(viaServe.system_fingerprint, "srlm-v1");
  assert.equal(viaServe.choices[0].message.content, greedyText(1, prompt));

  // 3. New weights reach the server without a restart.
  await publishWeights(2, 99);
  assert.notEqual(greedyText(2, prompt), greedyText(1, prompt), "v2 answers differently from v1");
  let now: ChatAnswer | undefined;
  for (let i = 0; i < 100 && now?.system_fingerprint !== "srlm-v2"; i++) {
    now = (await chat(url, prompt)).body as ChatAnswer;
    if (now.system_fingerprint !== "srlm-v2") await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(now?.system_fingerprint, "srlm-v2", `serve did not pick up v2:\n${serve.output()}`);
  assert.equal(now?.choices[0].message.content, greedyText(2, prompt));

  // A wrong key is refused; the right one never shows up in any output or result.
  assert.equal((await chat(url, "x", "sk-wrong")).status, 401);
  http.proc.kill("SIGTERM");
  serve.proc.kill("SIGTERM");
  assert.equal(await http.exit, 0, `openai judge exit\n${http.output()}`);
  assert.equal(await serve.exit, 0, `serve exit\n${serve.output()}`);
  for (const [who, p] of [
    ["self judge", self],
    ["openai judge", http],
    ["serve", serve],
  ] as const) {
    assert.ok(!p.output().includes(KEY), `${who}'s output holds the API key`);
  }
  assert.ok(!JSON.stringify(second).includes(KEY));
  assert.equal((await jsm.streams.info(subjects(RUN).workStream)).state.messages, 0, "every job was acked");
});
