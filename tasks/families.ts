// Instruction task families. Each prompt alone determines its rubric, so any response to any
// prompt (seed data, model-written prompts alike) gets an exact score from the verifier.
//
// Two kinds. Answer families (reverse, sort, upper, add, repeat, vowels) have one correct answer,
// and judging a response means working that answer out: as hard as answering. Constraint
// families (word, number) ask for any string that meets four constraints; many responses are
// correct, and the judge checks one character by character in a worked check it writes before
// its verdict (`constraintEvidence`). The demo runs on them.
// Sized for a character-level model: prompts ≤ 32 chars, answers ≤ 19 chars.
import { displayResponse, grade, MAX_RESPONSE_CHARS, type Rubric, rubricOf } from "./criteria.ts";
import { deriveSeed, makeRng, type Rng } from "./random.ts";

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
  /** A correct answer (the only one, for answer families), or null if the prompt is not of this family. */
  solve(prompt: string): string | null;
  /** The true rubric of a response; throws if the prompt is not of this family. */
  verify(prompt: string, response: string): Rubric;
  /** A flawed response the way a model gets this family wrong (constraint families only). */
  flaw?(rng: Rng, instance: TaskInstance): string;
  /** The judge writes a worked check quoting the response before its verdict (constraint families). */
  readonly workedCheck?: true;
}

export const FAMILY_NAMES = [
  "reverse",
  "sort",
  "upper",
  "add",
  "repeat",
  "vowels",
  "word",
  "number",
] as const;
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

// ---- Constraint families ----------------------------------------------------------------

/** The four constraints of a constraint prompt: length, one anchored character, one required, one banned. */
interface Constraints extends TaskArgs {
  n: number;
  /** The character at the anchored end (first for `word`, last for `number`). */
  anchor: string;
  with: string;
  not: string;
}

interface ConstraintSpec {
  name: FamilyName;
  alphabet: string;
  lengths: [number, number];
  /** Which end `anchor` pins. */
  end: "start" | "end";
  render(c: Constraints): string;
  pattern: RegExp;
  /** `n` random characters of the alphabet, before the constraints are imposed. */
  filler(rng: Rng, n: number): string;
  /** Characters drawn for the banned one: the likely ones, so the ban bites. */
  banPool: string;
}

const CONSTRAINT_CRITERIA = (end: "start" | "end") => ["form", "len", end, "with", "not"] as const;

/**
 * The judge's worked check of a constraint response: for each character it sees, two triples, the
 * required character restated, the character, `*` if they are equal (`.` if not), then the banned
 * character restated, the character, `!` if they are equal (`bonke`, with o not e:
 * `ob.eb.oo*eo.on.en.ok.ek.oe.ee!`).
 *
 * Each mark compares the two tokens just before it, one a constant and one copied from the
 * response, and nothing else: a comparison a 2-layer character model learns. Marks after the bare
 * characters (`b.o*n.k.e!`) had to compare with the prompt's `with o not e`, at a distance that
 * changes along the check, and stayed near chance. One quadruple per character restating both
 * (`oeb.oeo*…`) had a mark that had to tell which of the two restated characters matched, and the
 * demo's self-judge learned only that one did: it wrote `*` for both and almost never `!`, so the
 * banned character, most of M1's misses, went unseen. Writing the check also teaches the policy.
 * docs/experiments.md, "The worked check's format", has the measurements.
 */
export function constraintEvidence(response: string, withChar: string, notChar: string): string {
  return [...displayResponse(response)]
    .map((ch) => `${withChar}${ch}${ch === withChar ? "*" : "."}${notChar}${ch}${ch === notChar ? "!" : "."}`)
    .join("");
}

// A step of the worked check (`constraintEvidence`) and where in it the response's character is.
const CHECK_STEP = 6;
const QUOTE_AT = [1, 4] as const;
/** What follows the worked check: the space before the verdict (tasks/rubric.ts). */
export const CHECK_END = " ";

/**
 * The response a judge's worked check says it read, for a check of `steps` steps (one per character
 * of the response as the judge saw it): the second and fifth character of each six-character step,
 * which must agree, then the space before the verdict; null when the text is not such a check. A
 * check whose quote differs from the response judged another string, whatever its verdict: the loop
 * can tell that from the texts alone, without the verifier.
 */
export function quotedByCheck(judgeText: string, steps: number): string | null {
  const end = CHECK_STEP * steps;
  if (judgeText.length <= end || judgeText[end] !== CHECK_END) return null;
  let quote = "";
  for (let i = 0; i < end; i += CHECK_STEP) {
    if (judgeText[i + QUOTE_AT[0]] !== judgeText[i + QUOTE_AT[1]]) return null;
    quote += judgeText[i + QUOTE_AT[0]];
  }
  return quote;
}

/**
 * Where a worked check of `shown` (the response as the judge sees it) quotes it: the second and
 * fifth character of each six-character step, as indices into the judge's text. A judge given
 * these writes the quote as given and judges only the rest (`selfReward.forcedQuote`).
 */
export function checkQuotes(shown: string): { at: number; text: string }[] {
  return [...shown].flatMap((ch, i) => QUOTE_AT.map((k) => ({ at: CHECK_STEP * i + k, text: ch })));
}

function constraintFamily(spec: ConstraintSpec): Family {
  const names = CONSTRAINT_CRITERIA(spec.end);
  const anchorAt = (text: string) => (spec.end === "start" ? text[0] : text[text.length - 1]);
  const parse = (prompt: string): Constraints | null => {
    const m = spec.pattern.exec(prompt);
    if (m === null) return null;
    const c: Constraints = { n: Number(m[1]), anchor: m[2], with: m[3], not: m[4] };
    const [lo, hi] = spec.lengths;
    const distinct = c.anchor !== c.with && c.not !== c.anchor && c.not !== c.with;
    return c.n >= lo && c.n <= hi && distinct && spec.render(c) === prompt ? c : null;
  };
  // One correct answer: filler characters with the banned one replaced, the anchor at its end and
  // the required character right beside it. Seeded by the prompt, so every prompt has a fixed
  // reference answer. Where the required character fell at random, copying it formed abruptly, at
  // a step the seed and the float rounding moved, and M1's accuracy swung with it; at one place
  // the copy is one pattern (docs/experiments.md, "M1 stability"). Any answer meeting the
  // constraints still scores 5: the verifier does not look for the place.
  const answerFor = (c: Constraints): string => {
    const rng = makeRng(deriveSeed(0, spec.render(c)));
    const chars = [...spec.filler(rng, c.n)].map((ch) =>
      ch === c.not ? rng.pick([...spec.alphabet].filter((a) => a !== c.not)) : ch,
    );
    const [anchorIndex, withIndex] = spec.end === "start" ? [0, 1] : [c.n - 1, c.n - 2];
    chars[anchorIndex] = c.anchor;
    chars[withIndex] = c.with;
    return chars.join("");
  };
  const check = (c: Constraints, response: string): Rubric => {
    // The judge sees overlong responses cut (rubric.ts displayResponse), so what lies past the
    // limit cannot count for or against them: they fail the checks that read the whole response.
    const whole = response.length > 0 && response.length <= MAX_RESPONSE_CHARS;
    const form = whole && [...response].every((ch) => spec.alphabet.includes(ch));
    return rubricOf(
      names,
      [
        form,
        response.length === c.n,
        whole && anchorAt(response) === c.anchor,
        whole && response.includes(c.with),
        // An empty response meets no criterion, so score 0 exists.
        whole && !response.includes(c.not),
      ],
      constraintEvidence(response, c.with, c.not),
    );
  };
  const family: Family = {
    name: spec.name,
    alphabet: spec.alphabet,
    workedCheck: true,
    makeInstance(rng) {
      const n = rng.int(spec.lengths[0], spec.lengths[1]);
      const anchor = rng.pick([...spec.alphabet]);
      const withChar = rng.pick([...spec.alphabet].filter((ch) => ch !== anchor));
      const not = rng.pick([...spec.banPool].filter((ch) => ch !== anchor && ch !== withChar));
      const c: Constraints = { n, anchor, with: withChar, not };
      return { family: spec.name, prompt: spec.render(c), answer: answerFor(c), meta: { ...c } };
    },
    parse,
    solve(prompt) {
      const c = parse(prompt);
      return c === null ? null : answerFor(c);
    },
    verify(prompt, response) {
      const c = parse(prompt);
      if (c === null)
        throw new Error(`${spec.name}.verify: ${JSON.stringify(prompt)} is not a ${spec.name} prompt`);
      return check(c, response);
    },
    flaw(rng, instance) {
      const c = instance.meta as Constraints;
      const chars = [...instance.answer];
      const other = (not: string[]) => rng.pick([...spec.alphabet].filter((a) => !not.includes(a)));
      // One to three of the mistakes a small model makes: a length off by one or two, the wrong
      // character at the anchored end, the required character left out, the banned one let in.
      const mistakes = rng.shuffle(["len", "anchor", "with", "not"]).slice(0, rng.int(1, 3));
      for (const mistake of mistakes) {
        if (mistake === "len") {
          const delta = rng.pick([-2, -1, 1, 1, 2]);
          if (delta < 0) chars.splice(rng.int(1, Math.max(1, chars.length - 2)), -delta);
          else
            for (let k = 0; k < delta; k++)
              chars.splice(rng.int(1, chars.length - 1), 0, other([c.not, c.with]));
        } else if (mistake === "anchor" && chars.length > 0) {
          chars[spec.end === "start" ? 0 : chars.length - 1] = other([c.anchor, c.not, c.with]);
        } else if (mistake === "with") {
          for (let i = 0; i < chars.length; i++) if (chars[i] === c.with) chars[i] = other([c.with, c.not]);
        } else if (mistake === "not" && chars.length > 2) {
          chars[rng.int(1, chars.length - 2)] = c.not;
        }
      }
      return chars.join("");
    },
  };
  return family;
}

/** `Word of 5: starts b with o not e` — a lowercase word meeting four constraints. */
export const word = constraintFamily({
  name: "word",
  alphabet: LOWER,
  lengths: [4, 7],
  end: "start",
  render: (c) => `Word of ${c.n}: starts ${c.anchor} with ${c.with} not ${c.not}`,
  pattern: /^Word of (\d): starts ([a-z]) with ([a-z]) not ([a-z])$/,
  filler: (rng, n) => pseudoWord(rng, n, n),
  banPool: "aeioustrnl",
});

/** `Number of 4: ends 7 with 2 not 5` — a digit string meeting four constraints. */
export const number = constraintFamily({
  name: "number",
  alphabet: DIGITS,
  lengths: [3, 6],
  end: "end",
  render: (c) => `Number of ${c.n}: ends ${c.anchor} with ${c.with} not ${c.not}`,
  pattern: /^Number of (\d): ends (\d) with (\d) not (\d)$/,
  filler: (rng, n) => Array.from({ length: n }, () => rng.pick([...DIGITS])).join(""),
  banPool: DIGITS,
});

export const families: readonly Family[] = [reverse, sort, upper, add, repeat, vowels, word, number];

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

/** The part of the prompt a response should be built from (the word, the two numbers, the named characters). */
export function promptMaterial(args: TaskArgs): string {
  if ("word" in args) return String(args.word);
  if ("anchor" in args) return `${args.anchor}${args.with}${args.not}`;
  return `${args.a}${args.b}`;
}
