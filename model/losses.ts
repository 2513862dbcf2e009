// Training objectives. Each returns tensors so the trainer can differentiate them; the sum-style
// variants take a normaliser so micro-batches add up to exactly the full-batch loss. PPO's and
// GRPO's terms live in ppo.ts, next to their plain-number forms.
import * as tf from "@tensorflow/tfjs";
import type { Llama } from "./llama.ts";
import { type PromptResponse, responseLogProbsTensor } from "./score.ts";

/** Number of response tokens, the SFT loss's denominator. */
export function responseTokenCount(batch: PromptResponse[]): number {
  return batch.reduce((n, ex) => n + ex.response.length, 0);
}

/** The SFT loss's denominator: response tokens, or examples with `perExample`, each counted at
 * its row's weight. */
export function sftNormaliser(batch: PromptResponse[], perExample = false): number {
  return batch.reduce((n, ex) => n + (ex.weight ?? 1) * (perExample ? 1 : ex.response.length), 0);
}

/** Cross-entropy on response tokens only (prompt tokens masked out), summed and divided by
 * `normaliser` (default: this batch's response token count, i.e. the per-token mean). With
 * `perExample`, each row's sum is first divided by its own token count, so every example weighs
 * the same whatever its length (then `normaliser` defaults to the number of rows). A row's
 * `weight` scales its tokens (or, per example, the row) in the sum and in the default
 * normaliser, so a small part of a mix can weigh more without changing the others' balance. */
export function sftLoss(
  model: Llama,
  batch: PromptResponse[],
  opts: { normaliser?: number; training?: boolean; dropoutSeed?: number; perExample?: boolean } = {},
): tf.Scalar {
  const normaliser = opts.normaliser ?? sftNormaliser(batch, opts.perExample);
  if (normaliser <= 0) throw new Error("sftLoss: batch has no response tokens");
  const { sum } = responseLogProbsTensor(model, batch, {
    training: opts.training ?? true,
    dropoutSeed: opts.dropoutSeed,
  });
  const perRow = batch.map(
    (ex) => (ex.weight ?? 1) / (opts.perExample ? Math.max(1, ex.response.length) : 1),
  );
  const rows = perRow.every((w) => w === 1) ? sum : sum.mul(tf.tensor1d(perRow));
  return rows.sum().neg().div(normaliser);
}

export interface DpoTerms {
  /** mean of -log σ(β((πc − rc) − (πr − rr))) */
  loss: tf.Scalar;
  /** mean of β(πc − rc) − β(πr − rr) */
  rewardMargin: tf.Scalar;
  /** fraction of pairs whose implicit reward prefers the chosen response */
  preferenceAccuracy: tf.Scalar;
  /** mean of β(πc − rc): below zero, the chosen answers have become less likely than under the reference */
  chosenReward: tf.Scalar;
  /** mean of β(πr − rr) */
  rejectedReward: tf.Scalar;
}

/** log σ(x) = min(x, 0) − log(1 + e^−|x|), stable for large |x|. (tf.logSigmoid's custom
 * gradient reads a disposed tensor on the wasm backend.) */
function logSigmoid(x: tf.Tensor): tf.Tensor {
  return tf.minimum(x, 0).sub(tf.log1p(tf.exp(x.abs().neg())));
}

type Vec = tf.Tensor1D | number[];
const vec = (x: Vec): tf.Tensor1D => (Array.isArray(x) ? tf.tensor1d(x) : x);

/** DPO (Rafailov et al. 2023) on summed sequence log-probs. `normaliser` defaults to the batch size. */
export function dpoLoss(
  policyChosen: Vec,
  policyRejected: Vec,
  refChosen: Vec,
  refRejected: Vec,
  beta: number,
  normaliser?: number,
): DpoTerms {
  const chosenReward = vec(policyChosen).sub(vec(refChosen)).mul(beta);
  const rejectedReward = vec(policyRejected).sub(vec(refRejected)).mul(beta);
  const margin = chosenReward.sub(rejectedReward);
  const n = normaliser ?? margin.shape[0];
  return {
    loss: logSigmoid(margin).sum().neg().div(n),
    rewardMargin: margin.sum().div(n),
    preferenceAccuracy: margin.greater(0).cast("float32").sum().div(n),
    chosenReward: chosenReward.sum().div(n),
    rejectedReward: rejectedReward.sum().div(n),
  };
}
