// The task boundary: everything the self-rewarding loop needs from a task, and nothing of its text
// format leaks past it. srlm's synthetic families (tasks/synthetic.ts) are one task; instruction
// data from JSONL files (tasks/instructions.ts) is another. The loop, the judges and the report
// work without a verifier, and use one where the task has it.
import type { PromptFormat, QuotedToken } from "../bus/messages.ts";
import type { Rubric } from "./criteria.ts";
import type { JudgeEvalItem, PromptResponse } from "./data.ts";
import type { ScoreParserName } from "./judgement.ts";

export type { PromptFormat } from "../bus/messages.ts";

export interface HeldOutPrompt {
  prompt: string;
  /** The prompt's group (a synthetic family), for per-group figures; absent for ungrouped tasks. */
  group?: string;
}

export interface TaskData {
  /** Domain text for srlm's own M0 (empty when the task brings no pretraining text). */
  pretrain: string[];
  /** Instruction fine-tuning: prompts with good responses. */
  ift: PromptResponse[];
  /** Evaluation fine-tuning: rendered judge prompts with the judgement to write. */
  eft: PromptResponse[];
  /** Rendered prompt-writing prompts with the prompt to write, for tasks whose small models must be
   * shown the self-instruct format once (empty otherwise). */
  selfInstruct: PromptResponse[];
  /** The few-shot pool of self-instruct. */
  seedPrompts: string[];
  /** Prompts the report evaluates on, never trained on. */
  heldOut: HeldOutPrompt[];
  /** Prompts for choosing settings (`selfReward.evalSplit: dev`), never trained on; may be empty. */
  dev: HeldOutPrompt[];
  /** Judge agreement items with true scores; empty without a verifier. */
  judgeEval: JudgeEvalItem[];
}

export type WrittenPrompt = { ok: true; prompt: string } | { ok: false; reason: string };

export interface Task {
  /** Names the task in jobs, so the `verifier` judge can find the task's verifier (tasks/registry.ts). */
  readonly name: string;
  /** How its prompts reach the policy. */
  readonly format: PromptFormat;
  readonly data: TaskData;
  /** The judge prompt for one response to one prompt. */
  judgePrompt(prompt: string, response: string): string;
  /** How the judge's text is read back into a score. */
  readonly scoreParser: ScoreParserName;
  /** The group of a prompt (balanced self-instruct, per-group figures), or null. */
  groupOf(prompt: string): string | null;
  /** The prompt-writing prompt shown to the model for a few-shot set of seed prompts. */
  selfInstructPrompt(examples: readonly string[]): string;
  /** The new prompt in the model's answer to a prompt-writing prompt, or why there is none. */
  parseWrittenPrompt(text: string): WrittenPrompt;
  /** True when `prompt` is too close to one already seen (beyond an exact repeat). */
  nearDuplicate(prompt: string, seen: ReadonlySet<string>): boolean;
  /** The exact rubric of a response, where the task can know it. */
  readonly verify?: (prompt: string, response: string) => Rubric;
  /** Whether a judge's text quotes the response it judged, where the task's judge writes a quote
   * (srlm's worked check restates every character): a verdict on a misquoted response judged
   * another string. Needs no verifier: it compares two texts. */
  readonly judgementQuotes?: (prompt: string, response: string, judgeText: string) => boolean;
  /** Where a judge's text quotes the response, as new-token indices of the judge's text with the
   * one-token text each holds (srlm's worked check: each character of the response, twice a
   * step); empty where the judge writes no quote. What `selfReward.forcedQuote` writes as given. */
  readonly judgeQuote?: (prompt: string, response: string) => QuotedToken[];
  /** The one-token text whose writing ends the judge's quote (srlm's worked check: the space before
   * the verdict): a judge whose quote ends early writes no quoted piece after it. */
  readonly judgeQuoteEnd?: string;
  /** An EFT example from the exact rubric (the judge prompt and the judgement to write), where
   * the task can know it: what `train.ownEft` trains the judge on. */
  readonly gradedJudgement?: (prompt: string, response: string) => PromptResponse;
}
