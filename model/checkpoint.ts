// A checkpoint is a folder transformers can open: config.json, model.safetensors (HF names and
// layouts, float32), tokenizer.json and tokenizer_config.json. Optimizer state for resuming lives
// beside it in trainer_state.safetensors + trainer_state.json.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { eosIds, type LlamaConfig, parseLlamaConfig } from "./config.ts";
import { type HostTensor, Llama } from "./llama.ts";
import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
import { loadTokenizer, type Tokenizer } from "./tokenizer.ts";

export const CONFIG_FILE = "config.json";
export const WEIGHTS_FILE = "model.safetensors";
export const TRAINER_STATE_FILE = "trainer_state.json";
export const TRAINER_TENSORS_FILE = "trainer_state.safetensors";

// transformers refuses safetensors files whose metadata lacks a known "format".
const HF_METADATA = { format: "pt" };

/** The model's weights as an in-memory safetensors file, with its config in the metadata so the
 * bytes alone rebuild the model (for publishing weight versions through the object store). */
export function weightsToBytes(model: Llama): Uint8Array {
  return encodeSafetensors(model.getWeights(), { ...HF_METADATA, srlm_config: JSON.stringify(model.config) });
}

export interface DecodedWeights {
  weights: Map<string, HostTensor>;
  /** Present when the bytes came from weightsToBytes. */
  config: LlamaConfig | null;
}

export function weightsFromBytes(bytes: Uint8Array): DecodedWeights {
  const { tensors, metadata } = decodeSafetensors(bytes, "weights");
  const config = metadata.srlm_config
    ? parseLlamaConfig(JSON.parse(metadata.srlm_config), "weights metadata")
    : null;
  return { weights: tensors, config };
}

/** A new model from weightsToBytes output (or from any safetensors bytes plus a config). */
export function modelFromBytes(bytes: Uint8Array, config?: LlamaConfig): Llama {
  const decoded = weightsFromBytes(bytes);
  const cfg = config ?? decoded.config;
  if (!cfg) throw new Error("modelFromBytes: the bytes carry no config and none was given");
  return new Llama(cfg, decoded.weights);
}

export function saveCheckpoint(dir: string, model: Llama, tokenizer: Tokenizer): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, CONFIG_FILE), JSON.stringify(model.config, null, 2) + "\n");
  writeFileSync(join(dir, WEIGHTS_FILE), encodeSafetensors(model.getWeights(), HF_METADATA));
  writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tokenizer.toJSON()));
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(tokenizer.configJSON(), null, 2) + "\n");
  writeFileSync(
    join(dir, "generation_config.json"),
    JSON.stringify(
      { bos_token_id: model.config.bos_token_id, eos_token_id: model.config.eos_token_id },
      null,
      2,
    ) + "\n",
  );
}

export function loadConfig(dir: string): LlamaConfig {
  const path = join(dir, CONFIG_FILE);
  if (!existsSync(path)) throw new Error(`checkpoint ${dir}: ${CONFIG_FILE} is missing`);
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(`checkpoint ${path}: not valid JSON (${(err as Error).message})`);
  }
  return parseLlamaConfig(json, path);
}

export function loadCheckpoint(dir: string): { model: Llama; tokenizer: Tokenizer } {
  const config = loadConfig(dir);
  const weightsPath = join(dir, WEIGHTS_FILE);
  if (!existsSync(weightsPath)) throw new Error(`checkpoint ${dir}: ${WEIGHTS_FILE} is missing`);
  const { tensors } = decodeSafetensors(readFileSync(weightsPath), weightsPath);
  // Some HF checkpoints of tied models still carry lm_head.weight; it equals the embedding.
  if (config.tie_word_embeddings) tensors.delete("lm_head.weight");
  const model = new Llama(config, tensors);
  const tokenizer = loadTokenizer(dir, {
    bos: config.bos_token_id ?? undefined,
    eos: eosIds(config)[0],
    pad: config.pad_token_id ?? undefined,
  });
  if (tokenizer.vocabSize > config.vocab_size) {
    model.dispose();
    throw new Error(
      `checkpoint ${dir}: tokenizer has ${tokenizer.vocabSize} tokens but config vocab_size is ${config.vocab_size}`,
    );
  }
  return { model, tokenizer };
}

export interface TrainerStateFiles {
  /** step, seed, RNG state, schedule: anything JSON. */
  json: Record<string, unknown>;
  /** Optimizer moments and other tensors, by name. */
  tensors: Map<string, HostTensor>;
}

export function saveTrainerState(dir: string, state: TrainerStateFiles): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, TRAINER_TENSORS_FILE), encodeSafetensors(state.tensors, HF_METADATA));
  writeFileSync(join(dir, TRAINER_STATE_FILE), JSON.stringify(state.json, null, 2) + "\n");
}

export function loadTrainerState(dir: string): TrainerStateFiles | null {
  const jsonPath = join(dir, TRAINER_STATE_FILE);
  const tensorPath = join(dir, TRAINER_TENSORS_FILE);
  if (!existsSync(jsonPath) || !existsSync(tensorPath)) return null;
  const json = JSON.parse(readFileSync(jsonPath, "utf8")) as Record<string, unknown>;
  const { tensors } = decodeSafetensors(readFileSync(tensorPath), tensorPath);
  return { json, tensors };
}
