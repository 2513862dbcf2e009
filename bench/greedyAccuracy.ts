// Greedy Top-1 of a policy on math problems, for the benches that track it while training.
import { type Policy, samplePolicy } from "../actors/policy.ts";
import type { PromptFormat } from "../bus/messages.ts";
import { isCorrect } from "../tasks/inference.ts";
import type { MathProblem } from "../tasks/math.ts";

export interface GreedyOptions {
  maxNewTokens: number;
  trigger: string;
  format: PromptFormat;
}

/**
 * The share of `problems` whose greedy answer is right, which ones, and the solutions themselves
 * (decoded in batches of 32).
 */
export function greedyAccuracy(
  policy: Policy,
  problems: readonly MathProblem[],
  opts: GreedyOptions,
): { accuracy: number; right: boolean[]; texts: string[] } {
  const right: boolean[] = [];
  const texts: string[] = [];
  const sampling = { temperature: 0, topP: 1, topK: 0, maxNewTokens: opts.maxNewTokens, seed: 0 };
  for (let i = 0; i < problems.length; i += 32) {
    const batch = problems.slice(i, i + 32);
    samplePolicy(
      policy,
      batch.map((p) => p.question),
      1,
      sampling,
      opts.format,
    ).forEach((r, j) => {
      texts.push(r.samples[0].text);
      right.push(isCorrect(r.samples[0].text, batch[j].answer, { trigger: opts.trigger }));
    });
  }
  const n = right.filter(Boolean).length;
  return { accuracy: problems.length ? n / problems.length : Number.NaN, right, texts };
}
