// The additive 5-point rubric: one point per criterion met. The criteria are independent on
// purpose, so partly right responses land on intermediate scores and best-vs-worst pairs carry
// signal for DPO. Answer families (one correct answer) check a response against that answer with
// `grade`; constraint families (many correct answers) bring their own five checks.

/** Longest response the rubric accepts as well-formed; answers of every family are shorter. */
export const MAX_RESPONSE_CHARS = 24;

/** The criteria of answer families. */
export const CRITERIA = ["form", "len", "chars", "most", "exact"] as const;
export type Criterion = (typeof CRITERIA)[number];

/** What each criterion asks, for docs and the CLI. */
export const CRITERION_TEXT: Record<Criterion, string> = {
  form: `non-empty, one line, at most ${MAX_RESPONSE_CHARS} characters, all from the task's alphabet`,
  len: "exactly as long as the correct answer",
  chars: "non-empty and uses only characters of the correct answer (no character more often than there)",
  most: "at least half of the answer's positions hold the right character",
  exact: "exactly the correct answer",
};

export interface Rubric {
  /** Number of criteria met, 0..5; 5 is a correct response. */
  score: number;
  /** One flag per criterion, in the order of `names`. */
  criteria: boolean[];
  /** The criteria's names, as the judge writes them (`+len`, `-exact`). */
  names: readonly string[];
  /**
   * A worked check the judge writes before its marks, for families whose checks need the
   * response compared with the prompt character by character (see `constraintEvidence`).
   */
  evidence?: string;
}

/** A rubric from its five flags. */
export function rubricOf(names: readonly string[], criteria: boolean[], evidence?: string): Rubric {
  if (names.length !== criteria.length) {
    throw new Error(`rubricOf: ${names.length} criteria names for ${criteria.length} flags`);
  }
  const rubric: Rubric = { score: criteria.filter(Boolean).length, criteria, names };
  if (evidence !== undefined) rubric.evidence = evidence;
  return rubric;
}

/**
 * How a response appears inside a judge prompt. Characters that would break the line format
 * ('|', newlines, non-printable) become '?', and overlong responses are cut one past the limit.
 * Neither changes the true score: '?' is in no family's alphabet, and every answer is shorter
 * than the cut, so the judge sees everything the score depends on.
 */
export function displayResponse(response: string): string {
  const clipped =
    response.length > MAX_RESPONSE_CHARS + 1 ? response.slice(0, MAX_RESPONSE_CHARS + 1) : response;
  return clipped.replace(/[^ -{}~]/g, "?");
}

export function grade(answer: string, alphabet: string, response: string): Rubric {
  const form =
    response.length > 0 &&
    response.length <= MAX_RESPONSE_CHARS &&
    [...response].every((c) => alphabet.includes(c));
  const len = response.length === answer.length;
  const chars = response.length > 0 && isSubMultiset(response, answer);
  let matches = 0;
  for (let i = 0; i < Math.min(response.length, answer.length); i++) {
    if (response[i] === answer[i]) matches++;
  }
  const most = matches * 2 >= answer.length && matches > 0;
  const exact = response === answer;
  return rubricOf(CRITERIA, [form, len, chars, most, exact]);
}

function isSubMultiset(part: string, whole: string): boolean {
  const counts = new Map<string, number>();
  for (const c of whole) counts.set(c, (counts.get(c) ?? 0) + 1);
  for (const c of part) {
    const left = counts.get(c) ?? 0;
    if (left === 0) return false;
    counts.set(c, left - 1);
  }
  return true;
}
