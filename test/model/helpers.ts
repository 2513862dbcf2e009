// Shared by the model tests: which backends to run on, and tiny models and data.
import * as tf from "@tensorflow/tfjs";
import { selectBackend } from "../../model/backend.ts";
import { registerBlasBackend } from "../../model/backends/blas.ts";
import { type LlamaConfigInput, presetConfig } from "../../model/config.ts";
import { Llama } from "../../model/llama.ts";
import { CharTokenizer } from "../../model/tokenizer.ts";

/** The blas backend joins the defaults when its addon is built: its fused kernels replace whole
 * blocks of the model, so the model's own tests must cover them. */
const blas = await registerBlasBackend();

/** SRLM_TEST_BACKENDS=cpu,wasm,blas (default: cpu, wasm, and blas when built). */
export const BACKENDS = (process.env.SRLM_TEST_BACKENDS ?? (blas.ok ? "cpu,wasm,blas" : "cpu,wasm"))
  .split(",")
  .filter(Boolean) as TestBackend[];

export type TestBackend = "cpu" | "wasm" | "blas";

const quiet = { info() {} };

export async function useBackend(name: TestBackend): Promise<void> {
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
