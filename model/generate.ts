// Batched sampling with a KV cache. Prompts are left-padded so every row's next token sits in the
// last column; positions count real tokens only, so a row generates the same as it would alone.
// Reproducible: one seeded Rng draws for every row in order at every step.
import * as tf from "@tensorflow/tfjs";
import { KVCache, type Llama } from "./llama.ts";
import { Rng } from "./random.ts";
import type { Tokenizer } from "./tokenizer.ts";

export interface GenerateOptions {
  maxNewTokens: number;
  /** 0 = greedy (argmax, ties to the lowest id). Default 1. */
  temperature?: number;
  /** Nucleus sampling: keep the smallest top set with probability ≥ topP. Default 1 (off). */
  topP?: number;
  /** Keep the k most likely tokens. Default 0 (off). */
  topK?: number;
  /** Generation of a row ends when its text contains one of these; the text is cut before it. */
  stop?: string[];
  /** Token ids that end a row. Default: the model's eos_token_id(s) and the tokenizer's eos. */
  eosIds?: number[];
  seed?: number;
  /** Default true; false recomputes the whole sequence every step (for testing the cache). */
  useCache?: boolean;
  /** Called as row `row` samples `id`, with the logits it was drawn from: lets a server stream
   * text while the batch runs and report the most likely alternatives without a second pass. */
  onToken?: (row: number, id: number, logits: Float32Array) => void;
  /** Per row, tokens it writes at given new-token indices instead of sampling them: a judge that
   * quotes the response it judges writes the quote as given (tasks/task.ts judgeQuote). The
   * sampler still draws at those steps, so no other row's draws move. */
  forced?: readonly (ReadonlyMap<number, number> | undefined)[];
  /** Once a row samples this token itself, it writes no more forced tokens: a judge that ends its
   * quote early (its check shorter than the response) is not made to write the rest of the quote
   * into the verdict that follows. */
  forcedUntil?: number;
}

export type FinishReason = "eos" | "stop" | "length";

export interface Generation {
  /** New tokens, including the EOS or the token that completed a stop string. */
  ids: number[];
  /** Decoded new tokens, without EOS and cut before any stop string. */
  text: string;
  /** log p(token) under the model's full softmax at temperature 1, whatever temperature/top-p/top-k
   * sampled it: the policy log-prob that scoring (score.ts) computes, so PPO ratios start at 1. */
  logProbs: number[];
  finishReason: FinishReason;
}

interface Sampled {
  id: number;
  logProb: number;
}

/** Samples one token from a row of logits (float64 arithmetic on the float32 values). */
export function sampleToken(
  logits: ArrayLike<number>,
  opts: Pick<GenerateOptions, "temperature" | "topP" | "topK">,
  rng: Rng,
): Sampled {
  const V = logits.length;
  const { max, argmax, logZ } = normaliser(logits);
  const temperature = opts.temperature ?? 1;
  if (temperature <= 0) return { id: argmax, logProb: logits[argmax] - logZ };

  const topK = opts.topK && opts.topK > 0 ? Math.min(opts.topK, V) : V;
  const order =
    !(opts.topK && opts.topK > 0) && (opts.topP ?? 1) < 1 && V > NUCLEUS_MIN_VOCAB
      ? nucleusCandidates(logits, max, temperature, opts.topP ?? 1)
      : byLogitDescending(logits);
  const weights = Array.from(order.subarray(0, topK), (i) => Math.exp((logits[i] - max) / temperature));
  const total =
    order.length < V ? nucleusTotal(logits, max, temperature) : weights.reduce((a, b) => a + b, 0);
  const topP = opts.topP ?? 1;
  let keep = weights.length;
  if (topP < 1) {
    let cum = 0;
    for (let r = 0; r < weights.length; r++) {
      cum += weights[r] / total;
      if (cum >= topP) {
        keep = r + 1;
        break;
      }
    }
  }
  const kept = weights.slice(0, keep);
  const mass = kept.reduce((a, b) => a + b, 0);
  let u = rng.next() * mass;
  let pick = keep - 1;
  for (let r = 0; r < keep; r++) {
    u -= kept[r];
    if (u < 0) {
      pick = r;
      break;
    }
  }
  const id = order[pick];
  return { id, logProb: logits[id] - logZ };
}

// Below this vocabulary a full sort per token is cheap, and srlm's own models keep its exact order.
const NUCLEUS_MIN_VOCAB = 4096;

function nucleusTotal(logits: ArrayLike<number>, max: number, temperature: number): number {
  let total = 0;
  for (let i = 0; i < logits.length; i++) total += Math.exp((logits[i] - max) / temperature);
  return total;
}

/**
 * The ids top-p sampling can reach, by descending logit, without sorting the whole vocabulary:
 * every id whose weight reaches a threshold, lowered until those ids hold at least `topP` of the
 * mass. Any id left out weighs less than every id kept, so the kept ids are exactly the first ones
 * of the full order, and the nucleus, which is a prefix of that order, lies within them.
 */
function nucleusCandidates(
  logits: ArrayLike<number>,
  max: number,
  temperature: number,
  topP: number,
): Uint32Array {
  const V = logits.length;
  const w = new Float64Array(V);
  let total = 0;
  for (let i = 0; i < V; i++) {
    w[i] = Math.exp((logits[i] - max) / temperature);
    total += w[i];
  }
  for (let threshold = 1 / 16; ; threshold /= 16) {
    let mass = 0;
    let count = 0;
    for (let i = 0; i < V; i++)
      if (w[i] >= threshold) {
        mass += w[i];
        count++;
      }
    if (mass >= topP * total || threshold < Number.MIN_VALUE * 16) {
      const ids = new Uint32Array(count);
      let k = 0;
      for (let i = 0; i < V; i++) if (w[i] >= threshold) ids[k++] = i;
      return ids.sort((a, b) => logits[b] - logits[a] || a - b);
    }
  }
}

const ID_BITS = 20;
const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

/**
 * Token ids by descending logit, ties to the lower id: the order top-k, top-p and the sampling
 * walk use. At a 100k+ vocabulary a comparator sort costs more than the model's whole step, so
 * float32 rows of up to 2^20 ids sort as numbers instead: each key is the logit's bits mapped to
 * an unsigned integer that falls as the logit rises, times 2^20, plus the id, exact in a double
 * (52 bits), and a Float64Array sorts natively. Other rows take the comparator, same order.
 */
export function byLogitDescending(logits: ArrayLike<number>): Uint32Array {
  const V = logits.length;
  const ids = new Uint32Array(V);
  if (!(logits instanceof Float32Array) || V > 2 ** ID_BITS) {
    for (let i = 0; i < V; i++) ids[i] = i;
    return ids.sort((a, b) => logits[b] - logits[a] || a - b);
  }
  const keys = new Float64Array(V);
  for (let i = 0; i < V; i++) {
    f32[0] = logits[i] + 0; // −0 and +0 tie, as they do for the comparator
    const bits = f32Bits[0];
    // ascending image: flip all bits of negatives, set the sign bit of positives
    const ascending = bits & 0x80000000 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
    keys[i] = (0xffffffff - ascending) * 2 ** ID_BITS + i;
  }
  keys.sort();
  const mask = 2 ** ID_BITS;
  for (let i = 0; i < V; i++) ids[i] = keys[i] % mask;
  return ids;
}

export function generate(
  model: Llama,
  tokenizer: Tokenizer,
  prompts: number[][],
  opts: GenerateOptions,
): Generation[] {
  const B = prompts.length;
  if (B === 0) return [];
  const c = model.config;
  const V = c.vocab_size;
  const P = Math.max(...prompts.map((p) => p.length));
  if (prompts.some((p) => p.length === 0)) throw new Error("generate: empty prompt (start prompts with BOS)");
  if (opts.forced && opts.forced.length !== B)
    throw new Error(`generate: forced tokens for ${opts.forced.length} rows, but ${B} prompts`);
  for (const [b, m] of (opts.forced ?? []).entries())
    for (const id of m?.values() ?? [])
      if (!Number.isInteger(id) || id < 0 || id >= V)
        throw new Error(`generate: row ${b} forces token ${id}, outside the vocabulary of ${V}`);
  if (P >= c.max_position_embeddings) {
    throw new Error(
      `generate: prompt of ${P} tokens leaves no room (max_position_embeddings ${c.max_position_embeddings})`,
    );
  }
  const maxNew = Math.max(0, Math.min(opts.maxNewTokens, c.max_position_embeddings - P));
  const eos = new Set(opts.eosIds ?? [...model.eosIds, tokenizer.eosId]);
  const stops = (opts.stop ?? []).filter((s) => s.length > 0);
  const pad = c.pad_token_id ?? tokenizer.padId;
  const rng = new Rng(opts.seed ?? 0);
  const useCache = opts.useCache ?? true;

  const seqs = prompts.map((p) => [...new Array<number>(P - p.length).fill(pad), ...p]);
  const masks = prompts.map((p) => [
    ...new Array<number>(P - p.length).fill(0),
    ...new Array<number>(p.length).fill(1),
  ]);
  const out: Generation[] = prompts.map(() => ({ ids: [], text: "", logProbs: [], finishReason: "length" }));
  const done = new Array<boolean>(B).fill(false);
  const forcing = new Array<boolean>(B).fill(opts.forced !== undefined);

  const cache = useCache ? new KVCache(c, B, P + maxNew) : undefined;
  const lastLogits = (ids: number[][], mask: number[][]): Float32Array =>
    tf.tidy(() => {
      const input = tf.tensor2d(ids, [B, ids[0].length], "int32");
      return model
        .forward(input, { attentionMask: mask, cache, lastOnly: true })
        .logits.dataSync() as Float32Array;
    });

  try {
    let logits = maxNew > 0 ? lastLogits(seqs, masks) : new Float32Array(0);
    for (let step = 0; step < maxNew; step++) {
      // Rows that finished earlier feed padding the others cannot see.
      const stepMask = done.map((d) => (d ? 0 : 1));
      const fed: number[] = [];
      for (let b = 0; b < B; b++) {
        if (done[b]) {
          fed.push(pad);
          continue;
        }
        const row = logits.subarray(b * V, (b + 1) * V);
        const g = out[b];
        const sampled = sampleToken(row, opts, rng);
        const forcedId = forcing[b] ? opts.forced?.[b]?.get(g.ids.length) : undefined;
        const { id, logProb } =
          forcedId === undefined ? sampled : { id: forcedId, logProb: logProbOf(row, forcedId) };
        if (forcedId === undefined && id === opts.forcedUntil) forcing[b] = false;
        g.ids.push(id);
        g.logProbs.push(logProb);
        fed.push(id);
        opts.onToken?.(b, id, row);
        if (eos.has(id)) {
          g.finishReason = "eos";
          done[b] = true;
          continue;
        }
        if (stops.length > 0) {
          const text = tokenizer.decode(g.ids);
          const at = firstStop(text, stops);
          if (at >= 0) {
            g.finishReason = "stop";
            g.text = text.slice(0, at);
            done[b] = true;
          }
        }
      }
      if (done.every(Boolean) || step === maxNew - 1) break;
      if (cache) {
        logits = lastLogits(
          fed.map((id) => [id]),
          stepMask.map((m) => [m]),
        );
      } else {
        fed.forEach((id, b) => {
          seqs[b].push(id);
          masks[b].push(stepMask[b]);
        });
        logits = lastLogits(seqs, masks);
      }
    }
  } finally {
    cache?.dispose();
  }
  for (const g of out) {
    if (g.finishReason !== "stop") g.text = tokenizer.decode(g.ids.filter((id) => !eos.has(id)));
  }
  return out;
}

/** A row's largest logit, its id (ties to the lowest) and log Σ exp(logits): its full softmax at
 * temperature 1. */
function normaliser(logits: ArrayLike<number>): { max: number; argmax: number; logZ: number } {
  let max = Number.NEGATIVE_INFINITY;
  let argmax = 0;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i] > max) {
      max = logits[i];
      argmax = i;
    }
  }
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i] - max);
  return { max, argmax, logZ: max + Math.log(z) };
}

/** log p(id) under a row's full softmax at temperature 1. */
function logProbOf(logits: ArrayLike<number>, id: number): number {
  return logits[id] - normaliser(logits).logZ;
}

/** Where the earliest of `stops` begins in `text`, or -1. */
export function firstStop(text: string, stops: readonly string[]): number {
  let best = -1;
  for (const s of stops) {
    const at = text.indexOf(s);
    if (at >= 0 && (best < 0 || at < best)) best = at;
  }
  return best;
}
