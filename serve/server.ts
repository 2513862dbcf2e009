// `srlm serve`'s HTTP side: OpenAI's /v1/models, /v1/completions and /v1/chat/completions over
// one srlm model, so any OpenAI client, and srlm's own `openai` judge, can use a checkpoint or a
// run's newest weights. Every error, fastify's own included, leaves in OpenAI's error shape.
import { randomUUID, timingSafeEqual } from "node:crypto";
import Fastify, { type FastifyReply } from "fastify";
import type { Logger } from "pino";
import { type Policy, promptIds } from "../actors/policy.ts";
import { type ChatMessage, chatPromptIds, stopIds } from "../model/chat.ts";
import { END } from "../tasks/format.ts";
import {
  ApiError,
  badRequest,
  type ChatRequest,
  type CompletionRequest,
  chatRequest,
  completionRequest,
  contentText,
  parseRequest,
} from "./api.ts";
import {
  type Choice,
  Engine,
  type EngineOptions,
  type GenRequest,
  type StreamDelta,
  type TokenInfo,
} from "./engine.ts";
import type { ModelSource } from "./source.ts";

export interface ServeOptions {
  source: ModelSource;
  /** The id clients name in `model`; any other id is a 404. */
  modelName: string;
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** When set, every /v1 request needs `Authorization: Bearer <key>`. */
  apiKey?: string;
  /** Largest request body, in bytes (default 1 MiB); a bigger one is a 413. */
  bodyLimit?: number;
  /** max_tokens of a chat request that names none (default 256; the context bounds it too). */
  defaultChatMaxTokens?: number;
  engine?: EngineOptions;
  log?: Logger;
}

export interface ServerHandle {
  url: string;
  engine: Engine;
  close(): Promise<void>;
}

const CREATED = Math.floor(Date.now() / 1000);
const fingerprint = (p: Policy) => `srlm-v${p.version}`;

function sameKey(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function completionLogprobs(tokens: TokenInfo[]) {
  let offset = 0;
  const textOffset = tokens.map((t) => {
    const at = offset;
    offset += t.token.length;
    return at;
  });
  return {
    tokens: tokens.map((t) => t.token),
    token_logprobs: tokens.map((t) => t.logprob),
    top_logprobs: tokens.map((t) => Object.fromEntries(t.top.map((x) => [x.token, x.logprob]))),
    text_offset: textOffset,
  };
}

function chatLogprobs(tokens: TokenInfo[]) {
  const bytes = (s: string) => [...Buffer.from(s, "utf8")];
  return {
    content: tokens.map((t) => ({
      token: t.token,
      logprob: t.logprob,
      bytes: bytes(t.token),
      top_logprobs: t.top.map((x) => ({ token: x.token, logprob: x.logprob, bytes: bytes(x.token) })),
    })),
    refusal: null,
  };
}

/** How a chat request's messages become prompt ids for `policy`. */
function renderChatPrompt(policy: Policy, req: ChatRequest) {
  const { model, tokenizer } = policy;
  const messages: ChatMessage[] = req.messages.map((m) => ({
    role: m.role === "developer" ? "system" : m.role,
    content: contentText(m.content),
  }));
  if (tokenizer.chatTemplate) {
    return { ids: chatPromptIds(tokenizer, messages), stop: req.stop, eosIds: stopIds(model, tokenizer) };
  }
  // srlm's own models have no template: a single user turn is a prompt in srlm's plain format,
  // the one its self judge and generators use, so an answer here is one the trainer would see.
  if (messages.length !== 1 || messages[0].role !== "user") {
    throw badRequest(
      "messages: this model has no chat template, so a chat request must be a single user message (it is rendered in srlm's plain prompt format)",
      "messages",
    );
  }
  return { ids: promptIds(tokenizer, messages[0].content, "plain"), stop: [END, ...req.stop] };
}

export async function startServer(opts: ServeOptions): Promise<ServerHandle> {
  const { source, modelName, log } = opts;
  const engine = new Engine(() => source.current(), opts.engine);
  const app = Fastify({ logger: false, bodyLimit: opts.bodyLimit ?? 1024 * 1024 });

  app.addHook("onRequest", async (req) => {
    if (!opts.apiKey || !req.url.startsWith("/v1")) return;
    const header = req.headers.authorization ?? "";
    const m = /^Bearer (.+)$/.exec(header);
    if (!m || !sameKey(m[1], opts.apiKey)) {
      throw new ApiError(
        401,
        "missing or wrong API key: send it as 'Authorization: Bearer <key>'",
        "authentication_error",
        null,
        "invalid_api_key",
      );
    }
  });
  app.addHook("onResponse", async (req, reply) => {
    log?.info(
      { method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      "request",
    );
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err instanceof ApiError) return reply.code(err.status).send(err.body());
    const status = err.statusCode ?? 500;
    if (status >= 500) log?.error({ err: err.message, stack: err.stack }, "request failed");
    const type = status === 413 || status < 500 ? "invalid_request_error" : "server_error";
    const e = new ApiError(status, err.message, type, null, err.code ?? null);
    return reply.code(status).send(e.body());
  });
  app.setNotFoundHandler((req, reply) => {
    const e = new ApiError(
      404,
      `no route ${req.method} ${req.url}`,
      "invalid_request_error",
      null,
      "not_found",
    );
    return reply.code(404).send(e.body());
  });

  const checkModel = (model: string) => {
    if (model !== modelName) {
      throw new ApiError(
        404,
        `the model '${model}' does not exist here; this server serves '${modelName}'`,
        "invalid_request_error",
        "model",
        "model_not_found",
      );
    }
  };
  const modelObject = () => ({ id: modelName, object: "model", created: CREATED, owned_by: "srlm" });

  app.get("/health", async (_req, reply) => {
    try {
      const p = await source.current();
      return { status: "ok", model: modelName, weights: fingerprint(p), queued: engine.queued };
    } catch (err) {
      if (err instanceof ApiError) return reply.code(err.status).send(err.body());
      throw err;
    }
  });
  app.get("/v1/models", async () => ({ object: "list", data: [modelObject()] }));
  app.get("/v1/models/:id", async (req) => {
    checkModel((req.params as { id: string }).id);
    return modelObject();
  });

  /** Runs a request through the engine, as one JSON answer or as server-sent events. */
  async function answer(
    reply: FastifyReply,
    gen: Omit<GenRequest, "onStart" | "onDelta" | "signal">,
    stream: { on: boolean; includeUsage: boolean },
    shape: {
      whole(r: { choices: Choice[]; policy: Policy; usage: object }): object;
      chunk(policy: Policy, choices: object[]): object;
      delta(d: StreamDelta): object;
      opening?(index: number): object;
    },
  ) {
    // A 503 while loading comes before queueing, so a waiting client is not counted in the queue.
    await source.current();
    const abort = new AbortController();
    reply.raw.on("close", () => {
      if (!reply.raw.writableEnded) abort.abort();
    });
    const usageOf = (r: { promptTokens: number; completionTokens: number }) => ({
      prompt_tokens: r.promptTokens,
      completion_tokens: r.completionTokens,
      total_tokens: r.promptTokens + r.completionTokens,
    });
    if (!stream.on) {
      const r = await engine.submit({ ...gen, signal: abort.signal });
      return shape.whole({ choices: r.choices, policy: r.policy, usage: usageOf(r) });
    }
    let policy: Policy | null = null;
    const send = (obj: object | string) =>
      reply.raw.write(`data: ${typeof obj === "string" ? obj : JSON.stringify(obj)}\n\n`);
    try {
      const r = await engine.submit({
        ...gen,
        signal: abort.signal,
        onStart(p) {
          policy = p;
          reply.hijack();
          reply.raw.writeHead(200, {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            connection: "keep-alive",
          });
          if (shape.opening) {
            const choices = gen.render(p).length * gen.n;
            for (let i = 0; i < choices; i++) send(shape.chunk(p, [shape.opening(i)]));
          }
        },
        onDelta(d) {
          if (policy && !abort.signal.aborted) send(shape.chunk(policy, [shape.delta(d)]));
        },
      });
      if (stream.includeUsage) send({ ...shape.chunk(r.policy, []), usage: usageOf(r) });
    } catch (err) {
      // Before the stream opened, the error is an ordinary JSON answer with its status.
      if (!policy) throw err;
      const e = err instanceof ApiError ? err : new ApiError(500, (err as Error).message, "server_error");
      send(e.body());
    }
    send("[DONE]");
    reply.raw.end();
    return reply;
  }

  app.post("/v1/completions", async (request, reply) => {
    const req: CompletionRequest = parseRequest(completionRequest, request.body);
    checkModel(req.model);
    const prompts = typeof req.prompt === "string" ? [req.prompt] : req.prompt;
    const id = `cmpl-${randomUUID()}`;
    const base = (p: Policy) => ({
      id,
      object: "text_completion",
      created: Math.floor(Date.now() / 1000),
      model: modelName,
      system_fingerprint: fingerprint(p),
    });
    return answer(
      reply,
      {
        render: (p) =>
          prompts.map((text) => ({ ids: [p.tokenizer.bosId, ...p.tokenizer.encode(text)], stop: req.stop })),
        ...samplingOf(req, req.max_tokens ?? 16),
        topLogprobs: req.logprobs ?? null,
      },
      { on: req.stream === true, includeUsage: req.stream_options?.include_usage === true },
      {
        whole: ({ choices, policy, usage }) => ({
          ...base(policy),
          choices: choices.map((c) => ({
            index: c.index,
            text: c.text,
            logprobs: c.tokens ? completionLogprobs(c.tokens) : null,
            finish_reason: c.finishReason,
          })),
          usage,
        }),
        chunk: (p, choices) => ({ ...base(p), choices }),
        delta: (d) => ({
          index: d.index,
          text: d.text,
          logprobs: req.logprobs == null ? null : completionLogprobs(d.tokens),
          finish_reason: d.finishReason,
        }),
      },
    );
  });

  app.post("/v1/chat/completions", async (request, reply) => {
    const req: ChatRequest = parseRequest(chatRequest, request.body);
    checkModel(req.model);
    if (req.top_logprobs && !req.logprobs) {
      throw badRequest("top_logprobs: needs logprobs: true", "top_logprobs");
    }
    const id = `chatcmpl-${randomUUID()}`;
    const base = (p: Policy) => ({
      id,
      object: "chat.completion.chunk",
      created: Math.floor(Date.now() / 1000),
      model: modelName,
      system_fingerprint: fingerprint(p),
    });
    const maxTokens = req.max_completion_tokens ?? req.max_tokens ?? opts.defaultChatMaxTokens ?? 256;
    return answer(
      reply,
      {
        render: (p) => [renderChatPrompt(p, req)],
        ...samplingOf(req, maxTokens),
        topLogprobs: req.logprobs ? (req.top_logprobs ?? 0) : null,
      },
      { on: req.stream === true, includeUsage: req.stream_options?.include_usage === true },
      {
        whole: ({ choices, policy, usage }) => ({
          ...base(policy),
          object: "chat.completion",
          choices: choices.map((c) => ({
            index: c.index,
            message: { role: "assistant", content: c.text, refusal: null },
            logprobs: c.tokens ? chatLogprobs(c.tokens) : null,
            finish_reason: c.finishReason,
          })),
          usage,
        }),
        chunk: (p, choices) => ({ ...base(p), choices }),
        opening: (index) => ({
          index,
          delta: { role: "assistant", content: "" },
          logprobs: null,
          finish_reason: null,
        }),
        delta: (d) => ({
          index: d.index,
          delta: d.text ? { content: d.text } : {},
          logprobs: req.logprobs ? chatLogprobs(d.tokens) : null,
          finish_reason: d.finishReason,
        }),
      },
    );
  });

  await app.listen({ host: opts.host ?? "127.0.0.1", port: opts.port ?? 8000 });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : opts.port;
  const host = opts.host ?? "127.0.0.1";
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${port}`,
    engine,
    async close() {
      await app.close();
      await source.close();
    },
  };
}

function samplingOf(req: CompletionRequest | ChatRequest, maxNewTokens: number) {
  return {
    n: req.n ?? 1,
    temperature: req.temperature ?? 1,
    topP: req.top_p ?? 1,
    topK: Math.max(0, req.top_k ?? 0),
    maxNewTokens,
    seed: req.seed ?? undefined,
  };
}
