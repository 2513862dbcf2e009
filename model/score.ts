// Log-probabilities of responses given prompts. Sequences are packed prompt ++ response and
// right-padded, so every real token sees exactly the positions and keys it would alone (the causal
// mask hides the padding after it). Per-token results are then realigned so column i of every row
// is response token i.
import * as tf from "@tensorflow/tfjs";
import { targetLogProbs } from "./fused.ts";
import type { Llama } from "./llama.ts";

export interface PromptResponse {
  prompt: number[];
  response: number[];
  /** How much each of its response tokens counts in the SFT loss (sftLoss), 1 when unset. */
  weight?: number;
}

export interface ResponseScores {
  /** [B, R] log p(response token i | prompt, earlier tokens); 0 at padding. */
  logProbs: tf.Tensor2D;
  /** [B, R] 1 for real response tokens. */
  mask: tf.Tensor2D;
  /** [B] summed response log-prob. */
  sum: tf.Tensor1D;
  /** [B, R] entropy of the next-token distribution each response token was drawn from; 0 at
   * padding. When asked for (training never needs it). */
  entropy?: tf.Tensor2D;
  /** [B, R] value head at the state before each response token, when asked for. */
  values?: tf.Tensor2D;
}

export interface ScoreOptions {
  /** Gradients will flow (see ForwardOptions.training). */
  training?: boolean;
  withValues?: boolean;
  withEntropy?: boolean;
  dropoutSeed?: number;
}

/** Differentiable per-token response log-probs; call inside tf.tidy / variableGrads. */
export function responseLogProbsTensor(
  model: Llama,
  batch: PromptResponse[],
  opts: ScoreOptions = {},
): ResponseScores {
  if (batch.length === 0) throw new Error("responseLogProbs: empty batch");
  batch.forEach((ex, i) => {
    if (ex.prompt.length === 0)
      throw new Error(`responseLogProbs: example ${i} has an empty prompt (need ≥1 token, e.g. BOS)`);
  });
  const B = batch.length;
  const V = model.config.vocab_size;
  const R = Math.max(1, ...batch.map((ex) => ex.response.length));
  // The longest row sets the width: the last response token is a target only, never an input.
  // (Padding every row to the longest prompt plus the longest response made judge and
  // prompt-writing rows, long prompts with short answers or the reverse, half again as wide.)
  const L = Math.max(1, ...batch.map((ex) => ex.prompt.length + ex.response.length - 1));
  const pad = model.config.pad_token_id ?? 0;

  const inputs = new Int32Array(B * L).fill(pad);
  const targets = new Int32Array(B * R).fill(pad);
  const maskData = new Float32Array(B * R);
  // Row b's response token i is predicted at position prompt_b - 1 + i. A 0/1 selection matrix
  // lines the hidden states of those positions up in one batched matmul (whose gradient every
  // backend has; gather's needs UnsortedSegmentSum, which wasm lacks), and only they go through
  // the LM head: at a 128k vocabulary the head over prompt positions would cost most of a step.
  const select = new Float32Array(B * R * L);
  batch.forEach((ex, b) => {
    const seq = [...ex.prompt, ...ex.response];
    for (let t = 0; t < Math.min(L, seq.length); t++) inputs[b * L + t] = seq[t];
    for (let i = 0; i < ex.response.length; i++) {
      maskData[b * R + i] = 1;
      targets[b * R + i] = ex.response[i];
      select[(b * R + i) * L + ex.prompt.length - 1 + i] = 1;
    }
  });

  const hidden = model.hiddenStates(tf.tensor2d(inputs, [B, L], "int32"), {
    training: opts.training,
    dropoutSeed: opts.dropoutSeed,
  });
  const picked = tf.matMul(tf.tensor3d(select, [B, R, L]), hidden) as tf.Tensor3D; // [B, R, d]
  const logits = model.logitsOf(picked); // [B, R, V]
  const mask = tf.tensor2d(maskData, [B, R]);
  // Padding columns picked no state; the mask zeroes what the head made of it.
  const logProbs = targetLogProbs(logits.reshape([B * R, V]), tf.tensor1d(targets, "int32"))
    .reshape([B, R])
    .mul(mask) as tf.Tensor2D;
  const out: ResponseScores = { logProbs, mask, sum: logProbs.sum(1) };
  if (opts.withEntropy) {
    const logp = tf.logSoftmax(logits, -1); // [B, R, V], only when scoring asks for entropy
    out.entropy = logp.exp().mul(logp).sum(-1).neg().mul(mask) as tf.Tensor2D;
  }
  if (opts.withValues) {
    if (!model.hasValueHead) throw new Error("responseLogProbs: withValues needs a model with a value head");
    out.values = model.values(picked).mul(mask) as tf.Tensor2D;
  }
  return out;
}

export interface ResponseLogProbs {
  perToken: number[][];
  sum: number[];
  /** Present when asked for. */
  entropy?: number[][];
}

function rowsOf(data: Float32Array | Int32Array | Uint8Array, R: number, lengths: number[]): number[][] {
  return lengths.map((n, b) => Array.from(data.subarray(b * R, b * R + n)));
}

/** Plain-number per-token log-probs, scored in chunks of `batchSize` rows. Entropy is opt-in:
 * it needs the full log-softmax, several tensors the size of the logits at a large vocabulary. */
export function responseLogProbs(
  model: Llama,
  batch: PromptResponse[],
  batchSize = 16,
  opts: { entropy?: boolean } = {},
): ResponseLogProbs {
  const withEntropy = opts.entropy ?? false;
  const result: ResponseLogProbs = { perToken: [], sum: [], ...(withEntropy ? { entropy: [] } : {}) };
  for (let start = 0; start < batch.length; start += batchSize) {
    const chunk = batch.slice(start, start + batchSize);
    const lengths = chunk.map((ex) => ex.response.length);
    const [lp, sum, ent] = tf.tidy(() => {
      const s = responseLogProbsTensor(model, chunk, { withEntropy });
      return [s.logProbs.dataSync(), s.sum.dataSync(), s.entropy?.dataSync()];
    });
    const R = lp.length / chunk.length;
    result.perToken.push(...rowsOf(lp, R, lengths));
    if (ent) result.entropy?.push(...rowsOf(ent, R, lengths));
    result.sum.push(...Array.from(sum));
  }
  return result;
}
