// srlm's own seed data, generated from the task families: pretraining text for M0, IFT and EFT
// for SFT (M1), held-out prompts for accuracy and a held-out judge set for judge agreement.
// Deterministic for a seed; each split draws from its own random stream.
import {
  families as allFamilies,
  type Family,
  type FamilyName,
  familyByName,
  promptMaterial,
  type TaskInstance,
} from "./families.ts";
import { formatSample } from "./format.ts";
import { deriveSeed, makeRng, type Rng } from "./random.ts";
import { judgePrompt, judgeTarget } from "./rubric.ts";
import { promptsByFamily, promptWritingPrompt } from "./selfinstruct.ts";

export interface SeedDataOptions {
  seed: number;
  /** The task families to draw from (default all). */
  families?: readonly string[];
  iftSize: number;
  eftSize: number;
  heldOutSize: number;
  judgeEvalSize: number;
  /** Prompts for choosing settings (default 0), reserved from training like the held-out set. */
  devSize?: number;
  pretrainSize: number;
  /** Share of pretraining task lines with the correct answer; the rest are flawed, as web text is. */
  pretrainCorrect?: number;
  /** Candidates per judge-eval prompt (the loop samples 4). */
  candidatesPerPrompt?: number;
  /** Prompt-writing examples for SFT (default a quarter of iftSize). A large model writes prompts
   * from few-shot examples alone; a small one learns the `Write|…|` format from these. */
  selfInstructSize?: number;
  /** Few-shot examples per prompt-writing example (default 3). */
  fewShot?: number;
}

export interface PromptResponse {
  prompt: string;
  response: string;
}

export interface HeldOutItem {
  prompt: string;
  answer: string;
  family: FamilyName;
}

export interface JudgeEvalItem {
  prompt: string;
  candidates: { response: string; trueScore: number }[];
}

export interface SeedData {
  /** Whole documents in the sample format (prompt, newline, completion, newline). */
  pretrain: string[];
  /** Task prompts with correct responses. */
  ift: PromptResponse[];
  /** Judge prompts with judge targets, spread evenly over scores 0..5. */
  eft: PromptResponse[];
  heldOut: HeldOutItem[];
  judgeEval: JudgeEvalItem[];
  /** Prompts to tune settings on, so that the held-out set stays unseen by every choice. */
  dev: HeldOutItem[];
  /** Few-shot pool for self-instruct: the IFT prompts. */
  seedPrompts: string[];
  /** Prompt-writing prompt (few-shot seed prompts) → a new task prompt, for SFT. */
  selfInstruct: PromptResponse[];
}

export const CORRUPTION_KINDS = [
  "substitute1",
  "substitute2",
  "swap",
  "delete",
  "insert",
  "truncate",
  "extend",
  "shuffle",
  "echo",
  "garbage",
  "junk",
  "empty",
] as const;
export type CorruptionKind = (typeof CORRUPTION_KINDS)[number];

// Near misses are the most common, as they are for a half-trained model.
const KIND_WEIGHTS: Record<CorruptionKind, number> = {
  substitute1: 3,
  substitute2: 2,
  swap: 2,
  delete: 2,
  insert: 2,
  truncate: 2,
  extend: 1,
  shuffle: 2,
  echo: 2,
  garbage: 1,
  junk: 1,
  empty: 0.5,
};

// Characters no family alphabet holds in full: they make malformed responses.
const JUNK = "?+-:0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

function randomString(rng: Rng, chars: string, minLen: number, maxLen: number): string {
  let s = "";
  const n = rng.int(minLen, maxLen);
  for (let i = 0; i < n; i++) s += chars[rng.int(0, chars.length - 1)];
  return s;
}

function otherChar(rng: Rng, alphabet: string, not: string): string {
  const choices = [...alphabet].filter((c) => c !== not);
  return rng.pick(choices);
}

/** One kind of flawed response, built from the correct answer (and the prompt's material for `echo`). */
export function corruptWith(
  kind: CorruptionKind,
  rng: Rng,
  answer: string,
  family: Family,
  input?: string,
): string {
  const chars = [...answer];
  const at = () => rng.int(0, Math.max(0, chars.length - 1));
  switch (kind) {
    case "substitute1":
    case "substitute2": {
      const times = kind === "substitute1" ? 1 : 2;
      for (let t = 0; t < times && chars.length > 0; t++) {
        const i = at();
        chars[i] = otherChar(rng, family.alphabet, chars[i]);
      }
      return chars.join("");
    }
    case "swap": {
      if (chars.length < 2) return chars.join("");
      const i = rng.int(0, chars.length - 2);
      [chars[i], chars[i + 1]] = [chars[i + 1], chars[i]];
      return chars.join("");
    }
    case "delete":
      chars.splice(at(), 1);
      return chars.join("");
    case "insert":
      chars.splice(rng.int(0, chars.length), 0, rng.pick([...family.alphabet]));
      return chars.join("");
    case "truncate":
      return answer.slice(0, rng.int(1, Math.max(1, answer.length - 1)));
    case "extend":
      return answer + randomString(rng, answer, 1, 3);
    case "shuffle":
      return rng.shuffle(chars).join("");
    case "echo":
      return input ?? rng.shuffle(chars).join("");
    case "garbage":
      return randomString(rng, family.alphabet, 1, 8);
    case "junk":
      return randomString(
        rng,
        JUNK.replace(new RegExp(`[${family.alphabet.replace(" ", "")}]`, "g"), ""),
        1,
        8,
      );
    case "empty":
      return "";
  }
}

/** A response of random, usually partial, quality (never chosen to be correct, though a flaw may cancel out). */
export function corruptResponse(
  rng: Rng,
  answer: string,
  family: Family,
  input?: string,
): { response: string; kind: CorruptionKind } {
  const total = CORRUPTION_KINDS.reduce((s, k) => s + KIND_WEIGHTS[k], 0);
  let r = rng.next() * total;
  let kind: CorruptionKind = CORRUPTION_KINDS[0];
  for (const k of CORRUPTION_KINDS) {
    r -= KIND_WEIGHTS[k];
    if (r < 0) {
      kind = k;
      break;
    }
  }
  return { response: corruptWith(kind, rng, answer, family, input), kind };
}

function familyOf(instance: TaskInstance): Family {
  return allFamilies.find((f) => f.name === instance.family)!;
}

function rubricFor(instance: TaskInstance, response: string) {
  return familyOf(instance).verify(instance.prompt, response);
}

function scoreOf(instance: TaskInstance, response: string): number {
  return rubricFor(instance, response).score;
}

/** A flawed response to `instance`, of any kind its family gets. */
function flawed(rng: Rng, instance: TaskInstance): string {
  const family = familyOf(instance);
  // Constraint families mostly get their own mistakes: generic edits of a correct answer rarely
  // let in the banned character or leave out the required one, which is what their judge must see.
  if (family.flaw !== undefined && rng.chance(0.6)) return family.flaw(rng, instance);
  return corruptResponse(rng, instance.answer, family, promptMaterial(instance.meta)).response;
}

/** A response to `instance` whose true score is `target`, or null if none turned up. */
export function responseWithScore(rng: Rng, instance: TaskInstance, target: number): string | null {
  if (target === 5) return instance.answer;
  for (let tries = 0; tries < 64; tries++) {
    const response = flawed(rng, instance);
    if (scoreOf(instance, response) === target) return response;
  }
  return null;
}

/**
 * Draws instances, skipping prompts in `taken` (and repeats, if `unique`). Families go round-robin
 * so splits are balanced; a single draw picks its family at random instead.
 */
function draw(
  families: readonly Family[],
  rng: Rng,
  split: string,
  count: number,
  taken: Set<string>,
  unique: boolean,
): TaskInstance[] {
  const out: TaskInstance[] = [];
  const mine = new Set<string>();
  const first = count === 1 ? rng.int(0, families.length - 1) : 0;
  for (let i = 0; i < count; i++) {
    const family = families[(first + i) % families.length];
    let instance: TaskInstance | null = null;
    for (let tries = 0; tries < 1000 && instance === null; tries++) {
      const candidate = family.makeInstance(rng);
      if (!taken.has(candidate.prompt) && !(unique && mine.has(candidate.prompt))) instance = candidate;
    }
    if (instance === null) {
      throw new Error(
        `buildSeedData: ran out of distinct ${family.name} prompts for ${split} (asked for ${count})`,
      );
    }
    mine.add(instance.prompt);
    out.push(instance);
  }
  return rng.shuffle(out);
}

function checkSizes(options: SeedDataOptions): void {
  for (const key of [
    "iftSize",
    "eftSize",
    "heldOutSize",
    "judgeEvalSize",
    "pretrainSize",
    "devSize",
  ] as const) {
    const v = options[key] ?? 0;
    if (!Number.isInteger(v) || v < 0)
      throw new Error(`buildSeedData: ${key} must be a non-negative integer, got ${v}`);
  }
}

export function buildSeedData(options: SeedDataOptions): SeedData {
  checkSizes(options);
  const { seed } = options;
  const families = (options.families ?? allFamilies.map((f) => f.name)).map(familyByName);
  if (families.length === 0) throw new Error("buildSeedData: families must name at least one task family");
  const pretrainCorrect = options.pretrainCorrect ?? 0.5;
  const perPrompt = options.candidatesPerPrompt ?? 4;
  const stream = (label: string) => makeRng(deriveSeed(seed, label));

  // Held-out prompts first, from their own streams, so they never depend on the training sizes.
  const reserved = new Set<string>();
  const heldOutRng = stream("heldOut");
  const heldOutInstances = draw(families, heldOutRng, "heldOut", options.heldOutSize, reserved, true);
  for (const x of heldOutInstances) reserved.add(x.prompt);
  const judgeRng = stream("judgeEval");
  const judgeInstances = draw(families, judgeRng, "judgeEval", options.judgeEvalSize, reserved, true);
  for (const x of judgeInstances) reserved.add(x.prompt);
  // Dev prompts come after the held-out and judge sets, so adding them changes neither.
  const devInstances = draw(families, stream("dev"), "dev", options.devSize ?? 0, reserved, true);
  for (const x of devInstances) reserved.add(x.prompt);

  const item = (x: TaskInstance): HeldOutItem => ({ prompt: x.prompt, answer: x.answer, family: x.family });
  const heldOut = heldOutInstances.map(item);
  const dev = devInstances.map(item);
  const judgeEval = judgeInstances.map((x) => ({
    prompt: x.prompt,
    candidates: candidatesFor(judgeRng, x, perPrompt),
  }));

  const ift = draw(families, stream("ift"), "ift", options.iftSize, reserved, true).map((x) => ({
    prompt: x.prompt,
    response: x.answer,
  }));

  // EFT prompts may repeat, each time with another response: what the judge must learn is to
  // read responses, and with each prompt used once the examples were memorised while the worked
  // check stayed wrong on unseen answers. Many more examples than there are prompts make the
  // check generalise.
  const eftRng = stream("eft");
  const eft: PromptResponse[] = [];
  for (let i = 0; i < options.eftSize; i++) {
    const target = i % 6;
    for (;;) {
      const [instance] = draw(families, eftRng, "eft", 1, reserved, false);
      const response = responseWithScore(eftRng, instance, target);
      if (response === null) continue;
      eft.push({
        prompt: judgePrompt(instance.prompt, response),
        response: judgeTarget(rubricFor(instance, response)),
      });
      break;
    }
  }

  const pretrain = buildPretrain(
    families,
    stream("pretrain"),
    options.pretrainSize,
    reserved,
    pretrainCorrect,
  );
  const seedPrompts = ift.map((x) => x.prompt);
  const seedByFamily = promptsByFamily(seedPrompts);
  const writeRng = stream("selfInstruct");
  const shots = options.fewShot ?? 3;
  const selfInstruct = draw(
    families,
    writeRng,
    "selfInstruct",
    options.selfInstructSize ?? Math.ceil(options.iftSize / 4),
    reserved,
    true,
  ).map((x) => ({
    // Examples of the family the model is to write, so that at run time the family it is shown
    // decides the family it writes (selfinstruct.ts writePromptsInTurn).
    prompt: promptWritingPrompt(writeRng.shuffle(seedByFamily.get(x.family) ?? seedPrompts).slice(0, shots)),
    response: x.prompt,
  }));
  return {
    pretrain,
    ift,
    eft: eftRng.shuffle(eft),
    heldOut,
    judgeEval,
    dev,
    seedPrompts,
    selfInstruct,
  };
}

function candidatesFor(rng: Rng, instance: TaskInstance, count: number): JudgeEvalItem["candidates"] {
  let candidates: JudgeEvalItem["candidates"] = [];
  // Resample until the scores differ: a set of ties says nothing about a judge's ranking.
  for (let tries = 0; tries < 20; tries++) {
    candidates = Array.from({ length: count }, () => {
      const response = rng.chance(0.25) ? instance.answer : flawed(rng, instance);
      return { response, trueScore: scoreOf(instance, response) };
    });
    if (new Set(candidates.map((c) => c.trueScore)).size > 1) break;
  }
  return candidates;
}

/** Domain text for M0: task lines (answers of mixed quality), judge lines and prompt-writing lines. */
function buildPretrain(
  families: readonly Family[],
  rng: Rng,
  size: number,
  reserved: Set<string>,
  correctShare: number,
): string[] {
  const docs: string[] = [];
  const one = () => draw(families, rng, "pretrain", 1, reserved, false)[0];
  while (docs.length < size) {
    const r = rng.next();
    if (r < 0.6) {
      const x = one();
      const response = rng.chance(correctShare) ? x.answer : flawed(rng, x);
      docs.push(formatSample(x.prompt, response));
    } else if (r < 0.85) {
      const x = one();
      const response = responseWithScore(rng, x, rng.int(0, 5));
      if (response === null) continue;
      docs.push(formatSample(judgePrompt(x.prompt, response), judgeTarget(rubricFor(x, response))));
    } else {
      const shots = draw(families, rng, "pretrain", rng.int(2, 4), reserved, true).map((x) => x.prompt);
      docs.push(formatSample(promptWritingPrompt(shots), one().prompt));
    }
  }
  return docs;
}
