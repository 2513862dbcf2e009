// LlamaConfig mirrors Hugging Face's config.json for LlamaForCausalLM field for field, so a
// checkpoint folder written here loads in transformers and one from the Hub loads here.
import { z } from "zod";

const positiveInt = z.number().int().positive();
const tokenId = z.number().int().nonnegative();

/**
 * Upper bounds on the sizes a config may ask for. They sit well above every released
 * Llama-family model and well below what would allocate gigabytes for one table, so a hostile or
 * mistyped config.json fails here with the field's name instead of exhausting memory later.
 */
export const CONFIG_LIMITS = {
  vocab_size: 1 << 20,
  hidden_size: 1 << 16,
  intermediate_size: 1 << 18,
  num_hidden_layers: 1024,
  num_attention_heads: 1024,
  head_dim: 1024,
  max_position_embeddings: 1 << 24,
} as const;

// Llama 3.1's long-context frequency rescaling; HF names the kind rope_type (older files: type).
const RopeScalingSchema = z
  .object({
    rope_type: z.string().optional(),
    type: z.string().optional(),
    factor: z.number().positive().optional(),
    low_freq_factor: z.number().positive().optional(),
    high_freq_factor: z.number().positive().optional(),
    original_max_position_embeddings: positiveInt.optional(),
  })
  .loose();

export interface Llama3RopeScaling {
  rope_type: "llama3";
  factor: number;
  low_freq_factor: number;
  high_freq_factor: number;
  original_max_position_embeddings: number;
}

const LlamaConfigFields = z
  .object({
    model_type: z.string(),
    architectures: z.array(z.string()).default(["LlamaForCausalLM"]),
    hidden_size: positiveInt,
    intermediate_size: positiveInt,
    num_hidden_layers: positiveInt,
    num_attention_heads: positiveInt,
    num_key_value_heads: positiveInt,
    // Absent or null: hidden_size / num_attention_heads, as in transformers.
    head_dim: positiveInt.nullable().optional(),
    hidden_act: z.string().default("silu"),
    rms_norm_eps: z.number().positive().default(1e-5),
    rope_theta: z.number().positive().default(10000),
    rope_scaling: RopeScalingSchema.nullable().default(null),
    vocab_size: positiveInt,
    max_position_embeddings: positiveInt,
    tie_word_embeddings: z.boolean().default(false),
    bos_token_id: tokenId.nullable().default(1),
    // HF allows a list of end tokens; the first one is the one generation stops on by default.
    eos_token_id: z.union([tokenId, z.array(tokenId).min(1)]).default(2),
    pad_token_id: tokenId.nullable().default(null),
    torch_dtype: z.enum(["float32", "float16", "bfloat16"]).default("float32"),
    initializer_range: z.number().positive().default(0.02),
    attention_bias: z.boolean().default(false),
    mlp_bias: z.boolean().default(false),
    // Dropout on attention probabilities, applied only in training (HF's field for it).
    attention_dropout: z.number().min(0).max(1).default(0),
  })
  .loose();

export const LlamaConfigSchema = LlamaConfigFields.superRefine((c, ctx) => {
  const refuse = (path: string[], message: string) => ctx.addIssue({ code: "custom", path, message });
  for (const [field, limit] of Object.entries(CONFIG_LIMITS)) {
    const value = (c as Record<string, unknown>)[field];
    if (typeof value === "number" && value > limit) {
      refuse([field], `${field} ${value} is above the supported limit ${limit}`);
    }
  }
  unsupportedFields(c, refuse);
  if (c.head_dim == null && c.hidden_size % c.num_attention_heads !== 0) {
    refuse(
      ["hidden_size"],
      `hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${c.num_attention_heads} (and no head_dim is given)`,
    );
  } else if (headDim(c) % 2 !== 0) {
    refuse(["head_dim"], `head dim ${headDim(c)} must be even for rotary embeddings`);
  }
  if (c.num_attention_heads % c.num_key_value_heads !== 0) {
    refuse(
      ["num_key_value_heads"],
      `num_attention_heads ${c.num_attention_heads} is not a multiple of num_key_value_heads ${c.num_key_value_heads}`,
    );
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
      refuse([field], `${field} ${id} is outside the vocabulary (vocab_size ${c.vocab_size})`);
    }
  }
});

type Refuse = (path: string[], message: string) => void;

/** Fields whose non-default values change the architecture in ways srlm does not implement:
 * refusing them beats loading a model that silently computes something else. */
function unsupportedFields(c: z.output<typeof LlamaConfigFields>, refuse: Refuse): void {
  const extra = c as Record<string, unknown>;
  if (c.model_type !== "llama") {
    refuse(["model_type"], `model_type "${c.model_type}" is not supported (srlm implements "llama")`);
  }
  // transformers maps both names to the same function.
  if (c.hidden_act !== "silu" && c.hidden_act !== "swish") {
    refuse(["hidden_act"], `hidden_act "${c.hidden_act}" is not supported (srlm implements silu)`);
  }
  if (c.attention_bias) refuse(["attention_bias"], "attention_bias true is not supported (no bias terms)");
  if (c.mlp_bias) refuse(["mlp_bias"], "mlp_bias true is not supported (no bias terms)");
  if (extra.sliding_window != null && extra.use_sliding_window !== false) {
    refuse(
      ["sliding_window"],
      `sliding_window ${JSON.stringify(extra.sliding_window)} is not supported (full causal attention only)`,
    );
  }
  if (extra.quantization_config != null) {
    refuse(["quantization_config"], "quantized checkpoints are not supported (float32/16/bf16 weights only)");
  }
  const s = c.rope_scaling;
  if (s) {
    const kind = s.rope_type ?? s.type;
    if (kind === "llama3") {
      for (const field of [
        "factor",
        "low_freq_factor",
        "high_freq_factor",
        "original_max_position_embeddings",
      ] as const) {
        if (s[field] === undefined) refuse(["rope_scaling", field], `rope_scaling "llama3" needs ${field}`);
      }
      if (s.low_freq_factor !== undefined && s.high_freq_factor !== undefined) {
        if (s.high_freq_factor <= s.low_freq_factor) {
          refuse(
            ["rope_scaling", "high_freq_factor"],
            `rope_scaling high_freq_factor ${s.high_freq_factor} must exceed low_freq_factor ${s.low_freq_factor}`,
          );
        }
      }
    } else if (kind !== "default") {
      refuse(
        ["rope_scaling", s.rope_type !== undefined ? "rope_type" : "type"],
        `rope_scaling of type ${JSON.stringify(kind)} is not supported (srlm implements "llama3" and "default")`,
      );
    }
  }
}

export type LlamaConfig = z.output<typeof LlamaConfigSchema>;
export type LlamaConfigInput = z.input<typeof LlamaConfigSchema>;

/** Validates a parsed config.json; `where` names the source in the error (a path, "preset tiny"). */
export function parseLlamaConfig(json: unknown, where = "config"): LlamaConfig {
  const result = LlamaConfigSchema.safeParse(fromRopeParameters(json));
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new Error(`invalid Llama config in ${where}:\n${lines.join("\n")}`);
  }
  return result.data;
}

/** transformers 5 writes rope_theta and the scaling together as rope_parameters; they are read
 * into the two older fields, which are what a checkpoint saved here carries. */
function fromRopeParameters(json: unknown): unknown {
  if (typeof json !== "object" || json === null || !("rope_parameters" in json)) return json;
  const { rope_parameters: params, ...rest } = json as Record<string, unknown>;
  if (params == null) return rest;
  if (typeof params !== "object") return json;
  const { rope_theta, ...scaling } = params as Record<string, unknown>;
  const kind = scaling.rope_type ?? scaling.type;
  return {
    ...rest,
    ...(rope_theta !== undefined ? { rope_theta } : {}),
    ...(kind !== undefined && kind !== "default" ? { rope_scaling: scaling } : {}),
  };
}

export function headDim(c: Pick<LlamaConfig, "head_dim" | "hidden_size" | "num_attention_heads">): number {
  return c.head_dim ?? c.hidden_size / c.num_attention_heads;
}

/** The Llama 3 rescaling when the config asks for it; null for plain RoPE. */
export function llama3RopeScaling(c: LlamaConfig): Llama3RopeScaling | null {
  const s = c.rope_scaling;
  if (!s || (s.rope_type ?? s.type) !== "llama3") return null;
  // parseLlamaConfig has checked that every field is present.
  return {
    rope_type: "llama3",
    factor: s.factor!,
    low_freq_factor: s.low_freq_factor!,
    high_freq_factor: s.high_freq_factor!,
    original_max_position_embeddings: s.original_max_position_embeddings!,
  };
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

const SMALL = {
  hidden_size: 128,
  intermediate_size: 352,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  max_position_embeddings: 256,
} as const;

export const PRESETS = {
  tiny: {
    hidden_size: 32,
    intermediate_size: 64,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
    max_position_embeddings: 192,
  },
  small: SMALL,
  // The small model's width at twice its depth. Copying the answer into a worked check, character
  // by character, is what a two-layer self-judge does badly; at four layers the copy forms on some
  // seeds, not all, and a step costs several times as much (docs/experiments.md, "M1 stability",
  // twelfth round).
  small4: { ...SMALL, num_hidden_layers: 4 },
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
