// Shared by the model tests: which backends to run on, and tiny models and data.
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../../model/backend.ts";
import { type LlamaConfigInput, presetConfig } from "../../model/config.ts";
import { Llama } from "../../model/llama.ts";
import { CharTokenizer } from "../../model/tokenizer.ts";

/** SRLM_TEST_BACKENDS=cpu,wasm (default both). */
export const BACKENDS = (process.env.SRLM_TEST_BACKENDS ?? "cpu,wasm").split(",").filter(Boolean) as (
  | "cpu"
  | "wasm"
)[];

const quiet = { info() {} };

export async function useBackend(name: "cpu" | "wasm"): Promise<void> {
  await selectBackend(name, quiet);
}

export const tokenizer = new CharTokenizer("abcdefgh =+0123456789\n");

export function tinyModel(seed = 1, overrides: Partial<LlamaConfigInput> = {}): Llama {
  const config = presetConfig(
    "tiny",
    {
      vocabSize: tokenizer.vocabSize,
      bosId: tokenizer.bosId,
      eosId: tokenizer.eosId,
      padId: tokenizer.padId,
    },
    overrides,
  );
  return Llama.init(config, { seed });
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function numTensors(): number {
  return tf.memory().numTensors;
}
