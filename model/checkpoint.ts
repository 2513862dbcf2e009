// A checkpoint is a folder transformers can open: config.json, model.safetensors (HF names and
// layouts, float32), tokenizer.json and tokenizer_config.json. Optimizer state for resuming lives
// beside it in trainer_state.safetensors + trainer_state.json. Folders from the Hub may instead
// split the weights into shards listed by model.safetensors.index.json, and may list more end
// tokens in generation_config.json than in config.json; both are read.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { eosIds, type LlamaConfig, parseLlamaConfig } from "./config.ts";
import { type HostTensor, Llama } from "./llama.ts";
import { decodeSafetensors, encodeSafetensors, readSafetensorsFile } from "./safetensors.ts";
import { loadTokenizer, type Tokenizer } from "./tokenizer.ts";

export const CONFIG_FILE = "config.json";
export const WEIGHTS_FILE = "model.safetensors";
export const WEIGHTS_INDEX_FILE = "model.safetensors.index.json";
export const GENERATION_CONFIG_FILE = "generation_config.json";
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

function readJsonFile(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(`checkpoint ${path}: not valid JSON (${(err as Error).message})`);
  }
}

/** config.json, with any end tokens generation_config.json adds (chat models often end a turn
 * with a token that config.json does not list, e.g. Llama 3's <|eot_id|>). */
export function loadConfig(dir: string): LlamaConfig {
  const path = join(dir, CONFIG_FILE);
  if (!existsSync(path)) throw new Error(`checkpoint ${dir}: ${CONFIG_FILE} is missing`);
  const json = readJsonFile(path);
  const genPath = join(dir, GENERATION_CONFIG_FILE);
  if (existsSync(genPath) && typeof json === "object" && json !== null) {
    const gen = readJsonFile(genPath) as { eos_token_id?: unknown };
    const own = (json as { eos_token_id?: unknown }).eos_token_id;
    const listed = [own, gen.eos_token_id].flat().filter((id) => id !== undefined && id !== null);
    const merged = [...new Set(listed)];
    if (merged.length > 0) {
      return parseLlamaConfig(
        { ...json, eos_token_id: merged.length === 1 ? merged[0] : merged },
        `${path} (with ${GENERATION_CONFIG_FILE})`,
      );
    }
  }
  return parseLlamaConfig(json, path);
}

/** Every tensor of the checkpoint's weights: model.safetensors, or the shards its index lists. */
export function loadWeights(dir: string): Map<string, HostTensor> {
  const single = join(dir, WEIGHTS_FILE);
  if (existsSync(single)) return readSafetensorsFile(single).tensors;
  const indexPath = join(dir, WEIGHTS_INDEX_FILE);
  if (!existsSync(indexPath)) {
    throw new Error(`checkpoint ${dir}: neither ${WEIGHTS_FILE} nor ${WEIGHTS_INDEX_FILE} is present`);
  }
  const index = readJsonFile(indexPath) as { weight_map?: unknown };
  const map = index.weight_map;
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    throw new Error(`checkpoint ${indexPath}: weight_map is missing or not an object`);
  }
  const byShard = new Map<string, Set<string>>();
  for (const [name, file] of Object.entries(map)) {
    // Shards are siblings of the index; anything else would read outside the folder.
    if (typeof file !== "string" || file !== basename(file) || file === "." || file === "..") {
      throw new Error(
        `checkpoint ${indexPath}: weight_map["${name}"] must name a file in the folder, got ${JSON.stringify(file)}`,
      );
    }
    if (!byShard.has(file)) byShard.set(file, new Set());
    byShard.get(file)!.add(name);
  }
  if (byShard.size === 0) throw new Error(`checkpoint ${indexPath}: weight_map lists no tensors`);
  const out = new Map<string, HostTensor>();
  for (const [file, names] of byShard) {
    const path = join(dir, file);
    if (!existsSync(path)) throw new Error(`checkpoint ${indexPath}: shard ${file} is missing`);
    const { tensors } = readSafetensorsFile(path);
    for (const [name, t] of tensors) {
      if (!names.has(name)) {
        const listed = (map as Record<string, string>)[name];
        throw new Error(
          `checkpoint ${path}: holds "${name}", which ${WEIGHTS_INDEX_FILE} ${listed ? `places in ${listed}` : "does not list"}`,
        );
      }
      out.set(name, t);
    }
    for (const name of names) {
      if (!tensors.has(name))
        throw new Error(`checkpoint ${path}: lacks "${name}", listed for it in the index`);
    }
  }
  return out;
}

/** The output head against the config's tie_word_embeddings: a tied config drops an lm_head
 * equal to the embedding (some tied Hub checkpoints still carry one) and refuses a different one. */
function reconcileTiedHead(config: LlamaConfig, tensors: Map<string, HostTensor>, dir: string): void {
  const head = tensors.get("lm_head.weight");
  if (config.tie_word_embeddings) {
    if (!head) return;
    const embed = tensors.get("model.embed_tokens.weight");
    const same =
      embed !== undefined &&
      embed.data.length === head.data.length &&
      embed.data.every((x, i) => x === head.data[i]);
    if (!same) {
      throw new Error(
        `checkpoint ${dir}: config.json has tie_word_embeddings true, but the weights carry an lm_head.weight that differs from model.embed_tokens.weight`,
      );
    }
    tensors.delete("lm_head.weight");
  } else if (!head) {
    throw new Error(
      `checkpoint ${dir}: config.json has tie_word_embeddings false, but the weights carry no lm_head.weight (a model that ties its head to the embedding needs tie_word_embeddings true)`,
    );
  }
}

export function loadCheckpoint(dir: string): { model: Llama; tokenizer: Tokenizer } {
  const config = loadConfig(dir);
  const tensors = loadWeights(dir);
  reconcileTiedHead(config, tensors, dir);
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
  const { tensors } = readSafetensorsFile(tensorPath);
  return { json, tensors };
}
