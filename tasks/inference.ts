// ReFT's inference-time strategies (Luong et al. 2024): Top-1 takes the greedy solution, Vote@K
// the majority answer of K sampled solutions, Rerank@K the answer of the sample a reranker
// (model/reranker.ts) scores highest. Each gives one right/wrong per question, so the three
// compare on the same questions with paired intervals.
import { type Interval, type PairedGain, pairedGain, wilson } from "./eval.ts";
import { answersMatch, extractNumber, majorityVote } from "./reward.ts";

export interface AnswerOptions {
  trigger?: string;
  /** |answer − gold| at most this counts as correct. Default 1e-2 (reward.ts). */
  tolerance?: number;
}

/** Whether a solution's extracted answer is the gold one: Top-1's verdict, and the reranker's
 * training label (1 when true). */
export function isCorrect(text: string, gold: number, opts: AnswerOptions = {}): boolean {
  const answer = extractNumber(text, opts.trigger);
  return answer !== null && answersMatch(answer, gold, opts.tolerance);
}

/**
 * Vote@K: the majority answer of the samples is the gold one. Samples without a readable answer
 * abstain; none readable is wrong. A tie goes to the answer that appeared first (majorityVote).
 */
export function voteAtK(samples: readonly string[], gold: number, opts: AnswerOptions = {}): boolean {
  const vote = majorityVote(
    samples.map((s) => extractNumber(s, opts.trigger)),
    opts.tolerance,
  );
  return vote.answer !== null && answersMatch(vote.answer, gold, opts.tolerance);
}

/**
 * The index of the sample Rerank@K answers with: the highest-scoring one among those with a
 * readable answer, null when none has one. Equal scores go to the earliest sample, so when the
 * greedy solution is put first, a reranker that cannot tell samples apart falls back to Top-1. A
 * NaN score ranks as −∞.
 */
export function rerankPick(
  samples: readonly string[],
  scores: readonly number[],
  opts: Pick<AnswerOptions, "trigger"> = {},
): number | null {
  if (scores.length !== samples.length)
    throw new RangeError(`rerankPick: ${samples.length} samples but ${scores.length} scores`);
  const rank = (i: number) => (Number.isNaN(scores[i]) ? Number.NEGATIVE_INFINITY : scores[i]);
  let best: number | null = null;
  samples.forEach((text, i) => {
    if (extractNumber(text, opts.trigger) === null) return;
    if (best === null || rank(i) > rank(best)) best = i;
  });
  return best;
}

/** Rerank@K: the answer of the reranker's pick is the gold one; no readable answer is wrong. */
export function rerankAtK(
  samples: readonly string[],
  scores: readonly number[],
  gold: number,
  opts: AnswerOptions = {},
): boolean {
  const pick = rerankPick(samples, scores, opts);
  return pick !== null && isCorrect(samples[pick], gold, opts);
}

export interface QuestionSamples {
  gold: number;
  /** The greedy (temperature 0) solution: Top-1. */
  greedy: string;
  /** The K sampled solutions that Vote@K and Rerank@K choose among. */
  samples: readonly string[];
  /** The reranker's score of each sample; give them for every question or for none. */
  scores?: readonly number[];
}

export interface StrategyAccuracy {
  correct: number;
  n: number;
  accuracy: number;
  /** Wilson 95% interval. */
  ci95: Interval;
}

export interface InferenceReport {
  /** Samples per question used (the first k of each). */
  k: number;
  /** Per question, in order: whether each strategy answered it correctly. */
  top1: boolean[];
  voteAtK: boolean[];
  /** Null when no scores were given. */
  rerankAtK: boolean[] | null;
  accuracy: { top1: StrategyAccuracy; voteAtK: StrategyAccuracy; rerankAtK: StrategyAccuracy | null };
  /** Paired gains (first minus second) over the same questions. */
  gains: {
    voteOverTop1: PairedGain;
    rerankOverTop1: PairedGain | null;
    rerankOverVote: PairedGain | null;
  };
}

function strategyAccuracy(correct: readonly boolean[]): StrategyAccuracy {
  const c = correct.filter(Boolean).length;
  const n = correct.length;
  return { correct: c, n, accuracy: n === 0 ? 0 : c / n, ci95: wilson(c, n) };
}

/**
 * Top-1, Vote@K and Rerank@K over questions that each have the same number of samples; `k`
 * (default: all of them) takes the first k of each, so one sampling run gives every smaller K.
 */
export function evaluateInference(
  questions: readonly QuestionSamples[],
  opts: AnswerOptions & { k?: number } = {},
): InferenceReport {
  const withScores = questions.filter((q) => q.scores !== undefined).length;
  if (withScores !== 0 && withScores !== questions.length)
    throw new RangeError(`evaluateInference: ${withScores} of ${questions.length} questions have scores`);
  const available = questions.length === 0 ? 0 : questions[0].samples.length;
  const k = opts.k ?? available;
  if (questions.length > 0 && (!Number.isInteger(k) || k < 1 || k > available))
    throw new RangeError(`evaluateInference: k = ${k}, but questions have ${available} samples`);
  questions.forEach((q, i) => {
    if (q.samples.length !== available)
      throw new RangeError(
        `evaluateInference: question ${i} has ${q.samples.length} samples, question 0 has ${available}`,
      );
    if (q.scores && q.scores.length !== q.samples.length)
      throw new RangeError(
        `evaluateInference: question ${i} has ${q.samples.length} samples but ${q.scores.length} scores`,
      );
  });
  const top1 = questions.map((q) => isCorrect(q.greedy, q.gold, opts));
  const vote = questions.map((q) => voteAtK(q.samples.slice(0, k), q.gold, opts));
  const rerank =
    withScores > 0
      ? questions.map((q) => rerankAtK(q.samples.slice(0, k), q.scores!.slice(0, k), q.gold, opts))
      : null;
  return {
    k,
    top1,
    voteAtK: vote,
    rerankAtK: rerank,
    accuracy: {
      top1: strategyAccuracy(top1),
      voteAtK: strategyAccuracy(vote),
      rerankAtK: rerank ? strategyAccuracy(rerank) : null,
    },
    gains: {
      voteOverTop1: pairedGain(vote, top1),
      rerankOverTop1: rerank ? pairedGain(rerank, top1) : null,
      rerankOverVote: rerank ? pairedGain(rerank, vote) : null,
    },
  };
}
