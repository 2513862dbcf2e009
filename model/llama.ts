// A decoder-only transformer of the Llama architecture, read top to bottom like nanoGPT:
// embed → N × (RMSNorm → attention with RoPE → residual → RMSNorm → SwiGLU → residual) → RMSNorm
// → lm_head. Weights are tf.Variables keyed by their Hugging Face names and stored in HF layouts
// ([out, in] for projections), so checkpoints move to and from transformers unchanged.
import * as tf from "@tensorflow/tfjs";
import { eosIds, headDim, type LlamaConfig, llama3RopeScaling } from "./config.ts";
import { attention, embedding, rmsNorm, ropeHeads, swiglu } from "./fused.ts";
import { Rng } from "./random.ts";

export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

export interface ForwardOptions {
  /** Training: gradients will flow and dropout is active. */
  training?: boolean;
  /** 1 for real tokens, 0 for padding, [B][T] for the tokens passed in this call. Positions are
   * counted over real tokens only, so a left-padded row sees the same positions as unpadded. */
  attentionMask?: number[][];
  /** Appends this call's keys and values and attends over everything cached so far. */
  cache?: KVCache;
  /** Only the last position's logits (generation needs nothing else). */
  lastOnly?: boolean;
  /** Seed for dropout masks in training. */
  dropoutSeed?: number;
}

export interface ForwardOutput {
  /** [B, T, V] or [B, 1, V] with lastOnly. */
  logits: tf.Tensor3D;
  /** Final-normed hidden states [B, T, d], the value head's input. */
  hidden: tf.Tensor3D;
}

export const VALUE_HEAD = "value_head.weight";

/** Parameter names and shapes in Hugging Face order. */
export function parameterShapes(c: LlamaConfig, valueHead = false): Map<string, number[]> {
  const d = c.hidden_size;
  const qDim = c.num_attention_heads * headDim(c);
  const kvDim = c.num_key_value_heads * headDim(c);
  const shapes = new Map<string, number[]>();
  shapes.set("model.embed_tokens.weight", [c.vocab_size, d]);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `model.layers.${i}`;
    shapes.set(`${p}.self_attn.q_proj.weight`, [qDim, d]);
    shapes.set(`${p}.self_attn.k_proj.weight`, [kvDim, d]);
    shapes.set(`${p}.self_attn.v_proj.weight`, [kvDim, d]);
    shapes.set(`${p}.self_attn.o_proj.weight`, [d, qDim]);
    shapes.set(`${p}.mlp.gate_proj.weight`, [c.intermediate_size, d]);
    shapes.set(`${p}.mlp.up_proj.weight`, [c.intermediate_size, d]);
    shapes.set(`${p}.mlp.down_proj.weight`, [d, c.intermediate_size]);
    shapes.set(`${p}.input_layernorm.weight`, [d]);
    shapes.set(`${p}.post_attention_layernorm.weight`, [d]);
  }
  shapes.set("model.norm.weight", [d]);
  if (!c.tie_word_embeddings) shapes.set("lm_head.weight", [c.vocab_size, d]);
  if (valueHead) shapes.set(VALUE_HEAD, [1, d]);
  return shapes;
}

/** RoPE's inverse frequencies, one per pair of head dimensions, rounded through float32 at the
 * same steps as transformers so long positions agree. */
export function ropeInverseFrequencies(c: LlamaConfig): number[] {
  const f = Math.fround;
  const hd = headDim(c);
  const invFreq = Array.from({ length: hd / 2 }, (_, i) => f(1 / f(c.rope_theta ** f((2 * i) / hd))));
  const s = llama3RopeScaling(c);
  if (!s) return invFreq;
  // Llama 3.1: with L the original context length, wavelengths above L/low_freq_factor are
  // stretched by `factor`, those below L/high_freq_factor stay, and the band between blends
  // the two.
  const lowWavelen = f(s.original_max_position_embeddings / s.low_freq_factor);
  const highWavelen = f(s.original_max_position_embeddings / s.high_freq_factor);
  return invFreq.map((freq) => {
    const wavelen = f((2 * Math.PI) / freq);
    if (wavelen < highWavelen) return freq;
    if (wavelen > lowWavelen) return f(freq / s.factor);
    const smooth = f(
      f(f(s.original_max_position_embeddings / wavelen) - s.low_freq_factor) /
        f(s.high_freq_factor - s.low_freq_factor),
    );
    return f(f(f(f(1 - smooth) * freq) / s.factor) + f(smooth * freq));
  });
}

/** Rotary tables [n, headDim] for positions 0..n−1 in HF's rotate_half layout (both halves
 * share frequencies). */
function ropeTables(invFreq: number[], n: number): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const hd = 2 * half;
  const cos = new Float32Array(n * hd);
  const sin = new Float32Array(n * hd);
  for (let p = 0; p < n; p++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround(p * invFreq[i]);
      cos[p * hd + i] = cos[p * hd + i + half] = Math.cos(angle);
      sin[p * hd + i] = sin[p * hd + i + half] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/** Preallocated key/value buffers [B, kvHeads, maxLen, headDim] per layer for incremental decoding. */
export class KVCache {
  readonly keys: tf.Tensor4D[] = [];
  readonly values: tf.Tensor4D[] = [];
  /** Attention mask of everything cached, [B][length]. */
  readonly mask: number[][];
  length = 0;

  constructor(
    config: LlamaConfig,
    readonly batch: number,
    readonly maxLen: number,
  ) {
    const shape: [number, number, number, number] = [
      batch,
      config.num_key_value_heads,
      maxLen,
      headDim(config),
    ];
    for (let i = 0; i < config.num_hidden_layers; i++) {
      this.keys.push(tf.keep(tf.zeros(shape)));
      this.values.push(tf.keep(tf.zeros(shape)));
    }
    this.mask = Array.from({ length: batch }, () => []);
  }

  /** Writes k, v ([B, kvHeads, T, hd]) at the current length of `layer`; returns the filled prefix. */
  write(layer: number, k: tf.Tensor4D, v: tf.Tensor4D): [tf.Tensor4D, tf.Tensor4D] {
    const t = k.shape[2];
    const end = this.length + t;
    if (end > this.maxLen) throw new Error(`KVCache overflow: ${end} positions > capacity ${this.maxLen}`);
    const put = (buf: tf.Tensor4D, x: tf.Tensor4D): tf.Tensor4D => {
      const parts: tf.Tensor4D[] = [];
      if (this.length > 0) parts.push(buf.slice([0, 0, 0, 0], [-1, -1, this.length, -1]));
      parts.push(x);
      if (end < this.maxLen) parts.push(buf.slice([0, 0, end, 0], [-1, -1, -1, -1]));
      return tf.keep(parts.length === 1 ? parts[0].clone() : tf.concat(parts, 2));
    };
    const newK = put(this.keys[layer], k);
    const newV = put(this.values[layer], v);
    this.keys[layer].dispose();
    this.values[layer].dispose();
    this.keys[layer] = newK;
    this.values[layer] = newV;
    return [newK.slice([0, 0, 0, 0], [-1, -1, end, -1]), newV.slice([0, 0, 0, 0], [-1, -1, end, -1])];
  }

  dispose(): void {
    for (const t of [...this.keys, ...this.values]) t.dispose();
    this.keys.length = 0;
    this.values.length = 0;
  }
}

const INITIAL_ROPE_ROWS = 256;

export interface InitOptions {
  seed?: number;
  valueHead?: boolean;
}

/** Fresh host weights: normal(0, initializer_range) for matrices, ones for norms, seeded. */
export function randomWeights(config: LlamaConfig, opts: InitOptions = {}): Map<string, HostTensor> {
  const rng = new Rng(opts.seed ?? 0);
  const std = config.initializer_range;
  const weights = new Map<string, HostTensor>();
  for (const [name, shape] of parameterShapes(config, opts.valueHead ?? false)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (shape.length === 1) data.fill(1);
    else for (let i = 0; i < data.length; i++) data[i] = rng.normal() * std;
    weights.set(name, { shape, data });
  }
  return weights;
}

export class Llama {
  readonly params = new Map<string, tf.Variable>();
  private readonly invFreq: number[];
  // Rotary tables grow to the longest position used so far, never to max_position_embeddings
  // up front (a config may allow millions of positions that no call will reach). Growing
  // replaces the pair, so the model always holds exactly two table tensors.
  private rope: { cos: tf.Tensor2D; sin: tf.Tensor2D; rows: number } | null = null;

  /** Takes ownership of nothing: weights are copied into fresh variables. */
  constructor(
    readonly config: LlamaConfig,
    weights: Map<string, HostTensor>,
  ) {
    const valueHead = weights.has(VALUE_HEAD);
    const expected = parameterShapes(config, valueHead);
    for (const [name, shape] of expected) {
      const w = weights.get(name);
      if (!w) throw new Error(`Llama: missing weight "${name}" (shape [${shape}])`);
      if (w.shape.length !== shape.length || w.shape.some((s, i) => s !== shape[i])) {
        throw new Error(`Llama: weight "${name}" has shape [${w.shape}], config expects [${shape}]`);
      }
      // tfjs variable names are process-global, so they stay automatic; the map holds HF names.
      this.params.set(name, tf.variable(tf.tensor(w.data, shape, "float32"), true));
    }
    for (const name of weights.keys()) {
      if (!expected.has(name) && !name.endsWith("rotary_emb.inv_freq")) {
        throw new Error(`Llama: unexpected weight "${name}" for this config`);
      }
    }
    this.invFreq = ropeInverseFrequencies(config);
    this.ropeFor(INITIAL_ROPE_ROWS);
  }

  /** Fresh weights (see randomWeights). */
  static init(config: LlamaConfig, opts: InitOptions = {}): Llama {
    return new Llama(config, randomWeights(config, opts));
  }

  get hasValueHead(): boolean {
    return this.params.has(VALUE_HEAD);
  }

  get eosIds(): number[] {
    return eosIds(this.config);
  }

  numParams(): number {
    let n = 0;
    for (const [name, v] of this.params) if (name !== VALUE_HEAD) n += v.size;
    return n;
  }

  private w(name: string): tf.Variable {
    const v = this.params.get(name);
    if (!v) throw new Error(`Llama: no parameter "${name}"`);
    return v;
  }

  /** Adds a scalar value head (zero-initialised, so PPO starts from value 0) if absent. */
  addValueHead(): void {
    if (this.hasValueHead) return;
    this.params.set(VALUE_HEAD, tf.variable(tf.zeros([1, this.config.hidden_size]), true));
  }

  getWeights(): Map<string, HostTensor> {
    const out = new Map<string, HostTensor>();
    for (const [name, v] of this.params)
      out.set(name, { shape: [...v.shape], data: v.dataSync() as Float32Array });
    return out;
  }

  setWeights(weights: Map<string, HostTensor>): void {
    for (const [name, v] of this.params) {
      const w = weights.get(name);
      if (!w) throw new Error(`Llama.setWeights: missing weight "${name}"`);
      if (w.data.length !== v.size)
        throw new Error(`Llama.setWeights: "${name}" has ${w.data.length} values, expected ${v.size}`);
      tf.tidy(() => v.assign(tf.tensor(w.data, v.shape, "float32")));
    }
  }

  dispose(): void {
    for (const v of this.params.values()) v.dispose();
    this.params.clear();
    this.rope?.cos.dispose();
    this.rope?.sin.dispose();
    this.rope = null;
  }

  /** Rotary tables covering positions 0..n−1 at least, grown in powers of two. */
  private ropeFor(n: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
    if (this.rope && this.rope.rows >= n) return this.rope;
    const wanted = Math.max(INITIAL_ROPE_ROWS, 2 ** Math.ceil(Math.log2(n)));
    const rows = Math.min(this.config.max_position_embeddings, wanted);
    const { cos, sin } = ropeTables(this.invFreq, rows);
    const hd = headDim(this.config);
    this.rope?.cos.dispose();
    this.rope?.sin.dispose();
    this.rope = {
      cos: tf.keep(tf.tensor2d(cos, [rows, hd])),
      sin: tf.keep(tf.tensor2d(sin, [rows, hd])),
      rows,
    };
    return this.rope;
  }

  forward(ids: tf.Tensor2D, opts: ForwardOptions = {}): ForwardOutput {
    const hidden = this.hiddenStates(ids, opts);
    return { logits: this.logitsOf(hidden), hidden };
  }

  /** The final-normed hidden states [B, T, d] (or [B, 1, d] with lastOnly), before the LM head:
   * scoring picks the positions it needs first, so prompt positions never pay for the head. */
  hiddenStates(ids: tf.Tensor2D, opts: ForwardOptions = {}): tf.Tensor3D {
    const c = this.config;
    const [B, T] = ids.shape;
    const training = opts.training ?? false;
    const cache = opts.cache;
    const past = cache?.length ?? 0;
    if (cache && cache.batch !== B)
      throw new Error(`Llama.forward: cache batch ${cache.batch} != input batch ${B}`);

    const newMask = opts.attentionMask ?? Array.from({ length: B }, () => new Array<number>(T).fill(1));
    const fullMask = newMask.map((row, b) => [...(cache?.mask[b] ?? []), ...row]);
    const positions = positionsOf(fullMask, past, T);
    if (positions.some((row) => row.some((p) => p >= c.max_position_embeddings))) {
      throw new Error(`Llama.forward: position beyond max_position_embeddings ${c.max_position_embeddings}`);
    }
    // Without padding every row has the same positions and the same causal mask, so one copy
    // of each serves the whole batch (they broadcast over it).
    const unpadded = fullMask.every((row) => row.every((m) => m !== 0));
    const rows = unpadded ? 1 : B;
    const mask = tf.tensor4d(causalMask(fullMask.slice(0, rows), past, T), [rows, 1, T, past + T]);
    const posT = tf.tensor2d(positions.slice(0, rows).flat(), [rows, T], "int32");
    const rope = this.ropeFor(positions.reduce((m, row) => row.reduce((a, p) => Math.max(a, p), m), 0) + 1);
    const cos = tf.gather(rope.cos, posT).reshape([rows, 1, T, headDim(c)]) as tf.Tensor4D;
    const sin = tf.gather(rope.sin, posT).reshape([rows, 1, T, headDim(c)]) as tf.Tensor4D;
    const rng = new Rng(opts.dropoutSeed ?? 0);

    let x = this.embed(ids); // [B*T, d]
    for (let i = 0; i < c.num_hidden_layers; i++) {
      const p = `model.layers.${i}`;
      const h = rmsNorm(x, this.w(`${p}.input_layernorm.weight`), c.rms_norm_eps);
      x = x.add(this.attention(h, i, B, T, cos, sin, mask, cache, training, rng));
      const h2 = rmsNorm(x, this.w(`${p}.post_attention_layernorm.weight`), c.rms_norm_eps);
      x = x.add(this.mlp(h2, p));
    }
    if (cache) {
      cache.length += T;
      newMask.forEach((row, b) => {
        cache.mask[b].push(...row);
      });
    }

    let hidden = rmsNorm(x, this.w("model.norm.weight"), c.rms_norm_eps).reshape([
      B,
      T,
      c.hidden_size,
    ]) as tf.Tensor3D;
    if (opts.lastOnly) hidden = hidden.slice([0, T - 1, 0], [-1, 1, -1]);
    return hidden;
  }

  /** The LM head over hidden states [B, L, d] → logits [B, L, V]. */
  logitsOf(hidden: tf.Tensor3D): tf.Tensor3D {
    const c = this.config;
    const [B, L] = hidden.shape;
    const head = c.tie_word_embeddings ? this.w("model.embed_tokens.weight") : this.w("lm_head.weight");
    return tf.matMul(hidden.reshape([B * L, c.hidden_size]), head, false, true).reshape([B, L, c.vocab_size]);
  }

  /** The scalar value head over hidden states [B, T, d] → [B, T]. */
  values(hidden: tf.Tensor3D): tf.Tensor2D {
    const [B, T, d] = hidden.shape;
    return tf.matMul(hidden.reshape([B * T, d]), this.w(VALUE_HEAD), false, true).reshape([B, T]);
  }

  private embed(ids: tf.Tensor2D): tf.Tensor2D {
    return embedding(this.w("model.embed_tokens.weight") as tf.Tensor2D, ids.reshape([-1]) as tf.Tensor1D);
  }

  private attention(
    x: tf.Tensor2D,
    layer: number,
    B: number,
    T: number,
    cos: tf.Tensor4D,
    sin: tf.Tensor4D,
    mask: tf.Tensor4D,
    cache: KVCache | undefined,
    training: boolean,
    rng: Rng,
  ): tf.Tensor2D {
    const c = this.config;
    const H = c.num_attention_heads;
    const Hkv = c.num_key_value_heads;
    const hd = headDim(c);
    const p = `model.layers.${layer}.self_attn`;

    // [B·T, heads·hd] → [B, heads, T, hd], rotated by position for queries and keys
    const q = ropeHeads(linear(x, this.w(`${p}.q_proj.weight`)), cos, sin, H);
    let k = ropeHeads(linear(x, this.w(`${p}.k_proj.weight`)), cos, sin, Hkv);
    let v = linear(x, this.w(`${p}.v_proj.weight`))
      .reshape([B, T, Hkv, hd])
      .transpose([0, 2, 1, 3]) as tf.Tensor4D;
    if (cache) [k, v] = cache.write(layer, k, v);

    const dropout = training ? c.attention_dropout : 0;
    const out = attention(q, k, v, mask, { dropout, seed: dropout > 0 ? rng.nextUint32() : undefined })
      .transpose([0, 2, 1, 3])
      .reshape([B * T, H * hd]) as tf.Tensor2D;
    return linear(out, this.w(`${p}.o_proj.weight`));
  }

  private mlp(x: tf.Tensor2D, prefix: string): tf.Tensor2D {
    const gate = linear(x, this.w(`${prefix}.mlp.gate_proj.weight`));
    const up = linear(x, this.w(`${prefix}.mlp.up_proj.weight`));
    return linear(swiglu(gate, up), this.w(`${prefix}.mlp.down_proj.weight`));
  }
}

/** x [N, in] · Wᵀ with W in HF layout [out, in]. */
function linear(x: tf.Tensor2D, w: tf.Tensor): tf.Tensor2D {
  return tf.matMul(x, w as tf.Tensor2D, false, true);
}

/** Position of each new token: the number of real tokens before it in its row. */
function positionsOf(fullMask: number[][], past: number, T: number): number[][] {
  return fullMask.map((row) => {
    const out: number[] = [];
    let seen = 0;
    for (let j = 0; j < past + T; j++) {
      if (j >= past) out.push(Math.max(0, seen - (row[j] ? 0 : 1)));
      if (row[j]) seen++;
    }
    return out;
  });
}

/** Additive mask [B, 1, T, past+T]: 0 where query t may see key j (causal, key not padding). */
function causalMask(fullMask: number[][], past: number, T: number): Float32Array {
  const Tk = past + T;
  const out = new Float32Array(fullMask.length * T * Tk);
  fullMask.forEach((row, b) => {
    for (let t = 0; t < T; t++) {
      for (let j = 0; j < Tk; j++) {
        const visible = j <= past + t && row[j] !== 0;
        out[(b * T + t) * Tk + j] = visible ? 0 : -1e9;
      }
    }
  });
  return out;
}
