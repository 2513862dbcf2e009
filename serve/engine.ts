// The one queue every request of `srlm serve` goes through. generate() is synchronous and batches
// rows with a KV cache, so the cheapest way to serve concurrent callers is to run their rows in one
// call: requests that arrive within `batchWindowMs` of each other and sample the same way (same
// temperature, top-p, top-k, length, stops and end tokens) share a batch. A request with its own
// `seed` always runs alone: the batch draws from one random stream, so sharing it would make the
// answer to a seeded request depend on who else asked at the same moment.
import { randomInt } from "node:crypto";
import type { Policy } from "../actors/policy.ts";
import { type FinishReason, firstStop, generate } from "../model/generate.ts";
import { ApiError, badRequest } from "./api.ts";

/** One prompt as the model is conditioned on it, and what ends its completions. */
export interface Rendered {
  ids: number[];
  stop: string[];
  /** End tokens; undefined = generate()'s default (the model's and tokenizer's EOS). */
  eosIds?: number[];
}

export interface TokenInfo {
  id: number;
  token: string;
  logprob: number;
  top: { id: number; token: string; logprob: number }[];
}

export interface StreamDelta {
  /** Choice index: prompt p, sample i of a request with n samples per prompt is p * n + i. */
  index: number;
  text: string;
  tokens: TokenInfo[];
  /** Set on a choice's last delta. */
  finishReason: "stop" | "length" | null;
}

export interface GenRequest {
  /** The request's prompts as the batch's policy renders them (a reload may change tokenizers). */
  render(policy: Policy): Rendered[];
  n: number;
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
  seed?: number;
  /** null: no log-probs; 0: the sampled tokens' only; k: also the k most likely tokens. */
  topLogprobs: number | null;
  /** Called once, when the batch holding this request starts (a stream writes its headers). */
  onStart?(policy: Policy): void;
  /** Text as it is sampled; without it the request gets its choices at the end only. */
  onDelta?(delta: StreamDelta): void;
  /** The caller has gone: a request still queued is dropped. */
  signal?: AbortSignal;
}

export interface Choice {
  index: number;
  text: string;
  tokens: TokenInfo[] | null;
  finishReason: "stop" | "length";
}

export interface GenResult {
  policy: Policy;
  choices: Choice[];
  promptTokens: number;
  completionTokens: number;
  /** Rows in the generate() call this request ran in (its own and others'). */
  batchRows: number;
}

export interface EngineOptions {
  /** How long the first request of a batch waits for others to join (default 5 ms). */
  batchWindowMs?: number;
  /** Rows one generate() call may hold; a bigger single request still runs, alone (default 64). */
  maxBatchRows?: number;
  /** Requests waiting to run; one more is refused with 429 (default 256). */
  maxQueue?: number;
}

export interface EngineStats {
  requests: number;
  batches: number;
  rows: number;
  refused: number;
}

interface Pending {
  req: GenRequest;
  resolve(r: GenResult): void;
  reject(e: Error): void;
}

interface Prepared {
  p: Pending;
  rendered: Rendered[];
  key: string;
}

const finish = (r: FinishReason): "stop" | "length" => (r === "length" ? "length" : "stop");

function logNormaliser(logits: Float32Array): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i] - max);
  return max + Math.log(z);
}

/** The k most likely ids of a logits row, best first (ties to the lower id). */
function topIds(logits: Float32Array, k: number): number[] {
  // k is at most MAX_TOP_LOGPROBS: an insertion list beats sorting a 100k+ vocabulary.
  const best: number[] = [];
  for (let i = 0; i < logits.length && k > 0; i++) {
    if (best.length === k && logits[i] <= logits[best[k - 1]]) continue;
    let at = best.length;
    while (at > 0 && logits[best[at - 1]] < logits[i]) at--;
    best.splice(at, 0, i);
    if (best.length > k) best.pop();
  }
  return best;
}

export class Engine {
  private queue: Pending[] = [];
  private running = false;
  readonly stats: EngineStats = { requests: 0, batches: 0, rows: 0, refused: 0 };
  private readonly windowMs: number;
  private readonly maxRows: number;
  private readonly maxQueue: number;

  constructor(
    private readonly policy: () => Promise<Policy>,
    opts: EngineOptions = {},
  ) {
    this.windowMs = opts.batchWindowMs ?? 5;
    this.maxRows = opts.maxBatchRows ?? 64;
    this.maxQueue = opts.maxQueue ?? 256;
  }

  get queued(): number {
    return this.queue.length;
  }

  submit(req: GenRequest): Promise<GenResult> {
    if (this.queue.length >= this.maxQueue) {
      this.stats.refused++;
      return Promise.reject(
        new ApiError(
          429,
          `srlm serve: ${this.queue.length} requests are already waiting (--max-queue ${this.maxQueue}); retry later`,
          "rate_limit_error",
          null,
          "queue_full",
        ),
      );
    }
    this.stats.requests++;
    return new Promise<GenResult>((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      if (!this.running) {
        this.running = true;
        setTimeout(() => void this.drain(), this.windowMs);
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        let policy: Policy;
        try {
          policy = await this.policy();
        } catch (err) {
          for (const p of this.queue.splice(0)) p.reject(err as Error);
          break;
        }
        const batch = this.take(policy);
        if (batch.length > 0) this.run(policy, batch);
        // Let the requests that arrived meanwhile in, and the answers out, before the next batch.
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      this.running = false;
      if (this.queue.length > 0) {
        this.running = true;
        setTimeout(() => void this.drain(), this.windowMs);
      }
    }
  }

  /** The first waiting request and those that may share its batch, taken off the queue. */
  private take(policy: Policy): Prepared[] {
    const out: Prepared[] = [];
    let rows = 0;
    const rest: Pending[] = [];
    for (const p of this.queue) {
      if (p.req.signal?.aborted) {
        p.reject(new Error("the client closed the connection"));
        continue;
      }
      const prepared = this.prepare(policy, p);
      if (!prepared) continue;
      const size = prepared.rendered.length * p.req.n;
      const fits =
        out.length === 0 ||
        (prepared.key === out[0].key && p.req.seed === undefined && rows + size <= this.maxRows);
      if (fits) {
        out.push(prepared);
        rows += size;
      } else rest.push(p);
      if (out.length > 0 && out[0].p.req.seed !== undefined) {
        // A seeded request runs alone; everything after it waits for the next batch.
        rest.push(...this.queue.slice(this.queue.indexOf(p) + 1));
        break;
      }
    }
    this.queue = rest;
    return out;
  }

  private prepare(policy: Policy, p: Pending): Prepared | null {
    const r = p.req;
    let rendered: Rendered[];
    try {
      rendered = r.render(policy);
    } catch (err) {
      p.reject(err instanceof ApiError ? err : badRequest((err as Error).message));
      return null;
    }
    const limit = policy.model.config.max_position_embeddings;
    const long = rendered.find((x) => x.ids.length >= limit);
    if (long) {
      p.reject(
        badRequest(
          `the prompt is ${long.ids.length} tokens; this model's context is ${limit} (max_position_embeddings)`,
          null,
          "context_length_exceeded",
        ),
      );
      return null;
    }
    // One renderer per request: its prompts share their stops and end tokens.
    const first = rendered[0];
    const key = JSON.stringify([
      r.temperature,
      r.topP,
      r.topK,
      r.maxNewTokens,
      first.stop,
      first.eosIds ?? null,
    ]);
    return { p, rendered, key };
  }

  private run(policy: Policy, batch: Prepared[]): void {
    const { model, tokenizer } = policy;
    const head = batch[0];
    const r0 = head.p.req;
    interface Row {
      owner: number;
      index: number;
      ids: number[];
      emitted: string;
      unsent: TokenInfo[];
      tokens: TokenInfo[];
    }
    const rows: Row[] = [];
    const prompts: number[][] = [];
    batch.forEach((b, owner) => {
      b.rendered.forEach((x, p) => {
        for (let i = 0; i < b.p.req.n; i++) {
          rows.push({ owner, index: p * b.p.req.n + i, ids: [], emitted: "", unsent: [], tokens: [] });
          prompts.push(x.ids);
        }
      });
    });
    const stops = head.rendered[0].stop;
    const eosIds = head.rendered[0].eosIds;
    const eos = new Set(eosIds ?? [...model.eosIds, tokenizer.eosId]);
    // Text that may yet become a stop string, or half a multi-byte character, is held back.
    const holdBack = Math.max(0, ...stops.map((s) => s.length - 1));
    const tokenText = (id: number) => tokenizer.decode([id]);

    for (const b of batch) b.p.req.onStart?.(policy);
    this.stats.batches++;
    this.stats.rows += rows.length;
    let outputs: ReturnType<typeof generate>;
    try {
      outputs = generate(model, tokenizer, prompts, {
        temperature: r0.temperature,
        topP: r0.topP,
        topK: r0.topK,
        maxNewTokens: r0.maxNewTokens,
        seed: r0.seed ?? randomInt(0, 2 ** 31),
        stop: stops,
        eosIds,
        onToken: (rowIndex, id, logits) => {
          const row = rows[rowIndex];
          const req = batch[row.owner].p.req;
          row.ids.push(id);
          if (req.topLogprobs !== null && !eos.has(id)) {
            // Log-probs at temperature 1 (the model's own distribution), as generate() reports them.
            const logZ = logNormaliser(logits);
            const info: TokenInfo = {
              id,
              token: tokenText(id),
              logprob: logits[id] - logZ,
              top: topIds(logits, req.topLogprobs).map((t) => ({
                id: t,
                token: tokenText(t),
                logprob: logits[t] - logZ,
              })),
            };
            row.tokens.push(info);
            row.unsent.push(info);
          }
          if (!req.onDelta) return;
          let text = tokenizer.decode(row.ids.filter((x) => !eos.has(x)));
          const at = firstStop(text, stops);
          if (at >= 0) return; // the row ends here; its last delta comes with the result
          text = text.slice(0, Math.max(0, text.length - holdBack));
          if (text.endsWith("\uFFFD")) return;
          if (text.length > row.emitted.length && text.startsWith(row.emitted)) {
            req.onDelta({
              index: row.index,
              text: text.slice(row.emitted.length),
              tokens: row.unsent.splice(0),
              finishReason: null,
            });
            row.emitted = text;
          }
        },
      });
    } catch (err) {
      for (const b of batch) b.p.reject(err as Error);
      return;
    }
    const results: GenResult[] = batch.map((b) => ({
      policy,
      choices: [],
      promptTokens: b.rendered.reduce((s, x) => s + x.ids.length, 0),
      completionTokens: 0,
      batchRows: rows.length,
    }));
    outputs.forEach((o, i) => {
      const row = rows[i];
      const req = batch[row.owner].p.req;
      const res = results[row.owner];
      res.completionTokens += o.ids.length;
      res.choices.push({
        index: row.index,
        text: o.text,
        tokens: req.topLogprobs === null ? null : row.tokens,
        finishReason: finish(o.finishReason),
      });
      req.onDelta?.({
        index: row.index,
        text: o.text.startsWith(row.emitted) ? o.text.slice(row.emitted.length) : "",
        tokens: row.unsent.splice(0),
        finishReason: finish(o.finishReason),
      });
    });
    batch.forEach((b, i) => {
      results[i].choices.sort((a, c) => a.index - c.index);
      b.p.resolve(results[i]);
    });
  }
}
