// Named presets: partial configs laid over the defaults before the file, environment and flags.
import type { ConfigInput } from "./schema.ts";

export const presets: Record<string, ConfigInput> = {
  // The defaults as they are: a full run for a CPU host with a few cores.
  default: {},
  // The CI smoke test: every stage runs over NATS, the numbers are too small to mean anything.
  tiny: {
    model: { preset: "tiny" },
    data: { pretrainSize: 300, iftSize: 60, eftSize: 60, heldOutSize: 40, judgeEvalSize: 8 },
    train: {
      pretrain: { steps: 30, batchSize: 8, learningRate: 3e-3 },
      sft: { steps: 20, batchSize: 8, learningRate: 1e-3 },
      dpo: { steps: 6, batchSize: 4, learningRate: 1e-4 },
    },
    selfReward: { iterations: 2, promptsPerIteration: 8, maxNewTokens: 16 },
    actors: { ackWaitMs: 10_000 },
  },
  // The README's run: shows M2 and M3 beating M1 within 20 minutes on 2 cores.
  demo: {
    model: { preset: "small" },
  },
};

export function presetNames(): string[] {
  return Object.keys(presets);
}
