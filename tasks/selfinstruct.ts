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

/** The prompt the model wrote (its first line, spaces trimmed) if it is a valid task prompt. */
export function parseWrittenPrompt(text: string): string | null {
  const line = text.split("\n", 1)[0].trim();
  return parsePrompt(line) === null ? null : line;
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
