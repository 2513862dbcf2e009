// Instruction task families. Each prompt alone determines its answer, so any response to any
// prompt (seed data, model-written prompts alike) gets an exact rubric score from the verifier.
// Sized for a character-level model: prompts ≤ 25 chars, answers ≤ 19 chars.
import { grade, type Rubric } from "./criteria.ts";
import type { Rng } from "./random.ts";

export type TaskArgs = Record<string, string | number>;

export interface TaskInstance {
  family: FamilyName;
  prompt: string;
  answer: string;
  /** The parsed arguments of the prompt (word, numbers, count). */
  meta: TaskArgs;
}

export interface Family {
  readonly name: FamilyName;
  /** Characters a well-formed response may use. */
  readonly alphabet: string;
  makeInstance(rng: Rng): TaskInstance;
  /** The arguments of a prompt of this family, or null if it is not one (canonical text only). */
  parse(prompt: string): TaskArgs | null;
  /** The correct answer, or null if the prompt is not of this family. */
  solve(prompt: string): string | null;
  /** The true rubric of a response; throws if the prompt is not of this family. */
  verify(prompt: string, response: string): Rubric;
}

export const FAMILY_NAMES = ["reverse", "sort", "upper", "add", "repeat", "vowels"] as const;
export type FamilyName = (typeof FAMILY_NAMES)[number];

const LOWER = "abcdefghijklmnopqrstuvwxyz";
const UPPER = LOWER.toUpperCase();
const DIGITS = "0123456789";
const VOWELS = "aeiou";
const CONSONANTS = "bcdfghjklmnprstvwz";

/** A pronounceable pseudo-word (alternating consonants and vowels), so it always has a vowel. */
export function pseudoWord(rng: Rng, minLen: number, maxLen: number): string {
  const length = rng.int(minLen, maxLen);
  let vowel = rng.chance(0.3);
  let word = "";
  for (let i = 0; i < length; i++) {
    word += rng.pick(vowel ? [...VOWELS] : [...CONSONANTS]);
    // An occasional double consonant keeps words from all looking alike.
    vowel = vowel ? false : !rng.chance(0.15) || i === length - 2;
  }
  return word;
}

interface Spec<A extends TaskArgs> {
  name: FamilyName;
  alphabet: string;
  sample(rng: Rng): A;
  render(args: A): string;
  /** Loose parse; the family keeps it only if rendering gives the same text back. */
  match(prompt: string): A | null;
  solve(args: A): string;
}

function lowerWord(text: string | undefined, minLen: number, maxLen: number): string | null {
  if (text === undefined || text.length < minLen || text.length > maxLen) return null;
  return /^[a-z]+$/.test(text) ? text : null;
}

function makeFamily<A extends TaskArgs>(spec: Spec<A>): Family {
  const parse = (prompt: string): A | null => {
    const args = spec.match(prompt);
    return args !== null && spec.render(args) === prompt ? args : null;
  };
  return {
    name: spec.name,
    alphabet: spec.alphabet,
    makeInstance(rng) {
      const args = spec.sample(rng);
      return { family: spec.name, prompt: spec.render(args), answer: spec.solve(args), meta: { ...args } };
    },
    parse,
    solve(prompt) {
      const args = parse(prompt);
      return args === null ? null : spec.solve(args);
    },
    verify(prompt, response) {
      const args = parse(prompt);
      if (args === null)
        throw new Error(`${spec.name}.verify: ${JSON.stringify(prompt)} is not a ${spec.name} prompt`);
      return grade(spec.solve(args), spec.alphabet, response);
    },
  };
}

type Word = { word: string };

function wordFamily(
  name: FamilyName,
  lead: string,
  alphabet: string,
  lengths: [number, number],
  solve: (word: string) => string,
  valid: (word: string) => boolean = () => true,
): Family {
  return makeFamily<Word>({
    name,
    alphabet,
    sample: (rng) => ({ word: pseudoWord(rng, lengths[0], lengths[1]) }),
    render: ({ word }) => `${lead}${word}`,
    match(prompt) {
      if (!prompt.startsWith(lead)) return null;
      const word = lowerWord(prompt.slice(lead.length), lengths[0], lengths[1]);
      return word !== null && valid(word) ? { word } : null;
    },
    solve: ({ word }) => solve(word),
  });
}

export const reverse = wordFamily("reverse", "Reverse: ", LOWER, [3, 7], (w) => [...w].reverse().join(""));
export const sort = wordFamily("sort", "Sort the letters: ", LOWER, [3, 6], (w) => [...w].sort().join(""));
export const upper = wordFamily("upper", "Uppercase: ", UPPER, [3, 7], (w) => w.toUpperCase());
export const vowels = wordFamily(
  "vowels",
  "Copy the vowels: ",
  LOWER,
  [3, 7],
  (w) => [...w].filter((c) => VOWELS.includes(c)).join(""),
  // A word without vowels would make the correct answer empty, which the rubric calls malformed.
  (w) => [...w].some((c) => VOWELS.includes(c)),
);

const MAX_ADDEND = 49;
export const add = makeFamily<{ a: number; b: number }>({
  name: "add",
  alphabet: DIGITS,
  sample: (rng) => ({ a: rng.int(0, MAX_ADDEND), b: rng.int(0, MAX_ADDEND) }),
  render: ({ a, b }) => `Add ${a} and ${b}`,
  match(prompt) {
    const m = /^Add (\d{1,2}) and (\d{1,2})$/.exec(prompt);
    if (m === null) return null;
    const a = Number(m[1]);
    const b = Number(m[2]);
    return a <= MAX_ADDEND && b <= MAX_ADDEND ? { a, b } : null;
  },
  solve: ({ a, b }) => String(a + b),
});

export const repeat = makeFamily<{ word: string; n: number }>({
  name: "repeat",
  alphabet: LOWER + " ",
  sample: (rng) => ({ word: pseudoWord(rng, 2, 4), n: rng.int(2, 4) }),
  render: ({ word, n }) => `Repeat ${word} ${n} times`,
  match(prompt) {
    const m = /^Repeat ([a-z]+) (\d) times$/.exec(prompt);
    if (m === null) return null;
    const word = lowerWord(m[1], 2, 4);
    const n = Number(m[2]);
    return word !== null && n >= 2 && n <= 4 ? { word, n } : null;
  },
  solve: ({ word, n }) => Array.from({ length: n }, () => word).join(" "),
});

export const families: readonly Family[] = [reverse, sort, upper, add, repeat, vowels];

export function familyByName(name: string): Family {
  const family = families.find((f) => f.name === name);
  if (family === undefined) {
    throw new Error(`unknown task family ${JSON.stringify(name)} (known: ${FAMILY_NAMES.join(", ")})`);
  }
  return family;
}

export interface ParsedPrompt {
  family: Family;
  args: TaskArgs;
  answer: string;
}

/** Which family a prompt belongs to, its arguments and answer; null if it is no family's. */
export function parsePrompt(prompt: string): ParsedPrompt | null {
  for (const family of families) {
    const args = family.parse(prompt);
    if (args !== null) return { family, args, answer: family.solve(prompt)! };
  }
  return null;
}

/** The part of the prompt a response should be built from (the word, or the two numbers). */
export function promptMaterial(args: TaskArgs): string {
  return "word" in args ? String(args.word) : `${args.a}${args.b}`;
}
