// ReFT's task: math word problems with a chain of thought and a checkable numeric answer, from
// srlm's synthetic generator or the user's JSONL (tasks/mathJsonl.ts). The ReFT loop needs less of
// a task than the self-rewarding one: questions, worked solutions, gold answers, the trigger the
// reward reads the answer after, and a judge prompt for an LLM judge standing in as the reward.
import { readFileSync } from "node:fs";
import type { Config } from "../config/schema.ts";
import { DOMAIN_CHARSET } from "./format.ts";
import { promptFormat } from "./fromConfig.ts";
import { type MathProblem, mathSplits } from "./math.ts";
import { parseMathJsonl } from "./mathJsonl.ts";
import { deriveSeed, makeRng } from "./random.ts";
import { ANSWER_TRIGGER } from "./reward.ts";
import type { PromptFormat } from "./task.ts";

/** Every character the synthetic problems use: srlm's own character model is built on it. */
export const MATH_CHARSET = `${DOMAIN_CHARSET},=`;

export interface ReasoningTask {
  name: string;
  format: PromptFormat;
  /** The phrase before the final answer. */
  trigger: string;
  train: MathProblem[];
  /** For choosing settings; never trained on, never quoted as the result. */
  dev: MathProblem[];
  heldOut: MathProblem[];
  /** srlm's own M0 is pretrained on this (questions and solutions of the training split). */
  pretrain: string[];
  /** What an LLM judge reads when it stands in for the answer check (`score / 5` is the reward). */
  judgePrompt(question: string, solution: string): string;
}

const JUDGE_PROMPT = (question: string, solution: string, trigger: string) =>
  `Check the solution to the math problem below step by step. Give 5 points if its final answer ` +
  `(after "${trigger}") is correct, 0.5 if it gives a wrong number, 0 if it gives none.\n\n` +
  `Problem:\n${question}\n\nSolution:\n${solution}\n\nEnd with a last line "Score: <points>".`;

function readProblems(path: string, field: string, trigger: string): MathProblem[] {
  let source: string;
  try {
    source = readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`${field}: cannot read ${path} (${(err as Error).message})`);
  }
  return parseMathJsonl(source, path, { trigger });
}

/** The first `n` of a seeded shuffle, and the rest. */
function setAside<T>(items: T[], n: number, seed: number): [T[], T[]] {
  const order = makeRng(seed).shuffle(items.map((_, i) => i));
  const picked = new Set(order.slice(0, n));
  return [items.filter((_, i) => picked.has(i)), items.filter((_, i) => !picked.has(i))];
}

export function reasoningTaskFromConfig(cfg: Config): ReasoningTask {
  const m = cfg.data.math;
  const trigger = m.trigger;
  let train: MathProblem[];
  let dev: MathProblem[];
  let heldOut: MathProblem[];
  let name: string;
  if (!m.train) {
    const splits = mathSplits({
      seed: cfg.data.seed,
      train: m.trainSize,
      dev: m.devSize,
      heldOut: m.heldOutSize,
      minOps: m.minOps,
      maxOps: m.maxOps,
      maxOperand: m.maxOperand,
      terseShare: m.terseShare,
    });
    const retrigger = (p: MathProblem): MathProblem =>
      trigger === ANSWER_TRIGGER ? p : { ...p, cot: p.cot.replace(ANSWER_TRIGGER, trigger) };
    [train, dev, heldOut] = [splits.train, splits.dev, splits.heldOut].map((s) => s.map(retrigger));
    name = "math";
  } else {
    const all = readProblems(m.train, "data.math.train", trigger);
    if (m.heldOut) {
      heldOut = readProblems(m.heldOut, "data.math.heldOut", trigger);
      [dev, train] = setAside(
        all,
        Math.min(m.devSize, all.length - 1),
        deriveSeed(cfg.data.seed, "math.dev"),
      );
    } else {
      const aside = m.heldOutSize + m.devSize;
      if (aside >= all.length)
        throw new Error(
          `data.math.heldOutSize + devSize (${aside}) leave no training problems of ${all.length} in ${m.train}; ` +
            "give data.math.heldOut or ask for fewer",
        );
      let rest: MathProblem[];
      [heldOut, rest] = setAside(all, m.heldOutSize, deriveSeed(cfg.data.seed, "math.heldOut"));
      [dev, train] = setAside(rest, m.devSize, deriveSeed(cfg.data.seed, "math.dev"));
    }
    const seen = new Set(heldOut.map((p) => p.question));
    train = train.filter((p) => !seen.has(p.question));
    if (train.length === 0) throw new Error(`data.math.train: every problem of ${m.train} is also held out`);
    name = "math-jsonl";
  }
  return {
    name,
    format: promptFormat(cfg),
    trigger,
    train,
    dev,
    heldOut,
    pretrain: train.map((p) => `${p.question}\n${p.cot}`),
    judgePrompt: (question, solution) => JUDGE_PROMPT(question, solution, trigger),
  };
}
