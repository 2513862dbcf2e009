// A rollout batch as PPO trains on it. preparePpoBatch fixes, once, everything the clipped
// objective compares against: old log-probs and values under the weights the batch starts from,
// per-token rewards, advantages and returns. Minibatch steps then recompute log-probs and values
// under the current weights, so after the first step the ratio moves off 1 and the clips act.
// Dropout stays off in both passes: a ratio must measure a change of weights, not of masks.
import * as tf from "@tensorflow/tfjs";
import type { Llama } from "./llama.ts";
import {
  approxKlTensor,
  clipBindsTensor,
  explainedVariance,
  explainedVarianceOfSums,
  gae,
  groupAdvantages,
  PPO_DEFAULTS,
  type PpoHyper,
  policyLossTensor,
  refKlK3Tensor,
  tokenRewards,
  valueLossTensor,
  whiten,
} from "./ppo.ts";
import { type PromptResponse, responseLogProbsTensor } from "./score.ts";
import type { StepStats, Trainer } from "./train.ts";

export interface PpoRollout {
  /** The ids the policy was conditioned on (≥ 1 token). */
  prompt: number[];
  /** The sampled response ids. */
  response: number[];
  /** Reference-model log-prob of each response token. */
  refLogProbs: number[];
  /** Sequence reward (ReFT: 1 correct, 0.1 wrong but extracted, 0 none). */
  reward: number;
  /** GRPO's group, the question the response answers; by default the prompt's ids. */
  group?: string;
  /**
   * Log-prob of each response token under the weights that sampled it. Given, it is the ratio's
   * denominator (an off-policy rollout, from weights older than the batch's, is corrected by it and
   * clipped as PPO clips); absent, the batch's own weights are, as for an on-policy rollout.
   */
  behaviourLogProbs?: number[];
}

/** PPO with a value head and GAE (ReFT), or GRPO: group-normalised rewards, no critic. */
export type PpoAlgorithm = "ppo" | "grpo";

export interface PpoBatch {
  algorithm: PpoAlgorithm;
  rows: PromptResponse[];
  rewards: number[];
  oldLogProbs: number[][];
  refLogProbs: number[][];
  /** Value head when the batch was prepared; null in GRPO. */
  oldValues: number[][] | null;
  /** GAE returns, the value head's targets; null in GRPO. */
  returns: number[][] | null;
  /** Per token, whitened (PPO) or the response's group-normalised reward (GRPO). */
  advantages: number[][];
  stats: PpoBatchStats;
}

export interface PpoBatchStats {
  rollouts: number;
  tokens: number;
  meanReward: number;
  /** Mean over responses of Σ_t (log π_old − log π_ref). */
  refKl: number;
  /** Of the old values against the returns; NaN in GRPO. */
  explainedVariance: number;
}

export interface PrepareOptions {
  /** Default "ppo". */
  algorithm?: PpoAlgorithm;
  /** Default PPO_DEFAULTS (ReFT's). */
  hyper?: Partial<PpoHyper>;
  /** Rows per forward pass (memory only). Default 16. */
  chunkSize?: number;
}

function checkRollouts(rollouts: readonly PpoRollout[]): void {
  if (rollouts.length === 0) throw new Error("preparePpoBatch: no rollouts");
  rollouts.forEach((r, i) => {
    const n = r.response.length;
    if (r.prompt.length === 0) throw new Error(`preparePpoBatch: rollout ${i} has an empty prompt`);
    if (n === 0) throw new Error(`preparePpoBatch: rollout ${i} has an empty response`);
    if (r.refLogProbs.length !== n)
      throw new Error(
        `preparePpoBatch: rollout ${i} has ${n} response tokens but ${r.refLogProbs.length} reference log-probs`,
      );
    if (!Number.isFinite(r.reward)) throw new Error(`preparePpoBatch: rollout ${i} has reward ${r.reward}`);
    if (r.behaviourLogProbs) {
      if (r.behaviourLogProbs.length !== n)
        throw new Error(
          `preparePpoBatch: rollout ${i} has ${n} response tokens but ${r.behaviourLogProbs.length} behaviour log-probs`,
        );
      const b = r.behaviourLogProbs.findIndex((x) => !Number.isFinite(x));
      if (b >= 0)
        throw new Error(`preparePpoBatch: rollout ${i} behaviour log-prob ${b} is ${r.behaviourLogProbs[b]}`);
    }
    const bad = r.refLogProbs.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0)
      throw new Error(`preparePpoBatch: rollout ${i} reference log-prob ${bad} is ${r.refLogProbs[bad]}`);
  });
}

/** Old log-probs (and values) of every rollout under the model's current weights, dropout off. */
function score(
  model: Llama,
  rows: PromptResponse[],
  withValues: boolean,
  chunkSize: number,
): { logProbs: number[][]; values: number[][] | null } {
  const logProbs: number[][] = [];
  const values: number[][] = [];
  for (let start = 0; start < rows.length; start += chunkSize) {
    const chunk = rows.slice(start, start + chunkSize);
    tf.tidy(() => {
      const s = responseLogProbsTensor(model, chunk, { training: false, withValues });
      const R = s.mask.shape[1];
      const lp = s.logProbs.dataSync();
      const v = s.values?.dataSync();
      chunk.forEach((ex, b) => {
        const n = ex.response.length;
        logProbs.push(Array.from(lp.subarray(b * R, b * R + n)));
        if (v) values.push(Array.from(v.subarray(b * R, b * R + n)));
      });
    });
  }
  return { logProbs, values: withValues ? values : null };
}

/**
 * Fixes a rollout batch for `ppoEpochs` passes of minibatch steps. PPO adds the value head if
 * the model lacks one (zero-initialised, so the first values are 0).
 */
export function preparePpoBatch(
  model: Llama,
  rollouts: readonly PpoRollout[],
  opts: PrepareOptions = {},
): PpoBatch {
  checkRollouts(rollouts);
  const hyper = { ...PPO_DEFAULTS, ...opts.hyper };
  const algorithm = opts.algorithm ?? "ppo";
  const ppo = algorithm === "ppo";
  if (ppo) model.addValueHead();
  const rows = rollouts.map((r) => ({ prompt: r.prompt, response: r.response }));
  const current = score(model, rows, ppo, opts.chunkSize ?? 16);
  const oldValues = current.values;
  const oldLogProbs = rollouts.map((r, i) =>
    r.behaviourLogProbs ? [...r.behaviourLogProbs] : current.logProbs[i],
  );
  const refLogProbs = rollouts.map((r) => [...r.refLogProbs]);
  const rewards = rollouts.map((r) => r.reward);
  const tokens = rows.reduce((n, r) => n + r.response.length, 0);
  const refKl =
    oldLogProbs.reduce((a, lp, i) => a + lp.reduce((s, x, t) => s + x - refLogProbs[i][t], 0), 0) /
    rollouts.length;

  let advantages: number[][];
  let returns: number[][] | null = null;
  if (ppo) {
    const values = oldValues!;
    const raw: number[][] = [];
    returns = [];
    rollouts.forEach((r, i) => {
      const g = gae(
        tokenRewards(r.reward, oldLogProbs[i], refLogProbs[i], hyper.klCoef),
        values[i],
        hyper.gamma,
        hyper.lambda,
      );
      raw.push(g.advantages);
      returns!.push(g.returns);
    });
    advantages = hyper.whitenAdvantages ? whiten(raw) : raw;
  } else {
    const groups = rollouts.map((r) => r.group ?? r.prompt.join(","));
    const perResponse = groupAdvantages(rewards, groups);
    advantages = rollouts.map((r, i) => r.response.map(() => perResponse[i]));
  }
  const scale = hyper.negativeAdvantageScale;
  if (scale !== 1) advantages = advantages.map((row) => row.map((a) => (a < 0 ? a * scale : a)));
  return {
    algorithm,
    rows,
    rewards,
    oldLogProbs,
    refLogProbs,
    oldValues,
    returns,
    advantages,
    stats: {
      rollouts: rollouts.length,
      tokens,
      meanReward: rewards.reduce((a, b) => a + b, 0) / rewards.length,
      refKl,
      explainedVariance: ppo ? explainedVariance(oldValues!.flat(), returns!.flat()) : Number.NaN,
    },
  };
}

export interface PpoStepStats extends StepStats {
  /** The gradient was not finite, so no update was applied. */
  skipped: boolean;
  rollouts: number;
  tokens: number;
  policyLoss: number;
  /** 0 in GRPO. */
  valueLoss: number;
  /** Share of tokens whose policy gradient the ratio clip cut off. */
  clipFraction: number;
  /** k3 estimate of KL(π_old ‖ π) per token. */
  approxKl: number;
  /** Mean next-token entropy per response token. */
  entropy: number;
  /** Of the current values against the returns; NaN in GRPO. */
  explainedVariance: number;
  meanReward: number;
  /** Mean over responses of Σ_t (log π − log π_ref), under the current weights. */
  refKl: number;
}

function padded(rows: readonly (readonly number[])[], R: number): tf.Tensor2D {
  const data = new Float32Array(rows.length * R);
  rows.forEach((row, b) => {
    data.set(row, b * R);
  });
  return tf.tensor2d(data, [rows.length, R]);
}

/**
 * One optimizer step on rows `indices` of `batch`: the clipped objective (plus the clipped value
 * loss in PPO, the reference-KL term in GRPO) averaged over the minibatch's tokens. A gradient
 * that is not finite skips the step (`skipped`), leaving weights and optimizer as they were.
 */
export function ppoMinibatchStep(
  trainer: Trainer,
  batch: PpoBatch,
  indices: readonly number[],
  hyper: PpoHyper,
): PpoStepStats {
  if (indices.length === 0) throw new Error("ppoMinibatchStep: empty minibatch");
  const model = trainer.model;
  const ppo = batch.algorithm === "ppo";
  const tokens = indices.reduce((n, i) => n + batch.rows[i].response.length, 0);
  const lossOf = (micro: number[]) => {
    const s = responseLogProbsTensor(
      model,
      micro.map((i) => batch.rows[i]),
      { training: false, withValues: ppo, withEntropy: true },
    );
    const R = s.mask.shape[1];
    const pick = (rows: number[][]) =>
      padded(
        micro.map((i) => rows[i]),
        R,
      );
    const mask = s.mask;
    const tokenMean = (x: tf.Tensor) => x.mul(mask).sum().div(tokens) as tf.Scalar;
    const logRatio = s.logProbs.sub(pick(batch.oldLogProbs)).mul(mask);
    const advantages = pick(batch.advantages);
    const refLogProbs = pick(batch.refLogProbs);

    const policyLoss = tokenMean(policyLossTensor(logRatio, advantages, hyper.clip));
    const entropy = tokenMean(s.entropy!);
    let loss: tf.Scalar = policyLoss;
    const out: Record<string, tf.Scalar> = {
      policyLoss,
      entropy,
      clipFraction: tokenMean(clipBindsTensor(logRatio, advantages, hyper.clip)),
      approxKl: tokenMean(approxKlTensor(logRatio)),
      refKl: s.logProbs.sub(refLogProbs).mul(mask).sum().div(indices.length) as tf.Scalar,
    };
    if (ppo) {
      const returns = pick(batch.returns!);
      const valueLoss = tokenMean(
        valueLossTensor(s.values!, pick(batch.oldValues!), returns, hyper.valueClip),
      );
      loss = loss.add(valueLoss.mul(hyper.valueCoef));
      const residual = returns.sub(s.values!).mul(mask);
      out.valueLoss = valueLoss;
      out.residualSum = residual.sum();
      out.residualSquares = residual.square().sum();
    } else if (hyper.klCoef > 0) {
      loss = loss.add(tokenMean(refKlK3Tensor(s.logProbs, refLogProbs)).mul(hyper.klCoef));
    }
    if (hyper.entropyCoef > 0) loss = loss.sub(entropy.mul(hyper.entropyCoef));
    return { loss, ...out };
  };
  const before = trainer.step;
  const stats = trainer.update([...indices], lossOf, ppo, true);

  let ev = Number.NaN;
  if (ppo) {
    const ret = indices.flatMap((i) => batch.returns![i]);
    ev = explainedVarianceOfSums({
      n: ret.length,
      ret: ret.reduce((a, r) => a + r, 0),
      ret2: ret.reduce((a, r) => a + r * r, 0),
      res: stats.residualSum,
      res2: stats.residualSquares,
    });
  }
  return {
    step: stats.step,
    lr: stats.lr,
    loss: stats.loss,
    gradNorm: stats.gradNorm,
    skipped: trainer.step === before,
    rollouts: indices.length,
    tokens,
    policyLoss: stats.policyLoss,
    valueLoss: stats.valueLoss ?? 0,
    clipFraction: stats.clipFraction,
    approxKl: stats.approxKl,
    entropy: stats.entropy,
    explainedVariance: ev,
    meanReward: indices.reduce((a, i) => a + batch.rewards[i], 0) / indices.length,
    refKl: stats.refKl,
  };
}
