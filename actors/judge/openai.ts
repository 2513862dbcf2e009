// The `openai` judge: any OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp's server,
// OpenAI itself, or `srlm serve`) scores the candidates. Each candidate's judge prompt, as the
// trainer rendered it, is one user message; its `samples` judgements come from `n` (with further
// requests when a server answers with fewer choices than asked), and each is read back with the
// job's score parser.
//
// A judgement that does not parse is a parse failure like any other judge's; a request that fails
// is not a judgement at all. 429s, 5xx, timeouts, dropped connections and malformed answers are
// retried with exponential backoff; when the retries run out the job throws, so the work queue
// redelivers it and finally dead-letters it with the status and body in the reason. A failed
// request is never scored as 0. The API key is read from the environment variable the config
// names, sent only in the Authorization header, and cut out of anything this file reports.
import type { Logger } from "pino";
import type { JudgeJobBody } from "../../bus/messages.ts";
import { parseScore } from "../../tasks/judgement.ts";
import type { Judgements } from "./main.ts";

export interface OpenAIJudgeSettings {
  /** Up to and including /v1, e.g. http://host:8000/v1. */
  baseUrl: string;
  model: string;
  /** Environment variable holding the API key; empty sends none. */
  apiKeyEnv: string;
  /** Requests in flight at once, across all jobs of this process. */
  maxConcurrency: number;
  /** One request's limit, connection to last byte. */
  timeoutMs: number;
  /** Further tries of a request after a retryable failure. */
  retries: number;
  /** First backoff; doubled each retry (a Retry-After header takes precedence). */
  backoffMs: number;
}

export interface OpenAIJudgeDeps {
  env?: NodeJS.ProcessEnv;
  fetch?: typeof fetch;
  log?: Logger;
}

/** A request that failed for good: what was sent where, and what came back. */
export class OpenAIRequestError extends Error {
  override name = "OpenAIRequestError";
  constructor(
    message: string,
    readonly status: number | null,
  ) {
    super(message);
  }
}

// Longest a server's Retry-After may hold a request back; beyond it srlm's own backoff applies.
const MAX_RETRY_AFTER_MS = 60_000;
const BODY_SNIPPET = 500;

class Retryable extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

interface ChatChoice {
  index?: number;
  message?: { content?: string | null };
}

class Slots {
  private waiting: (() => void)[] = [];
  private free: number;
  constructor(n: number) {
    this.free = n;
  }
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.free > 0) this.free--;
    else await new Promise<void>((r) => this.waiting.push(r));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.free++;
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(MAX_RETRY_AFTER_MS, seconds * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.min(MAX_RETRY_AFTER_MS, Math.max(0, at - Date.now()));
}

export class OpenAIJudge {
  /** host:port of the endpoint, recorded in every result (never its credentials or path). */
  readonly endpoint: string;
  readonly model: string;
  private readonly url: string;
  private readonly apiKey?: string;
  private readonly slots: Slots;
  private readonly fetch: typeof fetch;
  private readonly log?: Logger;

  constructor(
    private readonly settings: OpenAIJudgeSettings,
    deps: OpenAIJudgeDeps = {},
  ) {
    if (!settings.baseUrl) {
      throw new Error(
        "judge --impl openai: judge.openai.baseUrl is empty; set it, e.g. --set judge.openai.baseUrl=http://host:8000/v1",
      );
    }
    if (!settings.model) {
      throw new Error(
        "judge --impl openai: judge.openai.model is empty; set the model the endpoint serves, e.g. --set judge.openai.model=NAME",
      );
    }
    let url: URL;
    try {
      url = new URL(settings.baseUrl);
    } catch {
      throw new Error(`judge.openai.baseUrl ${JSON.stringify(settings.baseUrl)} is not a URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new Error(`judge.openai.baseUrl must be http:// or https://, got ${url.protocol}`);
    }
    if (url.username || url.password) {
      throw new Error(
        "judge.openai.baseUrl carries credentials; put the key in an environment variable and name it in judge.openai.apiKeyEnv",
      );
    }
    this.endpoint = url.host;
    this.model = settings.model;
    this.url = `${url.origin}${url.pathname.replace(/\/+$/, "")}/chat/completions`;
    const env = deps.env ?? process.env;
    if (settings.apiKeyEnv) {
      const key = env[settings.apiKeyEnv];
      if (!key) {
        throw new Error(
          `judge.openai.apiKeyEnv names ${settings.apiKeyEnv}, but that environment variable is empty or unset`,
        );
      }
      this.apiKey = key;
    }
    this.slots = new Slots(Math.max(1, settings.maxConcurrency));
    this.fetch = deps.fetch ?? fetch;
    this.log = deps.log;
  }

  /** Scores every candidate `job.samples` times. Throws when a request fails for good. */
  async judge(job: JudgeJobBody, signal?: AbortSignal): Promise<Judgements> {
    let parseFailures = 0;
    const texts = await Promise.all(
      job.judgePrompts.map((prompt, c) => this.samples(job, prompt, c, signal)),
    );
    const scores = texts.map((samples) =>
      samples.map((text) => {
        const parsed = parseScore(job.parser, text);
        if (parsed.ok) return parsed.score;
        parseFailures++;
        return null;
      }),
    );
    return { scores, parseFailures, judgements: job.candidates.length * job.samples, texts };
  }

  // A candidate's judgements. Servers that ignore `n` answer with one choice; the rest are asked
  // for again, each time with another seed so the samples differ as n samples would.
  private async samples(
    job: JudgeJobBody,
    prompt: string,
    c: number,
    signal?: AbortSignal,
  ): Promise<string[]> {
    const out: string[] = [];
    for (let round = 0; out.length < job.samples; round++) {
      const want = job.samples - out.length;
      const seed = job.sampling.seed + c + round * job.candidates.length;
      const choices = await this.request(job, prompt, want, seed, signal);
      if (choices.length === 0) {
        throw new OpenAIRequestError(
          `openai judge: POST ${this.url} (model ${this.model}) answered with no choices for candidate ${c}`,
          200,
        );
      }
      for (const ch of choices.slice(0, want)) out.push(ch.message?.content ?? "");
    }
    return out;
  }

  private async request(
    job: JudgeJobBody,
    prompt: string,
    n: number,
    seed: number,
    signal?: AbortSignal,
  ): Promise<ChatChoice[]> {
    const s = job.sampling;
    const body = JSON.stringify({
      model: this.model,
      messages: [{ role: "user", content: prompt }],
      n,
      temperature: s.temperature,
      top_p: s.topP,
      max_tokens: s.maxNewTokens,
      seed,
      // Not OpenAI's own field: sent only when the job asks for top-k, which OpenAI cannot do.
      ...(s.topK > 0 ? { top_k: s.topK } : {}),
    });
    let last: Retryable | null = null;
    const attempts = this.settings.retries + 1;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (last) {
        const delay =
          last.retryAfterMs ?? this.settings.backoffMs * 2 ** (attempt - 1) * (1 + Math.random() / 4);
        this.log?.warn(
          {
            endpoint: this.endpoint,
            model: this.model,
            attempt,
            of: attempts,
            delayMs: Math.round(delay),
            err: last.message,
          },
          "openai judge request failed; retrying",
        );
        await sleep(delay, signal);
      }
      try {
        return await this.slots.run(() => this.once(body, signal));
      } catch (err) {
        if (!(err instanceof Retryable)) throw err;
        last = err;
      }
    }
    throw new OpenAIRequestError(
      `openai judge: POST ${this.url} (model ${this.model}) failed after ${attempts} attempt(s): ${last!.message}`,
      last!.status,
    );
  }

  private async once(body: string, outer?: AbortSignal): Promise<ChatChoice[]> {
    const timeout = AbortSignal.timeout(this.settings.timeoutMs);
    const signal = outer ? AbortSignal.any([outer, timeout]) : timeout;
    let res: Response;
    let text: string;
    try {
      res = await this.fetch(this.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {}),
        },
        body,
        signal,
      });
      text = await res.text();
    } catch (err) {
      if (outer?.aborted) throw outer.reason;
      if (timeout.aborted)
        throw new Retryable(
          `no complete answer within ${this.settings.timeoutMs} ms (judge.openai.timeoutMs)`,
          null,
        );
      throw new Retryable(this.redact(`request failed: ${(err as Error).message}${causeOf(err)}`), null);
    }
    const snippet = this.redact(text.length > BODY_SNIPPET ? `${text.slice(0, BODY_SNIPPET)}…` : text);
    if (res.status === 429 || res.status === 408 || res.status >= 500) {
      throw new Retryable(
        `HTTP ${res.status}: ${snippet}`,
        res.status,
        retryAfterMs(res.headers.get("retry-after")),
      );
    }
    if (!res.ok) {
      // 400, 401, 404…: the same request would fail the same way; the queue's redelivery is retry enough.
      throw new OpenAIRequestError(
        `openai judge: POST ${this.url} (model ${this.model}) answered HTTP ${res.status}: ${snippet}`,
        res.status,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new Retryable(`HTTP ${res.status} with a body that is not JSON: ${snippet}`, res.status);
    }
    const choices = (json as { choices?: unknown })?.choices;
    if (!Array.isArray(choices) || !choices.every(isChoice)) {
      throw new Retryable(
        `HTTP ${res.status} with JSON that is not a chat completion (no choices[].message): ${snippet}`,
        res.status,
      );
    }
    return [...choices].sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
  }

  private redact(text: string): string {
    return this.apiKey ? text.split(this.apiKey).join("***") : text;
  }
}

function isChoice(x: unknown): x is ChatChoice {
  if (typeof x !== "object" || x === null) return false;
  const m = (x as ChatChoice).message;
  return typeof m === "object" && m !== null && (typeof m.content === "string" || m.content === null);
}

function causeOf(err: unknown): string {
  const cause = (err as { cause?: { message?: string; code?: string } }).cause;
  return cause ? ` (${cause.code ?? cause.message ?? String(cause)})` : "";
}
