// Synthetic math word problems for ReFT, sized for a small character model: a person starts with
// some things and 2-4 arithmetic steps of small integers change how many there are. Each problem
// carries a chain of thought ending on the answer trigger, and its answer, so rewards are exact.
// A solution is worked one equation per operation, or, for a share of them, written tersely as one
// equation for the whole story, as some annotators write. A small model does that mental arithmetic
// worse than the steps, so imitating the annotators (SFT) copies a habit that costs accuracy, which
// sampling with a correctness reward (ReFT) can find and drop. Splits are drawn from their own
// seeded streams and never share a question.

import { deriveSeed, makeRng, type Rng } from "./random.ts";
import { ANSWER_TRIGGER } from "./reward.ts";

export interface MathProblem {
  question: string;
  /** The solution, in either style, ending on `${ANSWER_TRIGGER} ${answer}`. */
  cot: string;
  answer: number;
}

export interface MathOptions {
  /** Arithmetic steps per problem, both ends included. Default 2 and 4. */
  minOps?: number;
  maxOps?: number;
  /** Largest operand a step uses. Default 9. */
  maxOperand?: number;
}

/**
 * How a solution is written: `worked`, one equation per operation (`5 + 3 = 8. 8 - 2 = 6.`), or
 * `terse`, the whole story as one equation (`5 + 3 - 2 = 6.`), as some annotators write it.
 */
export type SolutionStyle = "worked" | "terse";

const NAMES: [string, "She" | "He"][] = [
  ["Ann", "She"],
  ["Ben", "He"],
  ["Cara", "She"],
  ["Dan", "He"],
  ["Eva", "She"],
  ["Finn", "He"],
  ["Gus", "He"],
  ["Ida", "She"],
  ["Max", "He"],
  ["Zoe", "She"],
];
const ITEMS: { plural: string; food: boolean }[] = [
  { plural: "apples", food: true },
  { plural: "cookies", food: true },
  { plural: "pears", food: true },
  { plural: "marbles", food: false },
  { plural: "stamps", food: false },
  { plural: "pens", food: false },
  { plural: "shells", food: false },
  { plural: "cards", food: false },
];

interface Step {
  sentence: string;
  /** The step's equations, in order. */
  lines: string[];
  /** The step as a term of the one-line equation: `+ 3`, `- 2`, `+ 3 * 4`. */
  term: string;
  value: number;
  ops: number;
}

interface Story {
  name: string;
  pronoun: "She" | "He";
  object: "her" | "him";
  friend: string;
  item: (typeof ITEMS)[number];
}

const eq = (a: number, op: string, b: number, c: number) => `${a} ${op} ${b} = ${c}.`;

/** One event that changes the count `x`, or null if it cannot apply (nothing left to give). */
function event(rng: Rng, s: Story, x: number, budget: number, maxOperand: number): Step | null {
  const kinds = ["gain", "gain", "loss", "loss"];
  if (budget >= 2) kinds.push("bags");
  const kind = rng.pick(kinds);
  const { pronoun, object, friend, item } = s;
  if (kind === "gain") {
    const n = rng.int(1, maxOperand);
    const sentence = rng.pick([
      `${pronoun} buys ${n} more.`,
      `${pronoun} finds ${n} more.`,
      `${friend} gives ${object} ${n} more.`,
    ]);
    return { sentence, lines: [eq(x, "+", n, x + n)], term: `+ ${n}`, value: x + n, ops: 1 };
  }
  if (kind === "loss") {
    if (x < 2) return null;
    const n = rng.int(1, Math.min(maxOperand, x - 1));
    const verbs = [`${pronoun} gives ${n} to ${friend}.`, `${pronoun} loses ${n}.`];
    if (item.food) verbs.push(`${pronoun} eats ${n}.`);
    return { sentence: rng.pick(verbs), lines: [eq(x, "-", n, x - n)], term: `- ${n}`, value: x - n, ops: 1 };
  }
  const bags = rng.int(2, Math.min(5, maxOperand));
  const each = rng.int(2, maxOperand);
  const total = bags * each;
  return {
    sentence: `${pronoun} buys ${bags} bags with ${each} ${item.plural} in each.`,
    lines: [eq(bags, "*", each, total), eq(x, "+", total, x + total)],
    term: `+ ${bags} * ${each}`,
    value: x + total,
    ops: 2,
  };
}

/**
 * One problem: a start, then events until the step count is reached. The style changes only how
 * the solution is written, never what `rng` draws, so a problem is the same in either style.
 */
export function makeMathProblem(
  rng: Rng,
  opts: MathOptions = {},
  style: SolutionStyle = "worked",
): MathProblem {
  const minOps = opts.minOps ?? 2;
  const maxOps = opts.maxOps ?? 4;
  const maxOperand = opts.maxOperand ?? 9;
  if (!(Number.isInteger(minOps) && minOps >= 1 && maxOps >= minOps))
    throw new RangeError(`makeMathProblem: bad step range [${minOps}, ${maxOps}]`);
  if (!(Number.isInteger(maxOperand) && maxOperand >= 2))
    throw new RangeError(`makeMathProblem: maxOperand ${maxOperand} < 2`);
  const [name, pronoun] = rng.pick(NAMES);
  const friend = rng.pick(NAMES.filter(([n]) => n !== name))[0];
  const story: Story = {
    name,
    pronoun,
    object: pronoun === "She" ? "her" : "him",
    friend,
    item: rng.pick(ITEMS),
  };
  const ops = rng.int(minOps, maxOps);
  let x = rng.int(2, maxOperand);
  const start = x;
  const sentences = [`${name} has ${x} ${story.item.plural}.`];
  const lines: string[] = [];
  const terms: string[] = [];
  let done = 0;
  while (done < ops) {
    const step = event(rng, story, x, ops - done, maxOperand);
    if (!step) continue;
    sentences.push(step.sentence);
    lines.push(...step.lines);
    terms.push(step.term);
    x = step.value;
    done += step.ops;
  }
  sentences.push(`How many ${story.item.plural} does ${name} have now?`);
  const work = style === "terse" ? `${start} ${terms.join(" ")} = ${x}.` : lines.join(" ");
  return { question: sentences.join(" "), cot: `${work} ${ANSWER_TRIGGER} ${x}`, answer: x };
}

/**
 * The style a solution (or a model's attempt at one) is written in: terse when its one equation
 * holds more than one operation, worked when it has equations otherwise, null when it has none.
 */
export function solutionStyle(cot: string): SolutionStyle | null {
  const equations = cot.match(/[^.=]*=/g) ?? [];
  if (equations.length === 0) return null;
  const operators = equations[0]?.match(/ [-+*] /g) ?? [];
  return equations.length === 1 && operators.length > 1 ? "terse" : "worked";
}

export interface StyleCounts {
  /** How many texts are written in the style, and how many of those are right. */
  worked: { n: number; right: number };
  terse: { n: number; right: number };
  /** Texts with no equation at all. */
  none: { n: number; right: number };
}

/** Solutions counted by style, each with how many are right: whether a policy works the steps. */
export function countStyles(texts: readonly string[], right: readonly boolean[]): StyleCounts {
  const out: StyleCounts = {
    worked: { n: 0, right: 0 },
    terse: { n: 0, right: 0 },
    none: { n: 0, right: 0 },
  };
  texts.forEach((text, i) => {
    const c = out[solutionStyle(text) ?? "none"];
    c.n++;
    if (right[i]) c.right++;
  });
  return out;
}

export interface MathSplitSizes extends MathOptions {
  seed: number;
  /** The share of problems whose solution is written `terse`. Default 0. */
  terseShare?: number;
  train: number;
  dev: number;
  heldOut: number;
}

export interface MathSplits {
  train: MathProblem[];
  dev: MathProblem[];
  heldOut: MathProblem[];
}

/**
 * Train, dev and held-out problems. Held-out is drawn first, then dev, then train, each from its
 * own stream and skipping questions an earlier split holds, so growing the training set never
 * changes the evaluation sets and no question is in two splits.
 */
export function mathSplits(opts: MathSplitSizes): MathSplits {
  const seen = new Set<string>();
  const terseShare = opts.terseShare ?? 0;
  if (!(terseShare >= 0 && terseShare <= 1))
    throw new RangeError(`mathSplits: terseShare ${terseShare} is not in [0, 1]`);
  const draw = (label: string, n: number): MathProblem[] => {
    const rng = makeRng(deriveSeed(opts.seed, `math.${label}`));
    // Styles come from a stream of their own, so the problems drawn do not depend on the share.
    const styles = makeRng(deriveSeed(opts.seed, `math.${label}.style`));
    const out: MathProblem[] = [];
    // Small operands make a finite space of stories; stop rather than loop when it runs dry.
    const limit = 20 * n + 1000;
    for (let tries = 0; out.length < n; tries++) {
      if (tries >= limit)
        throw new Error(
          `mathSplits: found only ${out.length} of ${n} distinct ${label} problems; ask for fewer or allow larger operands`,
        );
      const style = terseShare > 0 && styles.chance(terseShare) ? "terse" : "worked";
      const p = makeMathProblem(rng, opts, style);
      if (seen.has(p.question)) continue;
      seen.add(p.question);
      out.push(p);
    }
    return out;
  };
  const heldOut = draw("heldOut", opts.heldOut);
  const dev = draw("dev", opts.dev);
  const train = draw("train", opts.train);
  return { train, dev, heldOut };
}
