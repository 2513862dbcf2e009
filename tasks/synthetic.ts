// srlm's synthetic task families behind the task boundary: the CPU-sized demo and the science
// bench, since their verifier knows the true score of any answer. Plain prompt format
// (`Reverse: garden` → `nedrag`), the compact judge prompt `Judge|prompt|response|`, and the
// `Write|a|b|c|` prompt-writing prompt a small character model learns in SFT.
import { buildSeedData, type SeedDataOptions } from "./data.ts";
import { CHECK_END, checkQuotes, parsePrompt, quotedByCheck } from "./families.ts";
import { displayResponse, judgePrompt, judgeTarget, trueScore } from "./rubric.ts";
import { parseWrittenPrompt, promptWritingPrompt } from "./selfinstruct.ts";
import type { Task } from "./task.ts";

export const SYNTHETIC_TASK = "synthetic";

/** Prompts, judge prompts and the verifier of the families, without any data drawn. */
export const syntheticFormat = {
  name: SYNTHETIC_TASK,
  format: "plain",
  scoreParser: "first-line",
  judgePrompt,
  groupOf: (prompt: string) => parsePrompt(prompt)?.family.name ?? null,
  selfInstructPrompt: promptWritingPrompt,
  // Exact repeats are all a family's prompt can have: two prompts that differ are different tasks.
  nearDuplicate: () => false,
  verify: trueScore,
  // Answer families' judges write no check, so there is nothing to compare: any text passes.
  judgementQuotes: (prompt: string, response: string, judgeText: string) => {
    if (parsePrompt(prompt)?.family.workedCheck !== true) return true;
    const shown = displayResponse(response);
    return quotedByCheck(judgeText, shown.length) === shown;
  },
  // One character is one token of srlm's character tokenizer, and the plain format starts the
  // judge's text right after the prompt, so characters of the check are its new-token indices.
  judgeQuote: (prompt: string, response: string) =>
    parsePrompt(prompt)?.family.workedCheck === true ? checkQuotes(displayResponse(response)) : [],
  judgeQuoteEnd: CHECK_END,
  gradedJudgement: (prompt: string, response: string) => ({
    prompt: judgePrompt(prompt, response),
    response: judgeTarget(trueScore(prompt, response)),
  }),
} as const;

export function syntheticTask(options: SeedDataOptions & { families: readonly string[] }): Task {
  const data = buildSeedData(options);
  return {
    ...syntheticFormat,
    data: {
      ...data,
      heldOut: data.heldOut.map((h) => ({ prompt: h.prompt, group: h.family })),
      dev: data.dev.map((h) => ({ prompt: h.prompt, group: h.family })),
    },
    parseWrittenPrompt(text) {
      const prompt = parseWrittenPrompt(text, options.families);
      if (prompt !== null) return { ok: true, prompt };
      return {
        ok: false,
        reason: parseWrittenPrompt(text) === null ? "not a task prompt" : "of a family the run does not use",
      };
    },
  };
}
