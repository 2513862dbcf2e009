// Turning judged candidates into DPO preference pairs, as in Self-Rewarding LMs: for each prompt the
// candidate with the highest mean judge score is "chosen", the lowest "rejected"; ties between them
// and prompts with fewer than two scorable candidates give no pair.

export interface JudgedCandidate {
  response: string;
  /** The ids as sampled, where the candidate came from the policy (DPO trains these). */
  tokens?: Int32Array;
  /** Summed behaviour log-prob of those ids under the sampling policy, at temperature 1. */
  logProbSum?: number;
  // One entry per judge sample; null where the judgement could not be parsed.
  scores: (number | null)[];
  policyVersion: number;
}

export interface PreferencePair {
  prompt: string;
  chosen: string;
  rejected: string;
  chosenTokens?: Int32Array;
  rejectedTokens?: Int32Array;
  chosenLogProbSum?: number;
  rejectedLogProbSum?: number;
  chosenScore: number;
  rejectedScore: number;
  policyVersion: number;
}

export type PairOutcome =
  | { kind: "pair"; pair: PreferencePair }
  | { kind: "tie"; score: number }
  | { kind: "too-few-scores"; scorable: number };

export function meanScore(scores: (number | null)[]): number | null {
  const valid = scores.filter((s): s is number => s !== null);
  if (valid.length === 0) return null;
  return valid.reduce((a, b) => a + b, 0) / valid.length;
}

/** `minGap` > 0 also drops near-ties (the paper drops exact ties only: minGap 0). */
export function pairFromJudged(prompt: string, candidates: JudgedCandidate[], minGap = 0): PairOutcome {
  const scored = candidates
    .map((candidate) => ({ candidate, mean: meanScore(candidate.scores) }))
    .filter((c): c is { candidate: JudgedCandidate; mean: number } => c.mean !== null);
  if (scored.length < 2) return { kind: "too-few-scores", scorable: scored.length };
  let best = scored[0];
  let worst = scored[0];
  for (const c of scored) {
    if (c.mean > best.mean) best = c;
    if (c.mean < worst.mean) worst = c;
  }
  if (best.mean === worst.mean || best.mean - worst.mean < minGap) return { kind: "tie", score: best.mean };
  return { kind: "pair", pair: pairOf(prompt, best, worst) };
}

/**
 * Every pair of candidates whose mean scores differ by at least `minGap` (and by more than
 * zero): up to n(n−1)/2 pairs from n candidates, where the paper takes only the best and the
 * worst. The same prompts and judgements then give DPO several times the pairs. Two candidates
 * with the same text give no pair, whatever their scores.
 */
export function allPairsFromJudged(
  prompt: string,
  candidates: JudgedCandidate[],
  minGap = 0,
): PreferencePair[] {
  const scored = candidates
    .map((candidate) => ({ candidate, mean: meanScore(candidate.scores) }))
    .filter((c): c is { candidate: JudgedCandidate; mean: number } => c.mean !== null)
    .sort((a, b) => b.mean - a.mean);
  const pairs: PreferencePair[] = [];
  for (let i = 0; i < scored.length; i++)
    for (let j = i + 1; j < scored.length; j++) {
      const [hi, lo] = [scored[i], scored[j]];
      if (hi.mean === lo.mean || hi.mean - lo.mean < minGap) continue;
      if (hi.candidate.response === lo.candidate.response) continue;
      pairs.push(pairOf(prompt, hi, lo));
    }
  return pairs;
}

/**
 * The pairs kept when a pair that rejects `greedy` (the prompt's greedy answer) must have judge
 * scores at least `minGap` apart, where other pairs need less: the evaluation scores greedy
 * answers, so pushing a right one down costs more than a wrong pair between two samples, and the
 * judge's small gaps are where it is most often wrong. Returns the pairs kept and how many went.
 */
export function withSureGreedyRejections(
  pairs: PreferencePair[],
  greedy: string | undefined,
  minGap: number,
): { kept: PreferencePair[]; dropped: number } {
  return keepGreedyRejectionsWhere(pairs, greedy, (p) => p.chosenScore - p.rejectedScore >= minGap);
}

/** The pairs that do not reject `greedy`, and those that do where `holds`; and how many went. */
function keepGreedyRejectionsWhere(
  pairs: PreferencePair[],
  greedy: string | undefined,
  holds: (pair: PreferencePair) => boolean,
): { kept: PreferencePair[]; dropped: number } {
  if (greedy === undefined) return { kept: pairs, dropped: 0 };
  const kept = pairs.filter((p) => p.rejected !== greedy || holds(p));
  return { kept, dropped: pairs.length - kept.length };
}

/**
 * The pairs kept when a pair that rejects `greedy` must hold under every one of `confirmations`
 * (further verdicts on the greedy answer): each must be parsable and leave the pair at least
 * `minGap` (and more than zero) apart. With no confirmations every such pair is dropped: a
 * confirmation that failed confirms nothing. Returns the pairs kept and how many went.
 */
export function withConfirmedGreedyRejections(
  pairs: PreferencePair[],
  greedy: string | undefined,
  confirmations: readonly (number | null)[],
  minGap: number,
): { kept: PreferencePair[]; dropped: number } {
  return keepGreedyRejectionsWhere(
    pairs,
    greedy,
    (p) =>
      confirmations.length > 0 &&
      confirmations.every((v) => v !== null && p.chosenScore - v >= minGap && p.chosenScore > v),
  );
}

/** Whether some pair a prompt's candidates form would reject `greedy`: only then is it confirmed. */
export function mayRejectGreedy(candidates: JudgedCandidate[], greedy: string, minGap: number): boolean {
  const g = candidates.find((c) => c.response === greedy);
  const gMean = g ? meanScore(g.scores) : null;
  if (gMean === null) return false;
  return candidates.some((c) => {
    const m = c.response === greedy ? null : meanScore(c.scores);
    return m !== null && m > gMean && m - gMean >= minGap;
  });
}

/**
 * The anchor of a prompt whose candidates all tie at `top` (the rubric's full mark): its greedy
 * answer as both sides of a pair, so that DPO's term cancels and only the NLL term on the chosen
 * side acts, keeping an answer the judge found nothing to improve on. Null for any other prompt,
 * or where the greedy answer is not among the candidates at that mark.
 */
export function tieAnchor(
  prompt: string,
  candidates: JudgedCandidate[],
  greedy: string | undefined,
  top: number,
): PreferencePair | null {
  if (greedy === undefined) return null;
  const outcome = pairFromJudged(prompt, candidates);
  if (outcome.kind !== "tie" || outcome.score !== top) return null;
  const g = candidates.find((c) => c.response === greedy && meanScore(c.scores) === top);
  if (!g) return null;
  const side = { candidate: g, mean: top };
  return pairOf(prompt, side, side);
}

function pairOf(
  prompt: string,
  best: { candidate: JudgedCandidate; mean: number },
  worst: { candidate: JudgedCandidate; mean: number },
): PreferencePair {
  return {
    prompt,
    chosen: best.candidate.response,
    rejected: worst.candidate.response,
    ...(best.candidate.tokens ? { chosenTokens: best.candidate.tokens } : {}),
    ...(worst.candidate.tokens ? { rejectedTokens: worst.candidate.tokens } : {}),
    ...(best.candidate.logProbSum !== undefined ? { chosenLogProbSum: best.candidate.logProbSum } : {}),
    ...(worst.candidate.logProbSum !== undefined ? { rejectedLogProbSum: worst.candidate.logProbSum } : {}),
    chosenScore: best.mean,
    rejectedScore: worst.mean,
    // A pair is as old as the oldest policy that wrote either side.
    policyVersion: Math.min(best.candidate.policyVersion, worst.candidate.policyVersion),
  };
}

// Streaming mode trains on pairs as they arrive; a pair written by a policy more than
// maxStaleness versions behind the trainer's is dropped (and counted), never trained on.
export function isFreshEnough(pairVersion: number, trainerVersion: number, maxStaleness: number): boolean {
  return trainerVersion - pairVersion <= maxStaleness;
}

/**
 * How far streaming DPO may run ahead of the pairs: after a share of the iteration's prompts has
 * been judged, at most that share of its steps. Without this pacing the trainer spent its whole
 * step budget on the first few pairs to arrive (the demo's M3 lost 23 points to it) and trained
 * on none of the rest.
 */
export function stepsAllowed(totalSteps: number, promptsDone: number, promptsTotal: number): number {
  if (promptsTotal <= 0) return totalSteps;
  return Math.floor((totalSteps * Math.min(promptsDone, promptsTotal)) / promptsTotal);
}

/**
 * The DPO steps of a strict iteration with `pairs` pairs: `steps`, or fewer when `epochs` passes
 * over the pairs take fewer (at least one step). Late iterations yield fewer pairs (most prompts
 * have only good answers by then), and the same step count would train on each pair more often.
 */
export function strictDpoSteps(
  dpo: { steps: number; batchSize: number; epochs?: number },
  pairs: number,
): number {
  if (dpo.epochs === undefined) return dpo.steps;
  return Math.min(dpo.steps, Math.max(1, Math.ceil((dpo.epochs * pairs) / dpo.batchSize)));
}

/**
 * Minibatches for streaming DPO that draw the least-drawn pairs first (ties at random), so that a
 * pair which arrived early is not trained on many times more than one which arrived late: over
 * the iteration every pair is drawn about equally often, as in strict mode's random draws.
 */
export class EvenDraws<T> {
  private draws = new Map<T, number>();

  constructor(private random: () => number) {}

  next(pool: readonly T[], size: number): T[] {
    const ranked = pool
      .map((item) => ({ item, draws: this.draws.get(item) ?? 0, tie: this.random() }))
      .sort((a, b) => a.draws - b.draws || a.tie - b.tie)
      .slice(0, size)
      .map((r) => r.item);
    for (const item of ranked) this.draws.set(item, (this.draws.get(item) ?? 0) + 1);
    return ranked;
  }
}
