// `srlm serve` as the official `openai` client sees it: every endpoint, streaming included, over a
// small random-weight checkpoint: srlm's character model with a chat template for most tests (a
// large vocabulary is slow on a CPU backend), and one with Llama 3's real tokenizer and template.
// Greedy answers are checked against generate() run directly on the same checkpoint, so the
// server is shown to apply the chat template and the stop rules, not just to return valid JSON.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import OpenAI, { APIError } from "openai";
import pino from "pino";
import { initModel } from "../../model/api.ts";
import { selectBackend } from "../../model/backend.ts";
import { chatPromptIds, stopIds } from "../../model/chat.ts";
import { loadCheckpoint, saveCheckpoint } from "../../model/checkpoint.ts";
import { generate } from "../../model/generate.ts";
import type { Llama } from "../../model/llama.ts";
import { CharTokenizer, type Tokenizer } from "../../model/tokenizer.ts";
import { type ServerHandle, startServer } from "../../serve/server.ts";
import { checkpointSource } from "../../serve/source.ts";
import { type BuiltCheckpoint, buildCheckpoint } from "../helpers/checkpoints.ts";

const KEY = "sk-test-serve-0123456789";
const MODEL = "tiny-char";
// A chat template of srlm's own making: role headers, one line per turn.
const TEMPLATE =
  "{% for m in messages %}<{{ m.role }}> {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<assistant> {% endif %}";
const quiet = pino({ level: "silent" });

let dir: string;
let server: ServerHandle;
let client: OpenAI;
let model: Llama;
let tokenizer: Tokenizer;

before(async () => {
  await selectBackend("cpu", { info() {} });
  dir = join(mkdtempSync(join(tmpdir(), "srlm-serve-")), MODEL);
  const charTokenizer = new CharTokenizer(undefined, TEMPLATE);
  const initial = initModel("tiny", charTokenizer, { seed: 11 });
  saveCheckpoint(dir, initial, charTokenizer);
  initial.dispose();
  const source = checkpointSource(dir, quiet);
  server = await startServer({
    source,
    modelName: MODEL,
    port: 0,
    apiKey: KEY,
    bodyLimit: 64 * 1024,
    // Wide enough that requests sent together on a busy 2-core host still meet in one batch.
    engine: { batchWindowMs: 60, maxQueue: 3 },
    log: quiet,
  });
  await source.loaded;
  ({ model, tokenizer } = loadCheckpoint(dir));
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
});

after(async () => {
  await server?.close();
  model?.dispose();
  if (dir) rmSync(join(dir, ".."), { recursive: true, force: true });
});

/** What the checkpoint answers greedily to one user turn, computed without the server. */
function greedyChat(content: string, maxNewTokens: number, m = model, tok = tokenizer): string {
  const ids = chatPromptIds(tok, [{ role: "user", content }]);
  const [g] = generate(m, tok, [ids], {
    temperature: 0,
    maxNewTokens,
    eosIds: stopIds(m, tok),
  });
  return g.text;
}

async function apiError(p: Promise<unknown>): Promise<APIError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof APIError) return err;
    throw err;
  }
  assert.fail("the request succeeded; expected an error");
}

test("models: the one served model, and a 404 for any other id", async () => {
  const list = await client.models.list();
  assert.deepEqual(
    list.data.map((m) => [m.id, m.object, m.owned_by]),
    [[MODEL, "model", "srlm"]],
  );
  assert.equal((await client.models.retrieve(MODEL)).id, MODEL);
  const e = await apiError(client.models.retrieve("gpt-4"));
  assert.equal(e.status, 404);
  assert.equal(e.code, "model_not_found");
});

test("chat: greedy answers follow the chat template; log-probs list the best tokens", async () => {
  const content = "Name three colours.";
  const expected = greedyChat(content, 8);
  const r = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: "user", content }],
    temperature: 0,
    max_tokens: 8,
    n: 2,
    logprobs: true,
    top_logprobs: 3,
  });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.model, MODEL);
  assert.equal(r.system_fingerprint, "srlm-v0");
  assert.equal(r.choices.length, 2);
  for (const [i, c] of r.choices.entries()) {
    assert.equal(c.index, i);
    assert.equal(c.message.role, "assistant");
    assert.equal(c.message.content, expected, "the server's greedy answer is generate()'s");
    const content = c.logprobs?.content ?? [];
    assert.ok(content.length > 0 && content.length <= 8);
    for (const t of content) {
      assert.equal(t.top_logprobs.length, 3);
      assert.ok(t.logprob <= 0 && Number.isFinite(t.logprob));
      // Greedy picks the most likely token: it heads its own top list.
      assert.equal(t.token, t.top_logprobs[0].token);
      assert.equal(t.logprob, t.top_logprobs[0].logprob);
      assert.ok(t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob);
      assert.ok(t.top_logprobs[1].logprob >= t.top_logprobs[2].logprob);
    }
  }
  const prompt = chatPromptIds(tokenizer, [{ role: "user", content }]).length;
  assert.equal(r.usage?.prompt_tokens, prompt);
  assert.equal(r.usage?.total_tokens, prompt + (r.usage?.completion_tokens ?? -1));
});

test("chat streaming: deltas join to the answer a non-streamed request with the same seed gets", async () => {
  const req = {
    model: MODEL,
    messages: [{ role: "user" as const, content: "Tell me a story." }],
    temperature: 1,
    max_tokens: 10,
    n: 2,
    seed: 1234,
  };
  const whole = await client.chat.completions.create(req);
  const stream = await client.chat.completions.create({
    ...req,
    stream: true,
    stream_options: { include_usage: true },
  });
  const text = ["", ""];
  const roles: string[] = [];
  const finish: (string | null)[] = [null, null];
  let usage: OpenAI.CompletionUsage | null | undefined;
  for await (const chunk of stream) {
    assert.equal(chunk.object, "chat.completion.chunk");
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) roles.push(c.delta.role);
      text[c.index] += c.delta.content ?? "";
      if (c.finish_reason) finish[c.index] = c.finish_reason;
    }
  }
  assert.deepEqual(roles, ["assistant", "assistant"]);
  assert.deepEqual(
    text,
    whole.choices.map((c) => c.message.content),
  );
  assert.deepEqual(
    finish,
    whole.choices.map((c) => c.finish_reason),
  );
  assert.deepEqual(usage, whole.usage);
});

test("completions: prompts × n choices, seeded runs repeat, stop strings cut, streaming matches", async () => {
  const req = { model: MODEL, prompt: ["Once upon", "The answer is"], n: 2, max_tokens: 6, seed: 7 };
  const a = await client.completions.create({ ...req, logprobs: 2 });
  const b = await client.completions.create(req);
  assert.equal(a.object, "text_completion");
  assert.deepEqual(
    a.choices.map((c) => c.index),
    [0, 1, 2, 3],
  );
  assert.deepEqual(
    a.choices.map((c) => c.text),
    b.choices.map((c) => c.text),
    "the same seed gives the same completions",
  );
  for (const c of a.choices) {
    const lp = c.logprobs!;
    assert.ok(lp.tokens!.length >= 1 && lp.tokens!.length <= 6);
    assert.equal(lp.token_logprobs!.length, lp.tokens!.length);
    for (const [i, top] of lp.top_logprobs!.entries()) {
      const best = Math.max(...Object.values(top));
      assert.ok(Object.keys(top).length >= 1 && Object.keys(top).length <= 2);
      assert.ok(lp.token_logprobs![i] <= best + 1e-12, "no token is likelier than the best one");
    }
  }
  assert.equal(b.choices[0].logprobs, null);

  // A stop string taken from a greedy completion cuts it just before its first occurrence.
  const greedy = await client.completions.create({
    model: MODEL,
    prompt: "Hello",
    temperature: 0,
    max_tokens: 12,
  });
  const full = greedy.choices[0].text;
  assert.ok(full.length >= 4, `greedy completion ${JSON.stringify(full)} is long enough to cut`);
  // Two characters past the start, away from any half-decoded byte (U+FFFD) of a random model.
  const at = Array.from({ length: full.length }, (_, i) => i).find(
    (i) => i >= 1 && i + 2 <= full.length && !full.slice(i, i + 2).includes("\uFFFD"),
  );
  assert.ok(at !== undefined, `a stop string can be taken from ${JSON.stringify(full)}`);
  const stop = full.slice(at, at + 2);
  const cut = await client.completions.create({
    model: MODEL,
    prompt: "Hello",
    temperature: 0,
    max_tokens: 12,
    stop,
  });
  assert.equal(cut.choices[0].text, full.slice(0, full.indexOf(stop)));
  assert.equal(cut.choices[0].finish_reason, "stop");

  // Streamed with the same stop: text held back until it cannot be the start of the stop string.
  let streamed = "";
  let reason: string | null = null;
  for await (const chunk of await client.completions.create({
    model: MODEL,
    prompt: "Hello",
    temperature: 0,
    max_tokens: 12,
    stop,
    stream: true,
  })) {
    streamed += chunk.choices[0]?.text ?? "";
    reason = chunk.choices[0]?.finish_reason ?? reason;
  }
  assert.equal(streamed, cut.choices[0].text);
  assert.equal(reason, "stop");
});

test("a stream is server-sent events ending in data: [DONE]", async () => {
  const res = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ model: MODEL, prompt: "Hi", max_tokens: 3, stream: true }),
  });
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
  const events = (await res.text()).split("\n\n").filter(Boolean);
  assert.ok(events.every((e) => e.startsWith("data: ")));
  assert.equal(events.at(-1), "data: [DONE]");
  for (const e of events.slice(0, -1)) assert.equal(JSON.parse(e.slice(6)).object, "text_completion");
});

test("concurrent requests that sample alike share one batch; seeded ones run alone", async () => {
  const before = { ...server.engine.stats };
  const ask = (temperature: number, seed?: number) =>
    client.completions.create({ model: MODEL, prompt: "Batch me", temperature, max_tokens: 3, n: 2, seed });
  await Promise.all([ask(1), ask(1), ask(1)]);
  assert.equal(server.engine.stats.batches - before.batches, 1, "three alike requests, one batch");
  assert.equal(server.engine.stats.rows - before.rows, 6);

  const mid = { ...server.engine.stats };
  await Promise.all([ask(1), ask(0.5), ask(1, 3)]);
  // Different temperatures cannot share a batch, and a seeded request never does.
  assert.equal(server.engine.stats.batches - mid.batches, 3);
});

test("errors come in OpenAI's shape with their status: 400 naming the field, 401, 413, 429", async () => {
  const bad = await apiError(
    client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "x" }],
      temperature: 3,
    }),
  );
  assert.equal(bad.status, 400);
  assert.equal(bad.param, "temperature");
  assert.equal(bad.type, "invalid_request_error");

  const tools = await apiError(
    client.chat.completions.create({
      model: MODEL,
      messages: [{ role: "user", content: "x" }],
      tools: [{ type: "function", function: { name: "f", parameters: {} } }],
    }),
  );
  assert.equal(tools.status, 400);
  assert.equal(tools.param, "tools");
  assert.equal(tools.code, "unsupported_parameter");

  const missing = await apiError(client.completions.create({ model: MODEL } as never));
  assert.equal(missing.status, 400);
  assert.equal(missing.param, "prompt");

  const unknown = await apiError(client.completions.create({ model: "llama-70b", prompt: "x" }));
  assert.equal(unknown.status, 404);
  assert.equal(unknown.param, "model");

  const wrongKey = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "sk-wrong", maxRetries: 0 });
  const denied = await apiError(wrongKey.models.list());
  assert.equal(denied.status, 401);
  assert.equal(denied.code, "invalid_api_key");
  assert.ok(!JSON.stringify(denied.error).includes(KEY), "the error does not echo the key");

  const big = await fetch(`${server.url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ model: MODEL, prompt: "x".repeat(70 * 1024) }),
  });
  assert.equal(big.status, 413);
  const bigBody = (await big.json()) as { error: { message: string; type: string } };
  assert.equal(bigBody.error.type, "invalid_request_error");

  // The queue holds 3: of 8 requests sent at once, the ones beyond it are refused, not dropped.
  const results = await Promise.allSettled(
    Array.from({ length: 8 }, (_, i) =>
      client.completions.create({ model: MODEL, prompt: "queue", max_tokens: 2, seed: i }),
    ),
  );
  const refused = results.filter((r) => r.status === "rejected");
  assert.ok(refused.length >= 1, "some requests were refused");
  for (const r of refused) {
    const e = (r as PromiseRejectedResult).reason as APIError;
    assert.equal(e.status, 429);
    assert.equal(e.code, "queue_full");
  }
  assert.ok(
    results.some((r) => r.status === "fulfilled"),
    "the queued ones were answered",
  );
});

test("Llama 3's real tokenizer: the chat template's special tokens, and its turn end, as generate() has them", async () => {
  const ckpt: BuiltCheckpoint = buildCheckpoint({ vocab: "llama3", hiddenSize: 32, layers: 1, seed: 5 });
  const source = checkpointSource(ckpt.dir, quiet);
  const llama = await startServer({ source, modelName: "tiny-llama3", port: 0, log: quiet });
  try {
    await source.loaded;
    const own = loadCheckpoint(ckpt.dir);
    const content = "Bonjour, ça va ?";
    const expected = greedyChat(content, 3, own.model, own.tokenizer);
    own.model.dispose();
    const c = new OpenAI({ baseURL: `${llama.url}/v1`, apiKey: "none", maxRetries: 0 });
    const r = await c.chat.completions.create({
      model: "tiny-llama3",
      messages: [{ role: "user", content }],
      temperature: 0,
      max_tokens: 3,
      logprobs: true,
      top_logprobs: 2,
    });
    assert.equal(r.choices[0].message.content, expected);
    // <|begin_of_text|>, the user header, the text, <|eot_id|>, the assistant header: far more than the text.
    assert.ok((r.usage?.prompt_tokens ?? 0) > 10);
    for (const t of r.choices[0].logprobs?.content ?? []) assert.equal(t.top_logprobs.length, 2);
  } finally {
    await llama.close();
    ckpt.remove();
  }
});
