// The openai judge against an endpoint that misbehaves: a local HTTP server answers 429s, 500s,
// 400s, malformed JSON, one choice where n were asked for, or nothing at all. Retryable failures
// are retried with backoff; a job whose requests keep failing is nak'd, redelivered and finally
// dead-lettered with the status and body in its reason, and never scored; the judge process
// stays up throughout and answers good jobs after bad ones. The API key, which the fake server
// echoes back in its error bodies, never appears in a reason or in the judge's output.
import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { JobBoard, type JobOutcome } from "../../actors/trainer/jobs.ts";
import { connectBus } from "../../bus/connect.ts";
import { decodeEnvelope } from "../../bus/envelope.ts";
import type { ActorEventBody, DeadLetterBody, JudgeJobBody, ScoresResultBody } from "../../bus/messages.ts";
import { ensureStreams } from "../../bus/queues.ts";
import { subjects } from "../../bus/subjects.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";
import { killAll, spawnSrlm } from "../helpers/srlm.ts";

const RUN = "openaifaults";
const KEY = "sk-fault-secret-77aa";
const SAMPLES = 3;
const MAX_DELIVER = 2;
const RETRIES = 2;
const TIMEOUT_MS = 400;

let nats: NatsServerHandle;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let board: JobBoard;
let http: Server;
let baseUrl: string;
const subs: Subscription[] = [];
const dead: DeadLetterBody[] = [];
const events: ActorEventBody[] = [];

// Requests the fake endpoint saw, by case and candidate: the n and seed each asked for.
const seen = new Map<string, { n: number; seed: number; auth: string | undefined }[]>();
const hung: ServerResponse[] = [];

function reply(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}) {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(body);
}

const completion = (texts: string[]) =>
  JSON.stringify({
    id: "x",
    object: "chat.completion",
    choices: texts.map((t, index) => ({
      index,
      message: { role: "assistant", content: t },
      finish_reason: "stop",
    })),
  });

function handle(req: IncomingMessage, res: ServerResponse, raw: string) {
  const body = JSON.parse(raw) as { n: number; seed: number; messages: { content: string }[] };
  const content = body.messages[0].content;
  const [, kase, candidate] = /case=(\w+) c=(\d+)/.exec(content) ?? [];
  const key = `${kase}/${candidate}`;
  const list = seen.get(key) ?? [];
  list.push({ n: body.n, seed: body.seed, auth: req.headers.authorization });
  seen.set(key, list);
  const texts = (score: number) => Array.from({ length: body.n }, () => `Fine work. Score: ${score}`);
  switch (kase) {
    case "ok":
      return reply(res, 200, completion(texts(5)));
    case "flaky":
      // Two 429s (the second with Retry-After), then an answer.
      if (list.length === 1) return reply(res, 429, '{"error":{"message":"slow down"}}');
      if (list.length === 2)
        return reply(res, 429, '{"error":{"message":"slow down"}}', { "retry-after": "0" });
      return reply(res, 200, completion(texts(4)));
    case "ignoresn":
      return reply(res, 200, completion([`Score: ${Number(candidate) + 1}`]));
    case "unparsable":
      return reply(res, 200, completion(Array.from({ length: body.n }, () => "no verdict")));
    case "always500":
      return reply(
        res,
        500,
        JSON.stringify({ error: { message: `boom; you sent ${req.headers.authorization}` } }),
      );
    case "malformed":
      return reply(res, 200, "{not json");
    case "bad400":
      return reply(res, 400, '{"error":{"message":"max_tokens is too large","param":"max_tokens"}}');
    case "hang":
      hung.push(res);
      return;
  }
  reply(res, 404, `{"error":{"message":"unknown case ${kase}"}}`);
}

before(async () => {
  http = createServer((req, res) => {
    let raw = "";
    req.on("data", (c: Buffer) => {
      raw += c.toString();
    });
    req.on("end", () => handle(req, res, raw));
  });
  await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
  baseUrl = `http://127.0.0.1:${(http.address() as AddressInfo).port}/v1`;

  nats = await startNatsServer();
  nc = await connectBus({ servers: [nats.url] });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
  // The trainer owns the run's retry settings: two deliveries per job.
  await ensureStreams(jsm, RUN, { ackWaitMs: 60_000, maxDeliver: MAX_DELIVER });
  const s = subjects(RUN);
  const on = (subject: string, keep: (type: string, body: unknown) => void) =>
    subs.push(
      nc.subscribe(subject, {
        callback: (_e, m) => {
          const d = decodeEnvelope(m.subject, m.data);
          if (d.ok) keep(d.msg.type, d.msg.body);
        },
      }),
    );
  on(s.deadAll, (type, body) => type === "dead.letter" && dead.push(body as DeadLetterBody));
  on(s.events, (type, body) => type === "actor.event" && events.push(body as ActorEventBody));
  board = await JobBoard.open(nc, js, RUN, { actor: "trainer", instance: "test" });
});

after(async () => {
  killAll();
  for (const res of hung) res.destroy();
  http?.closeAllConnections();
  await new Promise((r) => http?.close(r));
  for (const s of subs) s.unsubscribe();
  await board?.close();
  await nc?.close();
  await nats?.stop();
});

function job(kase: string, candidates = 2): JudgeJobBody {
  const names = Array.from({ length: candidates }, (_, c) => `answer ${c}`);
  return {
    iteration: 1,
    purpose: "train",
    task: "synthetic",
    prompt: `prompt for ${kase}`,
    candidates: names,
    judgePrompts: names.map((_, c) => `Judge this. case=${kase} c=${c}`),
    format: "chat",
    parser: "last-score",
    samples: SAMPLES,
    // An HTTP judge never loads these; the job still names the run's weights, as the trainer's do.
    weights: { version: 1, bucket: "b", name: "v1", digest: `sha256:${"0".repeat(64)}` },
    sampling: { temperature: 0.7, topP: 0.9, topK: 0, maxNewTokens: 64, seed: 100 },
  };
}

const failure = (o: JobOutcome<ScoresResultBody>): string => {
  assert.equal(o.ok, false, `expected the job to fail, it was scored: ${JSON.stringify(o)}`);
  return (o as { reason: string }).reason;
};

test("retries, naks and dead letters against a misbehaving endpoint; the judge survives them all", {
  timeout: 180_000,
}, async () => {
  const judge = spawnSrlm(
    [
      "actor",
      "judge",
      "--impl",
      "openai",
      "--instance",
      "judge-faults",
      "--nats",
      nats.url,
      "--run",
      RUN,
      "--set",
      `judge.openai.baseUrl=${baseUrl}`,
      "--set",
      "judge.openai.model=fake-model",
      "--set",
      "judge.openai.apiKeyEnv=FAKE_KEY",
      "--set",
      `judge.openai.retries=${RETRIES}`,
      "--set",
      "judge.openai.backoffMs=20",
      "--set",
      `judge.openai.timeoutMs=${TIMEOUT_MS}`,
      "--set",
      `actors.maxDeliver=${MAX_DELIVER}`,
    ],
    { FAKE_KEY: KEY },
  );
  const kases = ["ok", "flaky", "ignoresn", "unparsable", "always500", "malformed", "bad400", "hang"];
  const outcomes = await Promise.race([
    board.submitAll(
      "judge",
      kases.map((k) => job(k)),
    ),
    judge.exit.then((code) => assert.fail(`the judge exited (${code}):\n${judge.output()}`)),
  ]);
  const by = Object.fromEntries(kases.map((k, i) => [k, outcomes[i]]));

  // Answers that came, scored, with the endpoint's identity.
  for (const [kase, score] of [
    ["ok", 5],
    ["flaky", 4],
  ] as const) {
    const o = by[kase];
    assert.ok(o.ok, `${kase}: ${JSON.stringify(o)}\n${judge.output()}`);
    assert.deepEqual(o.result.scores, [Array(SAMPLES).fill(score), Array(SAMPLES).fill(score)]);
    assert.equal(o.result.judge.impl, "openai");
    assert.equal(o.result.judge.model, "fake-model");
    assert.equal(o.result.judge.endpoint, new URL(baseUrl).host);
  }
  // The 429s were retried within the delivery: two refusals and an answer per candidate.
  assert.equal(seen.get("flaky/0")?.length, 3);
  assert.ok(
    seen.get("flaky/0")!.every((r) => r.auth === `Bearer ${KEY}`),
    "the key travels in the header",
  );

  // A server that ignores n: asked again until every sample is there, each time with a new seed.
  const ignores = by.ignoresn;
  assert.ok(ignores.ok);
  assert.deepEqual(ignores.result.scores, [
    [1, 1, 1],
    [2, 2, 2],
  ]);
  const asked = seen.get("ignoresn/0")!;
  assert.deepEqual(
    asked.map((r) => r.n),
    [3, 2, 1],
  );
  assert.equal(new Set(asked.map((r) => r.seed)).size, 3);

  // Judgements without a score are parse failures, as for any judge: null, counted, not 0.
  const unparsable = by.unparsable;
  assert.ok(unparsable.ok);
  assert.deepEqual(unparsable.result.scores.flat(), Array(2 * SAMPLES).fill(null));
  assert.equal(unparsable.result.parseFailures, 2 * SAMPLES);

  // Failures: every delivery retried, then the job dead-lettered with what the endpoint said.
  const reasons: Record<string, RegExp> = {
    always500: /HTTP 500: \{"error":\{"message":"boom; you sent Bearer \*\*\*"\}\}/,
    malformed: /not JSON: \{not json/,
    bad400: /answered HTTP 400: .*max_tokens is too large/,
    hang: new RegExp(`no complete answer within ${TIMEOUT_MS} ms`),
  };
  for (const [kase, pattern] of Object.entries(reasons)) {
    const reason = failure(by[kase]);
    assert.match(reason, new RegExp(`failed on all ${MAX_DELIVER} deliveries`), `${kase}: ${reason}`);
    assert.match(reason, pattern, `${kase}: ${reason}`);
    assert.match(reason, /fake-model/);
    assert.ok(!reason.includes(KEY), `${kase}: the reason holds the key`);
    assert.ok(
      dead.some((d) => d.reason === reason),
      `${kase}: a dead letter carries the reason`,
    );
  }
  // Retryable failures: 1 + RETRIES requests per delivery; a 400 is not retried within one.
  for (const kase of ["always500", "malformed", "hang"])
    assert.equal(seen.get(`${kase}/0`)?.length, MAX_DELIVER * (1 + RETRIES), kase);
  assert.equal(seen.get("bad400/0")?.length, MAX_DELIVER);

  // The same process still answers, and never reported an error.
  assert.equal(judge.proc.exitCode, null, "the judge is still running");
  const [after] = await board.submitAll("judge", [job("ok", 1)]);
  assert.ok(after.ok, JSON.stringify(after));
  assert.deepEqual(after.result.scores, [Array(SAMPLES).fill(5)]);
  assert.ok(!events.some((e) => e.event === "error"));
  judge.proc.kill("SIGTERM");
  assert.equal(await judge.exit, 0, judge.output());
  assert.ok(!judge.output().includes(KEY), "the judge's logs hold the key");
  assert.match(judge.output(), /openai judge request failed; retrying/);
});
