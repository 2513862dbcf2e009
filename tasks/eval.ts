// Measures of the self-rewarding loop: task accuracy by the verifier, head-to-head win rate of
// two models, and how well a judge's scores agree with the true rubric scores.
import { trueScore } from "./rubric.ts";

export type Interval = [lo: number, hi: number];

/** Wilson score interval for `successes` of `n` (z = 1.96 gives 95%); [0, 1] when n is 0. */
export function wilson(successes: number, n: number, z = 1.96): Interval {
  if (n === 0) return [0, 1];
  const p = successes / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

export interface AccuracyReport {
  /** Share of correct responses (every criterion met: the exact answer, or every constraint). */
  accuracy: number;
  n: number;
  correct: number;
  ci95: Interval;
  /** Mean true rubric score, 0..5: moves before accuracy does. */
  meanScore: number;
}

export function accuracy(pairs: readonly { prompt: string; response: string }[]): AccuracyReport {
  let correct = 0;
  let total = 0;
  for (const { prompt, response } of pairs) {
    const rubric = trueScore(prompt, response);
    if (rubric.criteria.every(Boolean)) correct++;
    total += rubric.score;
  }
  const n = pairs.length;
  return {
    accuracy: n === 0 ? 0 : correct / n,
    n,
    correct,
    ci95: wilson(correct, n),
    meanScore: n === 0 ? 0 : total / n,
  };
}

export interface WinRate {
  /** Shares of prompts where A scored higher, lower, the same. */
  win: number;
  loss: number;
  tie: number;
  n: number;
  /** Wilson interval of `win`. */
  ci95: Interval;
}

/** Head-to-head by true rubric score: scoresA[i] and scoresB[i] are two models' answers to prompt i. */
export function winRate(scoresA: readonly number[], scoresB: readonly number[]): WinRate {
  sameLength("winRate", scoresA, scoresB);
  let win = 0;
  let loss = 0;
  for (let i = 0; i < scoresA.length; i++) {
    if (scoresA[i] > scoresB[i]) win++;
    else if (scoresA[i] < scoresB[i]) loss++;
  }
  const n = scoresA.length;
  const share = (k: number) => (n === 0 ? 0 : k / n);
  return { win: share(win), loss: share(loss), tie: share(n - win - loss), n, ci95: wilson(win, n) };
}

export interface PairedGain {
  /** Accuracy of A minus accuracy of B on the same prompts. */
  gain: number;
  n: number;
  /** 95% interval of the gain from the per-prompt differences, so prompt difficulty cancels out. */
  ci95: Interval;
}

/**
 * How much more often model A is right than model B on the same prompts. Pairing the two answers
 * to each prompt removes the variance of which prompts were drawn, which two independent accuracy
 * intervals still carry: a gain can stand outside noise while the two intervals overlap.
 */
export function pairedGain(correctA: readonly boolean[], correctB: readonly boolean[], z = 1.96): PairedGain {
  sameLength("pairedGain", correctA, correctB);
  const n = correctA.length;
  if (n === 0) return { gain: 0, n, ci95: [-1, 1] };
  const d = correctA.map((a, i) => Number(a) - Number(correctB[i]));
  const mean = d.reduce((s, x) => s + x, 0) / n;
  const variance = n > 1 ? d.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1) : 0;
  const half = z * Math.sqrt(variance / n);
  return { gain: mean, n, ci95: [Math.max(-1, mean - half), Math.min(1, mean + half)] };
}

export interface PairwiseAgreement {
  /** Share of pairs with different true scores that the judge orders the same way (judge ties count half). */
  accuracy: number;
  pairs: number;
  /** Pairs where a judged score is missing (NaN: the judge's output did not parse); counted as wrong. */
  unjudged: number;
}

/**
 * Judge-vs-verifier agreement over pairs of candidates of the same prompt: `judged[g]` and
 * `truth[g]` are the scores of prompt g's candidates.
 */
export function pairwiseAccuracy(
  judged: readonly (readonly number[])[],
  truth: readonly (readonly number[])[],
): PairwiseAgreement {
  sameLength("pairwiseAccuracy", judged, truth);
  let credit = 0;
  let pairs = 0;
  let unjudged = 0;
  judged.forEach((group, g) => {
    const t = truth[g];
    sameLength(`pairwiseAccuracy (prompt ${g})`, group, t);
    for (let i = 0; i < t.length; i++) {
      for (let j = i + 1; j < t.length; j++) {
        if (t[i] === t[j]) continue;
        pairs++;
        if (!Number.isFinite(group[i]) || !Number.isFinite(group[j])) {
          unjudged++;
          continue;
        }
        const d = (group[i] - group[j]) * (t[i] - t[j]);
        credit += d > 0 ? 1 : d === 0 ? 0.5 : 0;
      }
    }
  });
  return { accuracy: pairs === 0 ? 0 : credit / pairs, pairs, unjudged };
}

/** Ranks 1..n, tied values sharing the mean of their ranks. */
export function averageRanks(values: readonly number[]): number[] {
  const order = values.map((v, i) => [v, i] as const).sort((x, y) => x[0] - y[0]);
  const ranks = new Array<number>(values.length);
  for (let start = 0; start < order.length; ) {
    let end = start;
    while (end + 1 < order.length && order[end + 1][0] === order[start][0]) end++;
    const rank = (start + end) / 2 + 1;
    for (let k = start; k <= end; k++) ranks[order[k][1]] = rank;
    start = end + 1;
  }
  return ranks;
}

/** Spearman rank correlation (Pearson over average ranks); NaN when either side is constant. */
export function spearman(a: readonly number[], b: readonly number[]): number {
  sameLength("spearman", a, b);
  if (a.length < 2) return Number.NaN;
  return pearson(averageRanks(a), averageRanks(b));
}

function pearson(x: readonly number[], y: readonly number[]): number {
  const n = x.length;
  const mx = x.reduce((s, v) => s + v, 0) / n;
  const my = y.reduce((s, v) => s + v, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  return sxx === 0 || syy === 0 ? Number.NaN : sxy / Math.sqrt(sxx * syy);
}

function sameLength(what: string, a: { length: number }, b: { length: number }): void {
  if (a.length !== b.length) throw new RangeError(`${what}: lengths differ (${a.length} vs ${b.length})`);
}
