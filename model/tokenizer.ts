// Tokenizers. CharTokenizer maps each character to one id and saves itself as a valid Hugging Face
// tokenizer.json (BPE over single characters with no merges, a per-character Split, a Fuse
// decoder), so `tokenizers`/transformers load it unchanged; any other tokenizer.json is served by
// the pure-JS @huggingface/tokenizers.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Tokenizer as HfTokenizerImpl } from "@huggingface/tokenizers";

export interface Tokenizer {
  /** Ids of the text alone: no BOS/EOS is added (callers decide where special tokens go). */
  encode(text: string): number[];
  /** Text of the ids, special tokens skipped. */
  decode(ids: number[]): string;
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly chatTemplate: string | null;
  /** tokenizer.json */
  toJSON(): object;
  /** tokenizer_config.json */
  configJSON(): object;
}

export const SPECIAL_TOKENS = { pad: "<pad>", bos: "<s>", eos: "</s>", unk: "<unk>" } as const;

/** Printable ASCII and newline. */
export const DEFAULT_ALPHABET =
  "\n" + Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)).join("");

function tokenizerConfig(t: Tokenizer, tokenOf: (id: number) => string): object {
  return {
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: tokenOf(t.bosId),
    eos_token: tokenOf(t.eosId),
    pad_token: tokenOf(t.padId),
    model_max_length: 1_000_000,
    add_bos_token: false,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    ...(t.chatTemplate ? { chat_template: t.chatTemplate } : {}),
  };
}

export class CharTokenizer implements Tokenizer {
  readonly tokens: string[];
  private readonly ids = new Map<string, number>();
  readonly padId = 0;
  readonly bosId = 1;
  readonly eosId = 2;
  readonly unkId = 3;

  constructor(
    alphabet: string | Iterable<string> = DEFAULT_ALPHABET,
    readonly chatTemplate: string | null = null,
  ) {
    const specials = [SPECIAL_TOKENS.pad, SPECIAL_TOKENS.bos, SPECIAL_TOKENS.eos, SPECIAL_TOKENS.unk];
    const chars = [...new Set(typeof alphabet === "string" ? Array.from(alphabet) : alphabet)];
    for (const ch of chars) {
      if ([...ch].length !== 1)
        throw new Error(`CharTokenizer: alphabet entry "${ch}" is not a single character`);
    }
    this.tokens = [...specials, ...chars.filter((ch) => !(specials as string[]).includes(ch))];
    this.tokens.forEach((tok, id) => {
      this.ids.set(tok, id);
    });
  }

  get vocabSize(): number {
    return this.tokens.length;
  }

  encode(text: string): number[] {
    return Array.from(text, (ch) => this.ids.get(ch) ?? this.unkId);
  }

  decode(ids: number[]): string {
    let out = "";
    for (const id of ids) if (id > this.unkId && id < this.tokens.length) out += this.tokens[id];
    return out;
  }

  toJSON(): object {
    const vocab: Record<string, number> = {};
    this.tokens.forEach((tok, id) => {
      vocab[tok] = id;
    });
    return {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: this.tokens.slice(0, 4).map((content, id) => ({
        id,
        content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
      normalizer: null,
      pre_tokenizer: { type: "Split", pattern: { Regex: "[\\s\\S]" }, behavior: "Isolated", invert: false },
      post_processor: null,
      decoder: { type: "Fuse" },
      model: {
        type: "BPE",
        dropout: null,
        unk_token: SPECIAL_TOKENS.unk,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges: [],
      },
    };
  }

  configJSON(): object {
    return tokenizerConfig(this, (id) => this.tokens[id]);
  }

  /** Recognises a tokenizer.json written by toJSON (one character per non-special token, no merges). */
  static fromJSON(json: unknown, chatTemplate: string | null = null): CharTokenizer | null {
    const j = json as { model?: { type?: string; merges?: unknown[]; vocab?: Record<string, number> } };
    if (j?.model?.type !== "BPE" || (j.model.merges?.length ?? 0) !== 0 || !j.model.vocab) return null;
    const byId: string[] = [];
    for (const [tok, id] of Object.entries(j.model.vocab)) byId[id] = tok;
    const specials = [SPECIAL_TOKENS.pad, SPECIAL_TOKENS.bos, SPECIAL_TOKENS.eos, SPECIAL_TOKENS.unk];
    if (specials.some((s, i) => byId[i] !== s)) return null;
    const chars = byId.slice(4);
    if (chars.some((ch) => ch === undefined || [...ch].length !== 1)) return null;
    return new CharTokenizer(chars, chatTemplate);
  }
}

type SpecialToken = string | { content: string } | null | undefined;

function tokenText(t: SpecialToken): string | null {
  if (t == null) return null;
  return typeof t === "string" ? t : t.content;
}

/** Any Hugging Face tokenizer.json, through @huggingface/tokenizers. */
/** Longest regex a tokenizer file may carry (real ones are a few hundred characters). */
export const MAX_TOKENIZER_PATTERN = 4096;

/**
 * Why a tokenizer regex is refused, or null. A weight blob's tokenizer is untrusted input, and a
 * pattern with a quantified group that itself holds an unbounded quantifier (`(a+)+`, `(?:x*)*`)
 * can take exponential time on a short string, freezing the actor that encodes with it. Real
 * tokenizers' patterns (Llama 3's, Qwen's, GPT-2's) have no such nesting.
 */
export function tokenizerPatternProblem(pattern: string): string | null {
  if (pattern.length > MAX_TOKENIZER_PATTERN)
    return `${pattern.length} characters, above the limit of ${MAX_TOKENIZER_PATTERN}`;
  // For each open group: whether it holds an unbounded quantifier, at any depth.
  const groups: boolean[] = [];
  let inClass = false;
  const unboundedAt = (i: number): { unbounded: boolean; repeats: boolean; length: number } => {
    const c = pattern[i];
    if (c === "+" || c === "*") return { unbounded: true, repeats: true, length: 1 };
    if (c === "{") {
      const m = /^\{(\d*)(,(\d*))?\}/.exec(pattern.slice(i));
      if (m) {
        const max = m[2] === undefined ? Number(m[1]) : m[3] === "" ? Number.POSITIVE_INFINITY : Number(m[3]);
        return { unbounded: max === Number.POSITIVE_INFINITY, repeats: max > 1, length: m[0].length };
      }
    }
    return { unbounded: false, repeats: false, length: 0 };
  };
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (inClass) {
      if (c === "]") inClass = false;
      continue;
    }
    if (c === "[") inClass = true;
    else if (c === "(") groups.push(false);
    else if (c === ")") {
      const heldUnbounded = groups.pop() ?? false;
      const after = unboundedAt(i + 1);
      if (heldUnbounded && after.repeats)
        return `a repeated group holds an unbounded quantifier (near character ${i + 1}), which can take exponential time`;
      if (after.unbounded && groups.length) groups[groups.length - 1] = true;
      if (heldUnbounded && groups.length) groups[groups.length - 1] = true;
    } else {
      const q = unboundedAt(i);
      if (q.unbounded && groups.length) groups[groups.length - 1] = true;
    }
  }
  return null;
}

/** Every regex of a tokenizer.json (pre-tokenizer splits, normalizer replaces…), with its path. */
function tokenizerPatterns(node: unknown, path: string, out: { path: string; pattern: string }[]): void {
  if (Array.isArray(node)) {
    for (const [i, x] of node.entries()) tokenizerPatterns(x, `${path}[${i}]`, out);
  } else if (node !== null && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (k === "Regex" && typeof v === "string") out.push({ path: `${path}.Regex`, pattern: v });
      else if (k !== "vocab" && k !== "merges" && k !== "added_tokens")
        tokenizerPatterns(v, `${path}.${k}`, out);
    }
  }
}

export class HfTokenizer implements Tokenizer {
  private readonly impl: HfTokenizerImpl;
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly chatTemplate: string | null;

  constructor(
    private readonly json: object,
    private readonly config: Record<string, unknown> = {},
    fallbackIds: { bos?: number; eos?: number; pad?: number } = {},
  ) {
    const patterns: { path: string; pattern: string }[] = [];
    tokenizerPatterns(json, "tokenizer", patterns);
    for (const { path, pattern } of patterns) {
      const problem = tokenizerPatternProblem(pattern);
      if (problem) throw new Error(`HfTokenizer: ${path} is refused: ${problem}`);
    }
    this.impl = new HfTokenizerImpl(json, config);
    let maxId = -1;
    for (const id of this.impl.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const idOf = (field: string, fallback: number | undefined): number | undefined => {
      const text = tokenText(config[field] as SpecialToken);
      const id = text === null ? undefined : this.impl.token_to_id(text);
      return id ?? fallback;
    };
    const eos = idOf("eos_token", fallbackIds.eos);
    if (eos === undefined)
      throw new Error("HfTokenizer: no eos_token in tokenizer_config.json and none given");
    this.eosId = eos;
    this.bosId = idOf("bos_token", fallbackIds.bos) ?? eos;
    this.padId = idOf("pad_token", fallbackIds.pad) ?? eos;
    this.chatTemplate = typeof config.chat_template === "string" ? config.chat_template : null;
  }

  encode(text: string): number[] {
    return this.impl.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: number[]): string {
    // @huggingface/tokenizers throws on an empty list; a row that ends at its first token has one.
    if (ids.length === 0) return "";
    return this.impl.decode(ids, { skip_special_tokens: true });
  }

  toJSON(): object {
    return this.json;
  }

  configJSON(): object {
    return Object.keys(this.config).length > 0
      ? this.config
      : tokenizerConfig(this, (id) => this.impl.id_to_token(id) ?? "");
  }
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as Error).message}`);
  }
}

/** Loads tokenizer.json (+ tokenizer_config.json when present) from a checkpoint folder. */
export function loadTokenizer(
  dir: string,
  fallbackIds: { bos?: number; eos?: number; pad?: number } = {},
): Tokenizer {
  const jsonPath = join(dir, "tokenizer.json");
  if (!existsSync(jsonPath)) throw new Error(`loadTokenizer: ${jsonPath} does not exist`);
  const json = readJson(jsonPath) as object;
  const configPath = join(dir, "tokenizer_config.json");
  const config = existsSync(configPath) ? (readJson(configPath) as Record<string, unknown>) : {};
  const chatTemplate = typeof config.chat_template === "string" ? config.chat_template : null;
  return CharTokenizer.fromJSON(json, chatTemplate) ?? new HfTokenizer(json, config, fallbackIds);
}
