// ReFT's answer checking: the answer is what follows the last answer trigger (N-CoT style), read
// as a number; the reward is 1 for a correct answer, 0.1 for a number that is wrong, 0 when no
// number can be read, so the policy first learns to finish in the checkable form, then to be right.
// Majority voting over several sampled answers lives here too: it is answer checking across samples.

/** The phrase a chain of thought ends on, before its final answer. */
export const ANSWER_TRIGGER = "Therefore, the answer is:";

export interface RewardOptions {
  trigger?: string;
  /** |answer − gold| at most this counts as correct. Default 1e-2. */
  tolerance?: number;
  /** Reward of a number that is wrong. Default 0.1. */
  partial?: number;
}

/**
 * The answer text: after the last trigger, up to the end of that line, trimmed; null without a
 * trigger. Only the line is kept because a sampler that overruns its stop goes on to a new one.
 */
export function extractAnswer(text: string, trigger = ANSWER_TRIGGER): string | null {
  const at = text.lastIndexOf(trigger);
  if (at < 0) return null;
  const rest = text.slice(at + trigger.length);
  const line = rest.replace(/^[ \t]*\r?\n?/, "").split(/\r?\n/, 1)[0];
  return line.trim();
}

// Digits with optional thousands commas (groups of exactly three), or plain digits, then an
// optional decimal part; a bare ".5" too.
const NUMBER = /^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?$/;

/**
 * A number as answers write it: "1,234", "-5", "3.50", ".5", "$12", "45%", a closing full stop;
 * the Unicode minus sign as well. Anything else (words, units, two numbers) is null: such an
 * answer is not in the checkable form.
 */
export function parseNumber(raw: string): number | null {
  let s = raw.trim().replace(/\u2212/g, "-");
  s = s.replace(/\.$/, "");
  s = s.replace(/^([+-]?)\$/, "$1").replace(/%$/, "");
  if (s === "" || s === "+" || s === "-" || !NUMBER.test(s) || !/\d/.test(s)) return null;
  const value = Number(s.replace(/,/g, ""));
  return Number.isFinite(value) ? value : null;
}

/** The numeric answer of a chain of thought, or null. */
export function extractNumber(text: string, trigger = ANSWER_TRIGGER): number | null {
  const answer = extractAnswer(text, trigger);
  return answer === null ? null : parseNumber(answer);
}

export function answersMatch(a: number, b: number, tolerance = 1e-2): boolean {
  return Math.abs(a - b) <= tolerance;
}

/** ReFT's reward of one response against the gold answer. */
export function reftReward(text: string, gold: number, opts: RewardOptions = {}): number {
  const answer = extractNumber(text, opts.trigger);
  if (answer === null) return 0;
  return answersMatch(answer, gold, opts.tolerance) ? 1 : (opts.partial ?? 0.1);
}

export interface Vote {
  /** The winning answer, null when no sample gave one. */
  answer: number | null;
  votes: number;
  /** Samples that gave an answer at all. */
  answered: number;
  /** Every answer with the winning number of votes, in order of first appearance. */
  tied: number[];
}

/**
 * Majority vote over K sampled answers (nulls abstain). Answers within `tolerance` of an earlier
 * one count for it. A tie goes to the answer that appeared first, so with the greedy sample put
 * first, voting never does worse than it on a tie.
 */
export function majorityVote(answers: readonly (number | null)[], tolerance = 1e-2): Vote {
  const counts: { value: number; votes: number }[] = [];
  let answered = 0;
  for (const a of answers) {
    if (a === null || !Number.isFinite(a)) continue;
    answered++;
    const bucket = counts.find((c) => answersMatch(c.value, a, tolerance));
    if (bucket) bucket.votes++;
    else counts.push({ value: a, votes: 1 });
  }
  if (counts.length === 0) return { answer: null, votes: 0, answered, tied: [] };
  const best = Math.max(...counts.map((c) => c.votes));
  const tied = counts.filter((c) => c.votes === best).map((c) => c.value);
  return { answer: tied[0], votes: best, answered, tied };
}
