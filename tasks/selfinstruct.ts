// Self-instruct: the model writes new prompts from a few seed prompts. Only prompts that parse as
// an instance of a known family survive, so every written prompt has a verifiable answer.
import { parsePrompt } from "./families.ts";
import type { Rng } from "./random.ts";

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

/** Prompts grouped by task family (family names sorted, so the grouping is deterministic). */
export function promptsByFamily(prompts: readonly string[]): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const p of prompts) {
    const parsed = parsePrompt(p);
    if (parsed === null) throw new Error(`promptsByFamily: ${JSON.stringify(p)} is no task family's prompt`);
    const group = groups.get(parsed.family.name) ?? [];
    group.push(p);
    groups.set(parsed.family.name, group);
  }
  return new Map([...groups].sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * `count` few-shot sets of `shots` seed prompts, each set from one family, the families in turn
 * from a random first one. The model writes a prompt of the family it is shown, so every family
 * gets its share of new prompts. With mixed sets the demo's model wrote about 80% `word` prompts,
 * and DPO on so few `number` pairs lowered `number` accuracy by 12 points in the second iteration.
 */
export function fewShotSets(
  rng: Rng,
  seedPrompts: readonly string[],
  count: number,
  shots: number,
): string[][] {
  const groups = [...promptsByFamily(seedPrompts).values()];
  if (groups.length === 0) throw new Error("fewShotSets: no seed prompts");
  const first = rng.int(0, groups.length - 1);
  return Array.from({ length: count }, (_, i) =>
    rng.shuffle(groups[(first + i) % groups.length]).slice(0, shots),
  );
}
