// The arithmetic of PPO as ReFT runs it (and of GRPO, its critic-free variant), apart from any
// model: per-token rewards, GAE, whitening, group-normalised advantages, and the per-token terms
// of the loss. Every term has a plain-number form, which the tests check by hand, and a tensor
// form, which the update differentiates; the tests hold the two to each other.
import * as tf from "@tensorflow/tfjs";

export interface PpoHyper {
  /** Ratio clip ε: the policy term stops pulling once π/π_old leaves [1 − ε, 1 + ε]. */
  clip: number;
  /** The value head may move at most this far from its old estimate before its loss stops paying. */
  valueClip: number;
  /** Weight of the value loss (ReFT's vf_coef; the value head shares the policy's trunk). */
  valueCoef: number;
  /** β of the KL penalty against the reference: folded into per-token rewards in PPO, a loss term in GRPO. */
  klCoef: number;
  gamma: number;
  lambda: number;
  /** Whiten PPO advantages over the rollout batch (GRPO normalises within groups instead). */
  whitenAdvantages: boolean;
  /** Weight of an entropy bonus; 0 leaves entropy as a statistic only. */
  entropyCoef: number;
  /** Negative advantages are multiplied by this (1: the plain objective; 0: only responses that
   * did better than expected are pushed, up, and a wrong response's tokens after its mistake, many
   * of them right given what came before, are not pushed down). */
  negativeAdvantageScale: number;
}

/** ReFT's settings (Luong et al. 2024). */
export const PPO_DEFAULTS: PpoHyper = {
  clip: 0.2,
  valueClip: 0.2,
  valueCoef: 5,
  klCoef: 0.05,
  gamma: 1,
  lambda: 0.95,
  whitenAdvantages: true,
  entropyCoef: 0,
  negativeAdvantageScale: 1,
};

// --- advantages (plain numbers: computed once per rollout batch) -------------------------

/**
 * Per-token rewards of one response: −β(log π_old − log π_ref) at every token, plus the
 * sequence reward on the last token, so the penalty is paid where the policy drifted and the
 * verdict lands where the answer is complete.
 */
export function tokenRewards(
  reward: number,
  oldLogProbs: readonly number[],
  refLogProbs: readonly number[],
  klCoef: number,
): number[] {
  const n = oldLogProbs.length;
  if (n === 0) throw new Error("tokenRewards: empty response");
  if (refLogProbs.length !== n)
    throw new Error(`tokenRewards: ${n} log-probs but ${refLogProbs.length} reference log-probs`);
  const rewards = oldLogProbs.map((lp, t) => -klCoef * (lp - refLogProbs[t]));
  rewards[n - 1] += reward;
  return rewards;
}

/** Generalised advantage estimation over one response; the state after the last token is terminal. */
export function gae(
  rewards: readonly number[],
  values: readonly number[],
  gamma: number,
  lambda: number,
): { advantages: number[]; returns: number[] } {
  const n = rewards.length;
  if (values.length !== n) throw new Error(`gae: ${n} rewards but ${values.length} values`);
  const advantages = new Array<number>(n).fill(0);
  let running = 0;
  for (let t = n - 1; t >= 0; t--) {
    const nextValue = t + 1 < n ? values[t + 1] : 0;
    const delta = rewards[t] + gamma * nextValue - values[t];
    running = delta + gamma * lambda * running;
    advantages[t] = running;
  }
  return { advantages, returns: advantages.map((a, t) => a + values[t]) };
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const populationStd = (xs: readonly number[], m: number) =>
  Math.sqrt(xs.reduce((a, x) => a + (x - m) ** 2, 0) / xs.length);

/** Advantages shifted and scaled to zero mean, unit variance over every token of the batch. */
export function whiten(rows: readonly (readonly number[])[], eps = 1e-8): number[][] {
  const all = rows.flat();
  // One token has no spread to scale by; leave it as it is rather than divide by eps.
  if (all.length < 2) return rows.map((r) => [...r]);
  const m = mean(all);
  const s = populationStd(all, m);
  return rows.map((r) => r.map((a) => (a - m) / (s + eps)));
}

/** The rewards of each group, in the order given; `caller` names the function in the error. */
function rewardsByGroup(
  rewards: readonly number[],
  groups: readonly string[],
  caller: string,
): Map<string, number[]> {
  if (groups.length !== rewards.length)
    throw new Error(`${caller}: ${rewards.length} rewards but ${groups.length} group keys`);
  const members = new Map<string, number[]>();
  groups.forEach((g, i) => {
    const list = members.get(g);
    if (list) list.push(rewards[i]);
    else members.set(g, [rewards[i]]);
  });
  return members;
}

/**
 * GRPO's advantage of each response: (r − mean of its group) / (std of its group + eps), with
 * the population std, so a group's advantages have unit variance. A group whose rewards are all
 * equal (or of one response) carries no signal and gets 0.
 */
export function groupAdvantages(rewards: readonly number[], groups: readonly string[], eps = 1e-6): number[] {
  const members = rewardsByGroup(rewards, groups, "groupAdvantages");
  const moments = new Map<string, { m: number; s: number }>();
  for (const [g, rs] of members) {
    const m = mean(rs);
    moments.set(g, { m, s: populationStd(rs, m) });
  }
  return rewards.map((r, i) => {
    const { m, s } = moments.get(groups[i])!;
    return s === 0 ? 0 : (r - m) / (s + eps);
  });
}

/**
 * The share of groups of two or more responses whose rewards are not all equal: the only groups
 * whose responses get a non-zero GRPO advantage. NaN when no group has two responses (PPO's one
 * sample per question), where the figure means nothing.
 */
export function mixedGroupShare(rewards: readonly number[], groups: readonly string[]): number {
  const members = rewardsByGroup(rewards, groups, "mixedGroupShare");
  let sized = 0;
  let mixed = 0;
  for (const rs of members.values()) {
    if (rs.length < 2) continue;
    sized++;
    if (rs.some((r) => r !== rs[0])) mixed++;
  }
  return sized === 0 ? Number.NaN : mixed / sized;
}

// --- per-token loss terms, plain numbers ---------------------------------------------------

/** −min(ρA, clip(ρ, 1 ± ε)A) for ρ = exp(logRatio): the clipped surrogate, as a loss. */
export function policyLoss(logRatio: number, advantage: number, clip: number): number {
  const ratio = Math.exp(logRatio);
  const clipped = Math.min(Math.max(ratio, 1 - clip), 1 + clip);
  return -Math.min(ratio * advantage, clipped * advantage);
}

/**
 * True where clipping binds: the ratio has left the trust region in the direction the advantage
 * pushes it, so this token's policy gradient is zero. (|ρ − 1| > ε alone would also count tokens
 * the unclipped branch still trains.)
 */
export function clipBinds(logRatio: number, advantage: number, clip: number): boolean {
  const ratio = Math.exp(logRatio);
  return (advantage > 0 && ratio > 1 + clip) || (advantage < 0 && ratio < 1 - clip);
}

/** ½·max((V − R)², (V_old + clip(V − V_old, ±c) − R)²): the value head cannot cash in a large move. */
export function valueLoss(value: number, oldValue: number, ret: number, valueClip: number): number {
  const clipped = oldValue + Math.min(Math.max(value - oldValue, -valueClip), valueClip);
  return 0.5 * Math.max((value - ret) ** 2, (clipped - ret) ** 2);
}

/** k3 estimator of KL(old ‖ new) at a token: (ρ − 1) − log ρ; non-negative, low variance. */
export function approxKl(logRatio: number): number {
  return Math.expm1(logRatio) - logRatio;
}

/** k3 estimator of KL(π ‖ π_ref) at a token sampled from π: GRPO's per-token penalty. */
export function refKlK3(logProb: number, refLogProb: number): number {
  const d = refLogProb - logProb;
  return Math.expm1(d) - d;
}

/** Entropy of the next-token distribution given its logits (nats). */
export function entropy(logits: readonly number[]): number {
  const max = Math.max(...logits);
  const z = logits.reduce((a, l) => a + Math.exp(l - max), 0);
  const logZ = max + Math.log(z);
  return -logits.reduce((a, l) => a + Math.exp(l - logZ) * (l - logZ), 0);
}

/** Sums from which explained variance follows; they add across micro-batches. */
export interface VarianceSums {
  n: number;
  /** Σ R and Σ R² over returns. */
  ret: number;
  ret2: number;
  /** Σ (R − V) and Σ (R − V)² over residuals. */
  res: number;
  res2: number;
}

/** 1 − Var(R − V) / Var(R): 1 is a perfect critic, 0 no better than a constant, NaN when R is constant. */
export function explainedVarianceOfSums(s: VarianceSums): number {
  if (s.n === 0) return Number.NaN;
  const varRet = s.ret2 / s.n - (s.ret / s.n) ** 2;
  const varRes = s.res2 / s.n - (s.res / s.n) ** 2;
  return varRet <= 1e-12 ? Number.NaN : 1 - varRes / varRet;
}

export function explainedVariance(values: readonly number[], returns: readonly number[]): number {
  if (values.length !== returns.length)
    throw new Error(`explainedVariance: ${values.length} values but ${returns.length} returns`);
  const s: VarianceSums = { n: values.length, ret: 0, ret2: 0, res: 0, res2: 0 };
  returns.forEach((r, i) => {
    const e = r - values[i];
    s.ret += r;
    s.ret2 += r * r;
    s.res += e;
    s.res2 += e * e;
  });
  return explainedVarianceOfSums(s);
}

// --- the same terms on tensors (elementwise; the caller masks and normalises) --------------

export function policyLossTensor(logRatio: tf.Tensor, advantages: tf.Tensor, clip: number): tf.Tensor {
  const ratio = logRatio.exp();
  const clipped = ratio.clipByValue(1 - clip, 1 + clip);
  return tf.minimum(ratio.mul(advantages), clipped.mul(advantages)).neg();
}

/** 1 where clipping binds (see clipBinds), else 0. */
export function clipBindsTensor(logRatio: tf.Tensor, advantages: tf.Tensor, clip: number): tf.Tensor {
  const ratio = logRatio.exp();
  const high = ratio.greater(1 + clip).logicalAnd(advantages.greater(0));
  const low = ratio.less(1 - clip).logicalAnd(advantages.less(0));
  return high.logicalOr(low).cast("float32");
}

export function valueLossTensor(
  values: tf.Tensor,
  oldValues: tf.Tensor,
  returns: tf.Tensor,
  valueClip: number,
): tf.Tensor {
  const clipped = oldValues.add(values.sub(oldValues).clipByValue(-valueClip, valueClip));
  return tf.maximum(values.sub(returns).square(), clipped.sub(returns).square()).mul(0.5);
}

export function approxKlTensor(logRatio: tf.Tensor): tf.Tensor {
  return logRatio.exp().sub(1).sub(logRatio);
}

export function refKlK3Tensor(logProbs: tf.Tensor, refLogProbs: tf.Tensor): tf.Tensor {
  const d = refLogProbs.sub(logProbs);
  return d.exp().sub(1).sub(d);
}
