// How far two judges agree when they score the same candidates (A/B judging, `--impl ab`). Neither
// judge is taken as the truth: pairwiseAccuracy (eval.ts) measures a judge against true scores,
// which drops pairs the truth ties; here a tie of either judge is a verdict of its own, so it is
// counted, not dropped or given half credit.
import { spearman } from "./eval.ts";

/** A judge's verdict on a candidate pair (a, b): it scores a higher, b higher, or the two the same. */
export type Preference = "a" | "b" | "tie";
export const PREFERENCES: readonly Preference[] = ["a", "b", "tie"];

export interface JudgeAgreement {
  /** Prompts with scores from both judges. */
  prompts: number;
  /** Pairs of candidates of the same prompt that both judges scored (every figure below is over these). */
  pairs: number;
  /** Pairs left out because a judge has no score for one of the two candidates (its output did not parse). */
  unjudged: number;
  /** Pairs both judges ordered (neither tied). */
  decided: number;
  /** Of the decided pairs, those both judges ordered the same way. */
  agreed: number;
  /** agreed / decided; null when no pair was decided by both. */
  agreement: number | null;
  /** Pairs exactly one judge tied, and pairs both tied. */
  oneTied: number;
  bothTied: number;
  /** confusion[p][s]: pairs the primary judged p and the secondary s. */
  confusion: Record<Preference, Record<Preference, number>>;
  /** Spearman correlation of the two judges' mean scores over candidates both scored; null below
   * two candidates or when either side is constant. */
  spearman: number | null;
  /** Candidates in the Spearman correlation. */
  spearmanN: number;
}

const scored = (x: number | null | undefined): x is number => typeof x === "number" && Number.isFinite(x);

function preference(a: number, b: number): Preference {
  return a > b ? "a" : a < b ? "b" : "tie";
}

/**
 * Agreement of two judges' mean scores: `primary[g][c]` and `secondary[g][c]` are the scores of
 * prompt g's candidate c (null or NaN where that judge has none). Candidates are only compared
 * within a prompt, since a judge's scale may drift from prompt to prompt.
 */
export function judgeAgreement(
  primary: readonly (readonly (number | null)[])[],
  secondary: readonly (readonly (number | null)[])[],
): JudgeAgreement {
  if (primary.length !== secondary.length)
    throw new RangeError(
      `judgeAgreement: ${primary.length} prompts scored by the primary judge, ${secondary.length} by the secondary`,
    );
  const confusion = Object.fromEntries(
    PREFERENCES.map((p) => [p, Object.fromEntries(PREFERENCES.map((s) => [s, 0]))]),
  ) as JudgeAgreement["confusion"];
  let pairs = 0;
  let unjudged = 0;
  const flatP: number[] = [];
  const flatS: number[] = [];
  primary.forEach((p, g) => {
    const s = secondary[g];
    if (p.length !== s.length)
      throw new RangeError(
        `judgeAgreement: prompt ${g} has ${p.length} candidates scored by the primary judge, ${s.length} by the secondary`,
      );
    p.forEach((x, c) => {
      const y = s[c];
      if (scored(x) && scored(y)) {
        flatP.push(x);
        flatS.push(y);
      }
    });
    for (let i = 0; i < p.length; i++)
      for (let j = i + 1; j < p.length; j++) {
        const [pi, pj, si, sj] = [p[i], p[j], s[i], s[j]];
        if (!scored(pi) || !scored(pj) || !scored(si) || !scored(sj)) {
          unjudged++;
          continue;
        }
        pairs++;
        confusion[preference(pi, pj)][preference(si, sj)]++;
      }
  });
  const agreed = confusion.a.a + confusion.b.b;
  const decided = agreed + confusion.a.b + confusion.b.a;
  const bothTied = confusion.tie.tie;
  const rho = flatP.length > 1 ? spearman(flatP, flatS) : Number.NaN;
  return {
    prompts: primary.length,
    pairs,
    unjudged,
    decided,
    agreed,
    agreement: decided > 0 ? agreed / decided : null,
    oneTied: pairs - decided - bothTied,
    bothTied,
    confusion,
    spearman: Number.isFinite(rho) ? rho : null,
    spearmanN: flatP.length,
  };
}
