// LlamaConfig mirrors Hugging Face's config.json for LlamaForCausalLM field for field, so a
// checkpoint folder written here loads in transformers and one from the Hub loads here.
import { z } from "zod";

const positiveInt = z.number().int().positive();
const tokenId = z.number().int().nonnegative();

export const LlamaConfigSchema = z
  .object({
    model_type: z.literal("llama"),
    architectures: z.array(z.string()).default(["LlamaForCausalLM"]),
    hidden_size: positiveInt,
    intermediate_size: positiveInt,
    num_hidden_layers: positiveInt,
    num_attention_heads: positiveInt,
    num_key_value_heads: positiveInt,
    hidden_act: z.literal("silu").default("silu"),
    rms_norm_eps: z.number().positive().default(1e-5),
    rope_theta: z.number().positive().default(10000),
    vocab_size: positiveInt,
    max_position_embeddings: positiveInt,
    tie_word_embeddings: z.boolean().default(false),
    bos_token_id: tokenId.nullable().default(1),
    // HF allows a list of end tokens; the first one is the one generation stops on by default.
    eos_token_id: z.union([tokenId, z.array(tokenId).min(1)]).default(2),
    pad_token_id: tokenId.nullable().default(null),
    torch_dtype: z.enum(["float32", "float16", "bfloat16"]).default("float32"),
    initializer_range: z.number().positive().default(0.02),
    attention_bias: z.literal(false).default(false),
    mlp_bias: z.literal(false).default(false),
    // Dropout on attention probabilities, applied only in training (HF's field for it).
    attention_dropout: z.number().min(0).max(1).default(0),
  })
  .loose()
  .superRefine((c, ctx) => {
    if (c.hidden_size % c.num_attention_heads !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["hidden_size"],
        message: `hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads}`,
      });
    } else if ((c.hidden_size / c.num_attention_heads) % 2 !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["num_attention_heads"],
        message: `head dim ${c.hidden_size / c.num_attention_heads} must be even for rotary embeddings`,
      });
    }
    if (c.num_attention_heads % c.num_key_value_heads !== 0) {
      ctx.addIssue({
        code: "custom",
        path: ["num_key_value_heads"],
        message: `num_attention_heads ${c.num_attention_heads} is not a multiple of num_key_value_heads ${c.num_key_value_heads}`,
      });
    }
    const ids: [string, number | null][] = [
      ["bos_token_id", c.bos_token_id],
      ["pad_token_id", c.pad_token_id],
      ...(Array.isArray(c.eos_token_id) ? c.eos_token_id : [c.eos_token_id]).map((id): [string, number] => [
        "eos_token_id",
        id,
      ]),
    ];
    for (const [field, id] of ids) {
      if (id !== null && id >= c.vocab_size) {
        ctx.addIssue({
          code: "custom",
          path: [field],
          message: `${field} ${id} is outside the vocabulary (vocab_size ${c.vocab_size})`,
        });
      }
    }
  });

export type LlamaConfig = z.output<typeof LlamaConfigSchema>;
export type LlamaConfigInput = z.input<typeof LlamaConfigSchema>;

/** Validates a parsed config.json; `where` names the source in the error (a path, "preset tiny"). */
export function parseLlamaConfig(json: unknown, where = "config"): LlamaConfig {
  const result = LlamaConfigSchema.safeParse(json);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new Error(`invalid Llama config in ${where}:\n${lines.join("\n")}`);
  }
  return result.data;
}

export function headDim(c: LlamaConfig): number {
  return c.hidden_size / c.num_attention_heads;
}

export function eosIds(c: LlamaConfig): number[] {
  return Array.isArray(c.eos_token_id) ? c.eos_token_id : [c.eos_token_id];
}

type Shape = Pick<
  LlamaConfig,
  | "hidden_size"
  | "intermediate_size"
  | "num_hidden_layers"
  | "num_attention_heads"
  | "num_key_value_heads"
  | "max_position_embeddings"
>;

export const PRESETS = {
  tiny: {
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 192,
  },
  small: {
    hidden_size: 128,
    intermediate_size: 352,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 4,
    max_position_embeddings: 256,
  },
  bench: {
    hidden_size: 256,
    intermediate_size: 704,
    num_hidden_layers: 4,
    num_attention_heads: 8,
    num_key_value_heads: 8,
    max_position_embeddings: 256,
  },
} as const satisfies Record<string, Shape>;

export type PresetName = keyof typeof PRESETS;

export function isPresetName(name: string): name is PresetName {
  return Object.hasOwn(PRESETS, name);
}

export interface VocabInfo {
  vocabSize: number;
  bosId: number;
  eosId: number;
  padId: number;
}

/** A full config for a named preset, sized to a tokenizer's vocabulary. */
export function presetConfig(
  name: string,
  vocab: VocabInfo,
  overrides: Partial<LlamaConfigInput> = {},
): LlamaConfig {
  if (!isPresetName(name)) {
    throw new Error(`unknown model preset "${name}" (expected one of ${Object.keys(PRESETS).join(", ")})`);
  }
  return parseLlamaConfig(
    {
      model_type: "llama",
      architectures: ["LlamaForCausalLM"],
      ...PRESETS[name],
      hidden_act: "silu",
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      vocab_size: vocab.vocabSize,
      tie_word_embeddings: false,
      bos_token_id: vocab.bosId,
      eos_token_id: vocab.eosId,
      pad_token_id: vocab.padId,
      torch_dtype: "float32",
      ...overrides,
    },
    `preset ${name}`,
  );
}
