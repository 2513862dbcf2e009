// The tasks whose true scores can be known, by the name jobs carry: the `verifier` judge (and the
// A/B judge's second opinion) look a verifier up here, so a judge process needs no task data.
import type { Rubric } from "./criteria.ts";
import { SYNTHETIC_TASK, syntheticFormat } from "./synthetic.ts";

export type Verifier = (prompt: string, response: string) => Rubric;

const VERIFIERS: Record<string, Verifier> = { [SYNTHETIC_TASK]: syntheticFormat.verify };

/** The verifier of `task`; throws, naming the task, where it has none. */
export function verifierOf(task: string): Verifier {
  const verify = VERIFIERS[task];
  if (!verify)
    throw new Error(
      `task ${JSON.stringify(task)} has no verifier; tasks with one: ${Object.keys(VERIFIERS).join(", ")}`,
    );
  return verify;
}
