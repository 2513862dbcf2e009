// Self-instruct: the model writes new prompts from a few seed prompts. Only prompts that parse as
// an instance of a known family survive, so every written prompt has a verifiable answer.
import { parsePrompt } from "./families.ts";
import type { Rng } from "./random.ts";
import type { WrittenPrompt } from "./task.ts";

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

/** `count` few-shot sets of `shots` prompts each, drawn from one family's seed prompts. */
export function fewShotSetsOf(rng: Rng, familyPrompts: readonly string[], count: number, shots: number) {
  if (familyPrompts.length === 0) throw new Error("fewShotSetsOf: no seed prompts");
  return Array.from({ length: count }, () => rng.shuffle(familyPrompts).slice(0, shots));
}

/**
 * Up to `wanted` prompts, taken from each family in turn: the first of every family, then the
 * second of every family, and so on; a family that runs out leaves its turns to the others.
 */
export function takeInTurn(groups: readonly (readonly string[])[], wanted: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < wanted && groups.some((g) => i < g.length); i++) {
    for (const g of groups) if (i < g.length && out.length < wanted) out.push(g[i]);
  }
  return out;
}

export interface WrittenPrompts {
  /** The kept prompts, the groups in turn. */
  prompts: string[];
  /** Prompt-writing prompts sent, answers that held a usable prompt, writing rounds. */
  asked: number;
  wellFormed: number;
  rounds: number;
  /** Kept prompts per group. */
  byFamily: Record<string, number>;
  /** Why answers were dropped, with counts (malformed, repeats, near duplicates). */
  rejected: Record<string, number>;
}

export interface WritePromptsOptions {
  rng: Rng;
  seedPrompts: readonly string[];
  wanted: number;
  shots: number;
  /** The group of a prompt (a synthetic family), or null: ungrouped prompts form one group. */
  groupOf(prompt: string): string | null;
  /** The new prompt in an answer, or why there is none (malformed, of a group the run does not use). */
  parse(text: string): WrittenPrompt;
  /** Beyond exact repeats: too close to a seen prompt (n-gram overlap for open-ended prompts). */
  nearDuplicate?(prompt: string, seen: ReadonlySet<string>): boolean;
  /** Prompts already used (seed, held-out, earlier iterations'); kept prompts are added to it. */
  seen: Set<string>;
  /** Has the model write one prompt per few-shot set; one text back per set, in order. */
  write(fewShotSets: string[][]): Promise<string[]>;
  maxRounds?: number;
}

const UNGROUPED = "all";

/**
 * Self-instruct with an equal share of prompts per group. Each group is shown only its own
 * examples, and groups that come back short of their share (malformed answers, repeats of seen
 * prompts) are asked again, more times the fewer of their answers were kept. Without balancing,
 * a group whose prompts repeat seed prompts more often (a smaller space) is under-represented,
 * and DPO then trades that group's accuracy for the others'.
 */
export async function writePromptsInTurn(opts: WritePromptsOptions): Promise<WrittenPrompts> {
  const grouped = new Map<string, string[]>();
  for (const p of opts.seedPrompts) {
    const g = opts.groupOf(p) ?? UNGROUPED;
    grouped.set(g, [...(grouped.get(g) ?? []), p]);
  }
  const groups = [...grouped].sort(([a], [b]) => (a < b ? -1 : 1));
  if (groups.length === 0) throw new Error("writePromptsInTurn: no seed prompts of the run's families");
  const share = Math.ceil(opts.wanted / groups.length);
  const kept = new Map<string, string[]>(groups.map(([g]) => [g, []]));
  const tries = new Map<string, { asked: number; kept: number }>(
    groups.map(([g]) => [g, { asked: 0, kept: 0 }]),
  );
  const rejected: Record<string, number> = {};
  let wellFormed = 0;
  /** Keeps the prompt in `text`, or says why not. */
  const keep = (text: string, t: { kept: number }): string | null => {
    const written = opts.parse(text);
    if (!written.ok) return written.reason;
    wellFormed++;
    const { prompt } = written;
    // Kept under the group it is, counted for the group it was asked for.
    const list = kept.get(opts.groupOf(prompt) ?? UNGROUPED);
    if (list === undefined) return "of a group the run does not use";
    if (opts.seen.has(prompt)) return "repeats a seen prompt";
    if (opts.nearDuplicate?.(prompt, opts.seen)) return "near duplicate of a seen prompt";
    opts.seen.add(prompt);
    list.push(prompt);
    t.kept++;
    return null;
  };
  let asked = 0;
  let rounds = 0;
  for (; rounds < (opts.maxRounds ?? 4); rounds++) {
    const sets: string[][] = [];
    const askedFor: string[] = [];
    for (const [group, seeds] of groups) {
      const short = share - (kept.get(group)?.length ?? 0);
      if (short <= 0) continue;
      const t = tries.get(group)!;
      // The group's yield so far (2/3 before any try), floored so that one bad round does not
      // ask for thousands.
      const yieldSoFar = t.asked === 0 ? 2 / 3 : Math.max(0.1, t.kept / t.asked);
      const count = Math.ceil(short / yieldSoFar);
      for (const set of fewShotSetsOf(opts.rng, seeds, count, opts.shots)) {
        sets.push(set);
        askedFor.push(group);
      }
    }
    if (sets.length === 0) break;
    const texts = await opts.write(sets);
    asked += sets.length;
    for (const [i, text] of texts.entries()) {
      const t = tries.get(askedFor[i])!;
      t.asked++;
      const why = keep(text, t);
      if (why !== null) rejected[why] = (rejected[why] ?? 0) + 1;
    }
  }
  const prompts = takeInTurn([...kept.values()], opts.wanted);
  // Prompts written but not taken go back: a later iteration may write them again.
  const taken = new Set(prompts);
  const byFamily: Record<string, number> = {};
  for (const [group, list] of kept) {
    for (const p of list) if (!taken.has(p)) opts.seen.delete(p);
    const count = list.filter((p) => taken.has(p)).length;
    if (count > 0) byFamily[group] = count;
  }
  return { prompts, asked, wellFormed, rounds, byFamily, rejected };
}
