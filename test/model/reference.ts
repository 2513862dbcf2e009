// An independent float64 Llama forward in plain JS, written from the HF LlamaForCausalLM
// definition, to check the tfjs model's logits and checkpoint layout against.

export interface RefConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  rms_norm_eps: number;
  rope_theta: number;
  vocab_size: number;
  tie_word_embeddings: boolean;
  head_dim?: number | null;
  rope_scaling?: {
    rope_type?: string;
    factor?: number;
    low_freq_factor?: number;
    high_freq_factor?: number;
    original_max_position_embeddings?: number;
  } | null;
}

export type RefWeights = Map<string, { shape: number[]; data: ArrayLike<number> }>;

/** y = W x for W stored [out, in] row-major. */
function matvec(w: { shape: number[]; data: ArrayLike<number> }, x: number[]): number[] {
  const [out, inn] = w.shape;
  const y = new Array<number>(out).fill(0);
  for (let i = 0; i < out; i++) {
    let s = 0;
    for (let j = 0; j < inn; j++) s += w.data[i * inn + j] * x[j];
    y[i] = s;
  }
  return y;
}

function rmsnorm(x: number[], w: ArrayLike<number>, eps: number): number[] {
  const ms = x.reduce((a, v) => a + v * v, 0) / x.length;
  const r = 1 / Math.sqrt(ms + eps);
  return x.map((v, i) => v * r * w[i]);
}

/** Frequency of dimension pair i, with Llama 3.1's rescaling written from its paper's recipe:
 * long wavelengths slowed by `factor`, short ones kept, a linear blend in wavelength-ratio between. */
function frequency(i: number, d: number, cfg: RefConfig): number {
  const base = 1 / cfg.rope_theta ** ((2 * i) / d);
  const s = cfg.rope_scaling;
  if (s?.rope_type !== "llama3") return base;
  const ratio = s.original_max_position_embeddings! / ((2 * Math.PI) / base);
  if (ratio > s.high_freq_factor!) return base;
  if (ratio < s.low_freq_factor!) return base / s.factor!;
  const t = (ratio - s.low_freq_factor!) / (s.high_freq_factor! - s.low_freq_factor!);
  return (1 - t) * (base / s.factor!) + t * base;
}

/** rotate_half RoPE on one head vector at position p. */
function rope(v: number[], p: number, cfg: RefConfig): number[] {
  const d = v.length;
  const half = d / 2;
  const out = new Array<number>(d);
  for (let i = 0; i < half; i++) {
    const angle = p * frequency(i, d, cfg);
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    out[i] = v[i] * c - v[i + half] * s;
    out[i + half] = v[i + half] * c + v[i] * s;
  }
  return out;
}

/** Logits [T][V] for one unpadded sequence. */
export function referenceLogits(cfg: RefConfig, w: RefWeights, ids: number[]): number[][] {
  const get = (name: string) => {
    const t = w.get(name);
    if (!t) throw new Error(`reference: missing ${name}`);
    return t;
  };
  const d = cfg.hidden_size;
  const H = cfg.num_attention_heads;
  const Hkv = cfg.num_key_value_heads;
  const hd = cfg.head_dim ?? d / H;
  const emb = get("model.embed_tokens.weight");
  let xs = ids.map((id) => Array.from({ length: d }, (_, j) => emb.data[id * d + j]));
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}`;
    const hs = xs.map((x) => rmsnorm(x, get(`${p}.input_layernorm.weight`).data, cfg.rms_norm_eps));
    const qs = hs.map((h) => matvec(get(`${p}.self_attn.q_proj.weight`), h));
    const ks = hs.map((h) => matvec(get(`${p}.self_attn.k_proj.weight`), h));
    const vs = hs.map((h) => matvec(get(`${p}.self_attn.v_proj.weight`), h));
    const head = (v: number[], h: number) => v.slice(h * hd, (h + 1) * hd);
    const attnOut = xs.map((_, t) => {
      const concat: number[] = [];
      for (let h = 0; h < H; h++) {
        const kvh = Math.floor(h / (H / Hkv));
        const q = rope(head(qs[t], h), t, cfg);
        const scores: number[] = [];
        for (let j = 0; j <= t; j++) {
          const k = rope(head(ks[j], kvh), j, cfg);
          scores.push(q.reduce((a, qi, i) => a + qi * k[i], 0) / Math.sqrt(hd));
        }
        const m = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b, 0);
        const o = new Array<number>(hd).fill(0);
        for (let j = 0; j <= t; j++) {
          const v = head(vs[j], kvh);
          for (let i = 0; i < hd; i++) o[i] += (e[j] / z) * v[i];
        }
        concat.push(...o);
      }
      return matvec(get(`${p}.self_attn.o_proj.weight`), concat);
    });
    xs = xs.map((x, t) => x.map((v, i) => v + attnOut[t][i]));
    xs = xs.map((x) => {
      const h = rmsnorm(x, get(`${p}.post_attention_layernorm.weight`).data, cfg.rms_norm_eps);
      const g = matvec(get(`${p}.mlp.gate_proj.weight`), h);
      const u = matvec(get(`${p}.mlp.up_proj.weight`), h);
      const a = g.map((gi, i) => (gi / (1 + Math.exp(-gi))) * u[i]);
      const down = matvec(get(`${p}.mlp.down_proj.weight`), a);
      return x.map((v, i) => v + down[i]);
    });
  }
  const head = get(cfg.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
  return xs.map((x) => matvec(head, rmsnorm(x, get("model.norm.weight").data, cfg.rms_norm_eps)));
}
