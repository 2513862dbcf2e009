// The LLM-as-a-Judge side of the rubric: the true score from the verifier, the compact judge
// prompt a character model reads, the short justification it is trained to write, and the
// parser that turns a judge's text back into a score (or says why it cannot).
import { CRITERIA, displayResponse, type Rubric } from "./criteria.ts";
import { parsePrompt } from "./families.ts";
import { type Judgement, parseScore } from "./judgement.ts";

export {
  CRITERIA,
  CRITERION_TEXT,
  type Criterion,
  displayResponse,
  MAX_RESPONSE_CHARS,
  type Rubric,
  rubricOf,
} from "./criteria.ts";

/** The exact rubric of `response` to `prompt`; throws if the prompt is no task family's. */
export function trueScore(prompt: string, response: string): Rubric {
  const parsed = parsePrompt(prompt);
  if (parsed === null)
    throw new Error(`trueScore: ${JSON.stringify(prompt)} is not a prompt of any task family`);
  return parsed.family.verify(prompt, response);
}

export const JUDGE_TAG = "Judge";

/** `Judge|Reverse: garden|nedrag|` */
export function judgePrompt(prompt: string, response: string): string {
  if (/[|\n]/.test(prompt))
    throw new Error(`judgePrompt: prompt ${JSON.stringify(prompt)} contains '|' or a newline`);
  return `${JUDGE_TAG}|${prompt}|${displayResponse(response)}|`;
}

/**
 * `+form +len +chars +most -exact Score: 4` — the criteria met, then the final score; families
 * with a worked check put it first
 * (`ob.eb.oo*eo.on.en.ok.ek.oe.ee! +form +len +start +with -not Score: 4`).
 */
export function judgeTarget(rubric: Rubric): string {
  if (rubric.criteria.length !== CRITERIA.length || rubric.names.length !== CRITERIA.length) {
    throw new Error(`judgeTarget: expected ${CRITERIA.length} criteria, got ${rubric.criteria.length}`);
  }
  const marks = rubric.names.map((name, i) => `${rubric.criteria[i] ? "+" : "-"}${name}`);
  const verdict = `${marks.join(" ")} Score: ${rubric.score}`;
  return rubric.evidence === undefined ? verdict : `${rubric.evidence} ${verdict}`;
}

/** The synthetic judge's parser: the first line must end in `Score: N` with N in 0..5. The
 * justification before it is not checked; the paper, too, reads only the final score. */
export function parseJudgement(text: string): Judgement {
  return parseScore("first-line", text);
}
