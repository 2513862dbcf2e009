// AdamW with decoupled weight decay (Loshchilov & Hutter), global gradient-norm clipping and
// learning-rate schedules.
import * as tf from "@tensorflow/tfjs";
import { adamWUpdate, sumOfSquares } from "./fused.ts";
import type { HostTensor } from "./llama.ts";

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Parameters exempt from weight decay; default: 1-D ones (norm gains). */
  noDecay?: (name: string, shape: readonly number[]) => boolean;
}

export class AdamW {
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();
  /** Updates applied so far (bias correction uses it). */
  t = 0;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;
  private readonly noDecay: (name: string, shape: readonly number[]) => boolean;

  constructor(
    private readonly params: Map<string, tf.Variable>,
    opts: AdamWOptions = {},
  ) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.noDecay = opts.noDecay ?? ((_name, shape) => shape.length < 2);
  }

  private moments(name: string, p: tf.Variable): [tf.Variable, tf.Variable] {
    let m = this.m.get(name);
    let v = this.v.get(name);
    if (!m || !v) {
      m = tf.variable(tf.zerosLike(p), false);
      v = tf.variable(tf.zerosLike(p), false);
      this.m.set(name, m);
      this.v.set(name, v);
    }
    return [m, v];
  }

  /** One update; parameters without a gradient (not on the loss path) are left untouched. */
  apply(grads: Map<string, tf.Tensor>, lr: number): void {
    this.t += 1;
    const c1 = 1 - this.beta1 ** this.t;
    const c2 = 1 - this.beta2 ** this.t;
    for (const [name, g] of grads) {
      const p = this.params.get(name);
      if (!p) throw new Error(`AdamW: gradient for unknown parameter "${name}"`);
      const [m, v] = this.moments(name, p);
      const decay = this.weightDecay > 0 && !this.noDecay(name, p.shape) ? 1 - lr * this.weightDecay : 1;
      const step = { lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, c1, c2, decay };
      tf.tidy(() => {
        const [p1, m1, v1] = adamWUpdate(p, g, m, v, step);
        m.assign(m1);
        v.assign(v1);
        p.assign(p1);
      });
    }
  }

  state(): Map<string, HostTensor> {
    const out = new Map<string, HostTensor>();
    for (const [name, m] of this.m) {
      out.set(`exp_avg.${name}`, { shape: [...m.shape], data: m.dataSync() as Float32Array });
      const v = this.v.get(name)!;
      out.set(`exp_avg_sq.${name}`, { shape: [...v.shape], data: v.dataSync() as Float32Array });
    }
    return out;
  }

  loadState(tensors: Map<string, HostTensor>, t: number): void {
    this.t = t;
    for (const [key, host] of tensors) {
      const dot = key.indexOf(".");
      const kind = key.slice(0, dot);
      const name = key.slice(dot + 1);
      const p = this.params.get(name);
      if (!p || (kind !== "exp_avg" && kind !== "exp_avg_sq")) continue;
      const [m, v] = this.moments(name, p);
      const target = kind === "exp_avg" ? m : v;
      if (host.data.length !== target.size) throw new Error(`AdamW.loadState: "${key}" has the wrong size`);
      tf.tidy(() => target.assign(tf.tensor(host.data, target.shape, "float32")));
    }
  }

  dispose(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
    this.m.clear();
    this.v.clear();
  }
}

/** Scales all gradients together so their global L2 norm is at most maxNorm; returns the norm before. */
export function clipByGlobalNorm(
  grads: Map<string, tf.Tensor>,
  maxNorm: number,
): { grads: Map<string, tf.Tensor>; norm: number } {
  const norm = Math.sqrt(tf.tidy(() => sumOfSquares([...grads.values()]).dataSync()[0]));
  if (!(maxNorm > 0) || norm <= maxNorm || !Number.isFinite(norm)) return { grads, norm };
  const scale = maxNorm / (norm + 1e-6);
  const clipped = new Map<string, tf.Tensor>();
  for (const [name, g] of grads) {
    clipped.set(name, g.mul(scale));
    g.dispose();
  }
  return { grads: clipped, norm };
}

export interface Schedule {
  kind: "constant" | "linear" | "cosine";
  peak: number;
  warmupSteps?: number;
  /** Steps over which linear/cosine decay to minLr; needed by both. */
  totalSteps?: number;
  minLr?: number;
}

/** Learning rate for 0-based `step`: linear warmup to peak, then the decay of `kind`. */
export function learningRate(step: number, s: Schedule): number {
  const warmup = s.warmupSteps ?? 0;
  if (step < warmup) return (s.peak * (step + 1)) / warmup;
  if (s.kind === "constant") return s.peak;
  const total = s.totalSteps;
  if (!total || total <= warmup)
    throw new Error(`learningRate: ${s.kind} schedule needs totalSteps > warmupSteps`);
  const minLr = s.minLr ?? 0;
  const progress = Math.min(1, (step - warmup) / (total - warmup));
  const factor = s.kind === "linear" ? 1 - progress : 0.5 * (1 + Math.cos(Math.PI * progress));
  return minLr + (s.peak - minLr) * factor;
}
