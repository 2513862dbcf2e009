// Self-instruct: the model writes new prompts from a few seed prompts. Only prompts that parse as
// an instance of a known family survive, so every written prompt has a verifiable answer.
import { parsePrompt } from "./families.ts";

export const WRITE_TAG = "Write";

/** `Write|Reverse: apple|Add 3 and 9|` — the model answers with one new prompt. */
export function promptWritingPrompt(fewShot: readonly string[]): string {
  if (fewShot.length === 0) throw new Error("promptWritingPrompt: needs at least one example prompt");
  for (const p of fewShot) {
    if (p.length === 0 || /[|\n]/.test(p)) {
      throw new Error(
        `promptWritingPrompt: example ${JSON.stringify(p)} is empty or contains '|' or a newline`,
      );
    }
  }
  return `${WRITE_TAG}|${fewShot.join("|")}|`;
}

/**
 * The prompt the model wrote (its first line, spaces trimmed) if it is a valid task prompt, of one
 * of `families` when given (the run's families: a prompt of another one would train what the run
 * does not evaluate).
 */
export function parseWrittenPrompt(text: string, families?: readonly string[]): string | null {
  const line = text.split("\n", 1)[0].trim();
  const parsed = parsePrompt(line);
  if (parsed === null) return null;
  return families === undefined || families.includes(parsed.family.name) ? line : null;
}

/** Prompts in first-seen order, without repeats and without any in `seen` (e.g. seed and held-out prompts). */
export function dedupe(prompts: Iterable<string>, seen: Iterable<string> = []): string[] {
  const taken = new Set(seen);
  const out: string[] = [];
  for (const p of prompts) {
    if (taken.has(p)) continue;
    taken.add(p);
    out.push(p);
  }
  return out;
}
