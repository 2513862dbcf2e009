// Math word problems from the user's JSONL, in the two shapes they come in: GSM8K's
// {question, answer} whose answer ends on "#### N", and the ReFT release's
// {question, answer_cot, answer_value}. Rows become MathProblems whose chain of thought ends on
// the answer trigger, the form the reward reads. Every error names the file, line and field.
import { readFile } from "node:fs/promises";
import { JsonlError } from "./jsonl.ts";
import type { MathProblem } from "./math.ts";
import { ANSWER_TRIGGER, answersMatch, extractNumber, parseNumber } from "./reward.ts";

export interface MathJsonlOptions {
  trigger?: string;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

function text(file: string, line: number, record: Record<string, unknown>, field: string): string {
  if (!(field in record)) throw new JsonlError(file, line, `missing field "${field}"`);
  const v = record[field];
  if (typeof v !== "string")
    throw new JsonlError(file, line, `field "${field}" must be a string, got ${describe(v)}`);
  if (v.trim() === "") throw new JsonlError(file, line, `field "${field}" is empty`);
  return v;
}

/** The rationale with the trigger and answer appended (unless it already ends on them). */
function withAnswer(rationale: string, answer: number, answerText: string, trigger: string): string {
  const r = rationale.trim();
  const stated = extractNumber(r, trigger);
  if (stated !== null && answersMatch(stated, answer)) return r;
  return `${r}${r.includes("\n") ? "\n" : " "}${trigger} ${answerText}`;
}

// GSM8K's calculator annotations, "<<48/2=24>>", are its tool calls, not reasoning a model writes.
const CALCULATOR = /<<[^<>]*>>/g;

function gsm8k(file: string, line: number, record: Record<string, unknown>, trigger: string): MathProblem {
  const question = text(file, line, record, "question");
  const full = text(file, line, record, "answer");
  const at = full.lastIndexOf("####");
  if (at < 0) throw new JsonlError(file, line, `field "answer" has no final answer line "#### <number>"`);
  const answerText = full.slice(at + 4).trim();
  const answer = parseNumber(answerText);
  if (answer === null)
    throw new JsonlError(file, line, `field "answer": "#### ${answerText}" is not a number`);
  const rationale = full.slice(0, at).replace(CALCULATOR, "");
  if (rationale.trim() === "")
    throw new JsonlError(file, line, `field "answer" has no reasoning before "####"`);
  return { question, cot: withAnswer(rationale, answer, answerText.replace(/,/g, ""), trigger), answer };
}

function reft(file: string, line: number, record: Record<string, unknown>, trigger: string): MathProblem {
  const question = text(file, line, record, "question");
  const rationale = text(file, line, record, "answer_cot");
  if (!("answer_value" in record)) throw new JsonlError(file, line, `missing field "answer_value"`);
  const raw = record.answer_value;
  const answer =
    typeof raw === "number"
      ? Number.isFinite(raw)
        ? raw
        : null
      : typeof raw === "string"
        ? parseNumber(raw)
        : null;
  if (answer === null)
    throw new JsonlError(
      file,
      line,
      `field "answer_value" must be a number or a numeric string, got ${typeof raw === "string" ? JSON.stringify(raw) : describe(raw)}`,
    );
  return { question, cot: withAnswer(rationale, answer, String(answer), trigger), answer };
}

/** MathProblems from JSONL text; `file` only names the source in errors. Blank lines are skipped. */
export function parseMathJsonl(source: string, file: string, opts: MathJsonlOptions = {}): MathProblem[] {
  const trigger = opts.trigger ?? ANSWER_TRIGGER;
  const out: MathProblem[] = [];
  source.split("\n").forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === "") return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (err) {
      throw new JsonlError(file, line, `bad JSON (${(err as Error).message})`);
    }
    if (value === null || typeof value !== "object" || Array.isArray(value))
      throw new JsonlError(file, line, `expected a JSON object, got ${describe(value)}`);
    const record = value as Record<string, unknown>;
    if ("answer_cot" in record) out.push(reft(file, line, record, trigger));
    else if ("answer" in record) out.push(gsm8k(file, line, record, trigger));
    else
      throw new JsonlError(
        file,
        line,
        `missing field "answer" (GSM8K: {question, answer ending "#### N"}) or "answer_cot" (ReFT: {question, answer_cot, answer_value})`,
      );
  });
  if (out.length === 0) throw new JsonlError(file, null, "empty file: no math problems");
  return out;
}

export async function readMathJsonl(path: string, opts: MathJsonlOptions = {}): Promise<MathProblem[]> {
  let source: string;
  try {
    source = await readFile(path, "utf8");
  } catch (err) {
    throw new JsonlError(path, null, `cannot read (${(err as Error).message})`);
  }
  return parseMathJsonl(source, path, opts);
}
