// The model's building blocks as single tfjs ops with closed-form gradients: the embedding
// lookup, RMSNorm, RoPE on the head split, SwiGLU, attention, the log-prob of target tokens, and
// the AdamW update.
//
// At the model's small shapes a tfjs op costs more in engine bookkeeping (tape node, tidy
// tracking, gradient closures) than in arithmetic, and autodiff of a six-op RMSNorm records
// six nodes and runs about fifteen ops backwards. Each function here is one tf.customGrad, so
// it is one tape node whose backward is the hand-derived gradient. A backend may register
// native kernels under the names in FusedKernel (the blas backend does, native/kernels.ts);
// on any other backend the same functions run as compositions of core ops, so the model
// stays backend-agnostic. The composite versions are the reference the native kernels are
// tested against (test/native/fused.test.ts).
import * as tf from "@tensorflow/tfjs";

/** Kernel names a backend registers to run these blocks natively. */
export const FusedKernel = {
  /** {x [N, d], weight [d]} {eps} → [N, d] */
  rmsNorm: "SrlmRmsNorm",
  /** {x, weight, dy} {eps} → [dx, dWeight] */
  rmsNormGrad: "SrlmRmsNormGrad",
  /** forward: {x [B·T, H·hd], cos, sin [1 or B, 1, T, hd]} {heads, inverse: false} → [B, H, T, hd];
   * inverse: {x [B, H, T, hd], cos, sin} {heads, inverse: true} → [B·T, H·hd] */
  ropeHeads: "SrlmRopeHeads",
  /** {gate, up} → gate·σ(gate)·up */
  swiglu: "SrlmSwiGlu",
  /** {gate, up, dy} → [dGate, dUp] */
  swigluGrad: "SrlmSwiGluGrad",
  /** {scores [B, H, T, Tk], mask? [1 or B, 1, T, Tk]} {scale} → softmax(scores·scale + mask) */
  attnSoftmax: "SrlmAttnSoftmax",
  /** {probs, dy} {scale} → the gradient through softmax(scale·x) with respect to x */
  softmaxGrad: "SrlmSoftmaxGrad",
  /** {param, grad, m, v} {lr, beta1, beta2, eps, c1, c2, decay} → [param', m', v'] */
  adamW: "SrlmAdamW",
  /** [t₀, t₁, …] → Σ of every element squared, a float32 scalar */
  sumSquares: "SrlmSumSquares",
} as const;

/** Whether the active backend runs `name` natively. */
export function hasKernel(name: string): boolean {
  return tf.getKernel(name, tf.getBackend()) !== undefined;
}

function run<T extends tf.Tensor | tf.Tensor[]>(
  name: string,
  inputs: Record<string, tf.Tensor>,
  attrs: Record<string, number | boolean> = {},
): T {
  return tf.engine().runKernel(name, inputs, attrs) as T;
}

type GradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[];

/** tf.customGrad over `inputs`: f gets them and `save`, and returns the value and its gradient. */
function customOp(
  inputs: tf.Tensor[],
  f: (inputs: tf.Tensor[], save: tf.GradSaveFunc) => { value: tf.Tensor; gradFunc: GradFunc },
): tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    return f(args as tf.Tensor[], save);
  });
  return op(...inputs);
}

// --- embedding -------------------------------------------------------------------

/**
 * Rows `ids` [N] of table [V, d]. The gradient adds each row of dy into the row of its id: a
 * segment sum where the backend has one, else a scatter (which sums repeated ids). Both build
 * only the [V, d] gradient itself, never a one-hot [N, V] selection, which tfjs's own gather
 * gradient needs UnsortedSegmentSum to avoid and which the wasm backend lacks.
 */
export function embedding(table: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor2D {
  const [V, d] = table.shape;
  return customOp([table], ([table], save) => {
    save([ids]);
    return {
      value: tf.gather(table, ids),
      gradFunc: (dy, [idx]) =>
        hasKernel(tf.UnsortedSegmentSum)
          ? tf.unsortedSegmentSum(dy, idx as tf.Tensor1D, V)
          : tf.scatterND(idx.expandDims(1), dy, [V, d]),
    };
  }) as tf.Tensor2D;
}

// --- RMSNorm -------------------------------------------------------------------

/** x · rsqrt(mean(x²) + eps) · w over the last axis of x [N, d]. */
export function rmsNorm(x: tf.Tensor2D, weight: tf.Tensor, eps: number): tf.Tensor2D {
  return customOp([x, weight], ([x, w], save) => {
    save([x, w]);
    const value = hasKernel(FusedKernel.rmsNorm)
      ? run<tf.Tensor>(FusedKernel.rmsNorm, { x, weight: w }, { eps })
      : x.mul(tf.rsqrt(x.square().mean(-1, true).add(eps))).mul(w);
    return { value, gradFunc: (dy, [xs, ws]) => rmsNormGrad(xs, ws, dy, eps) };
  }) as tf.Tensor2D;
}

/** With r = rsqrt(mean(x²) + eps) and g = dy·w: dx = r·g − x·r³·mean(g·x), dw = Σ_rows dy·x·r. */
function rmsNormGrad(x: tf.Tensor, w: tf.Tensor, dy: tf.Tensor, eps: number): tf.Tensor[] {
  if (hasKernel(FusedKernel.rmsNormGrad)) {
    return run<tf.Tensor[]>(FusedKernel.rmsNormGrad, { x, weight: w, dy }, { eps });
  }
  const r = tf.rsqrt(x.square().mean(-1, true).add(eps));
  const g = dy.mul(w);
  const dx = g.mul(r).sub(x.mul(r.pow(3)).mul(g.mul(x).mean(-1, true)));
  return [dx, dy.mul(x.mul(r)).sum(0)];
}

// --- RoPE on the head split ----------------------------------------------------------

/**
 * Splits token-major projections x [B·T, H·hd] into heads [B, H, T, hd] and rotates them by
 * the rotary tables cos, sin [1 or B, 1, T, hd] in HF's rotate_half convention:
 * x·cos + [−x₂, x₁]·sin over the halves of the head dimension. Its gradient is the transposed
 * rotation, x·cos + [x₂, −x₁]·sin, followed by the inverse split.
 */
export function ropeHeads(x: tf.Tensor2D, cos: tf.Tensor4D, sin: tf.Tensor4D, heads: number): tf.Tensor4D {
  return customOp([x], ([x], save) => {
    save([cos, sin]);
    return {
      value: rotate(x, cos, sin, heads, false),
      gradFunc: (dy, [c, s]) => rotate(dy, c, s, heads, true),
    };
  }) as tf.Tensor4D;
}

function rotate(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, heads: number, inverse: boolean): tf.Tensor {
  if (hasKernel(FusedKernel.ropeHeads))
    return run(FusedKernel.ropeHeads, { x, cos, sin }, { heads, inverse });
  const [, , T, hd] = cos.shape;
  const halves = (t: tf.Tensor) => tf.split(t, 2, -1);
  if (!inverse) {
    const B = x.shape[0] / T;
    const h = x.reshape([B, T, heads, hd]).transpose([0, 2, 1, 3]);
    const [h1, h2] = halves(h);
    return h.mul(cos).add(tf.concat([h2.neg(), h1], -1).mul(sin));
  }
  const [B] = x.shape;
  const [s1, s2] = halves(x.mul(sin));
  return x
    .mul(cos)
    .add(tf.concat([s2, s1.neg()], -1))
    .transpose([0, 2, 1, 3])
    .reshape([B * T, heads * hd]);
}

// --- SwiGLU ------------------------------------------------------------------------

/** silu(gate)·up = gate·σ(gate)·up, the Llama MLP's gated activation. */
export function swiglu(gate: tf.Tensor2D, up: tf.Tensor2D): tf.Tensor2D {
  return customOp([gate, up], ([gate, up], save) => {
    save([gate, up]);
    const value = hasKernel(FusedKernel.swiglu)
      ? run<tf.Tensor>(FusedKernel.swiglu, { gate, up })
      : gate.mul(tf.sigmoid(gate)).mul(up);
    return { value, gradFunc: (dy, [g, u]) => swigluGrad(g, u, dy) };
  }) as tf.Tensor2D;
}

/** With s = σ(gate): dUp = dy·gate·s, dGate = dy·up·s·(1 + gate·(1 − s)). */
function swigluGrad(gate: tf.Tensor, up: tf.Tensor, dy: tf.Tensor): tf.Tensor[] {
  if (hasKernel(FusedKernel.swigluGrad)) return run<tf.Tensor[]>(FusedKernel.swigluGrad, { gate, up, dy });
  const s = tf.sigmoid(gate);
  const dGate = dy
    .mul(up)
    .mul(s)
    .mul(gate.mul(tf.sub(1, s)).add(1));
  return [dGate, dy.mul(gate).mul(s)];
}

// --- attention -------------------------------------------------------------------

export interface AttentionOptions {
  /** Dropout on the attention probabilities (training only). */
  dropout?: number;
  seed?: number;
}

/**
 * softmax(q·kᵀ/√hd + mask)·v for queries q [B, H, T, hd] and keys, values [B, Hkv, Tk, hd];
 * mask is additive, [1 or B, 1, T, Tk]. Grouped-query attention without copying keys: query
 * heads h = kv·group + j share kv head `kv`, so q viewed as [B, Hkv, group·T, hd] lines each
 * group up with its keys. One tape node; the backward pass is four matmuls and a softmax
 * gradient, against about twenty recorded ops for the same graph under autodiff.
 */
export function attention(
  q: tf.Tensor4D,
  k: tf.Tensor4D,
  v: tf.Tensor4D,
  mask: tf.Tensor4D,
  opts: AttentionOptions = {},
): tf.Tensor4D {
  const [B, H, T, hd] = q.shape;
  const [, Hkv, Tk] = k.shape;
  const group = H / Hkv;
  const scale = 1 / Math.sqrt(hd);
  const rate = opts.dropout ?? 0;
  return customOp([q, k, v], ([q, k, v], save) => {
    const qg = q.reshape([B, Hkv, group * T, hd]);
    const scores = tf.matMul(qg, k, false, true).reshape([B, H, T, Tk]);
    const probs = maskedSoftmax(scores, mask, scale);
    // the kept-and-rescaled pattern, so the backward pass drops exactly what the forward did
    const keep = rate > 0 ? tf.dropout(tf.onesLike(probs), rate, undefined, opts.seed) : null;
    const used = keep ? probs.mul(keep) : probs;
    const value = tf.matMul(used.reshape([B, Hkv, group * T, Tk]), v).reshape([B, H, T, hd]);
    save(keep ? [qg, k, v, probs, used, keep] : [qg, k, v, probs]);
    return {
      value,
      gradFunc: (dy, saved) => {
        const [qs, ks, vs, p] = saved;
        const pUsed = (saved[4] ?? p).reshape([B, Hkv, group * T, Tk]);
        const dyg = dy.reshape([B, Hkv, group * T, hd]);
        const dv = tf.matMul(pUsed, dyg, true, false);
        let dp = tf.matMul(dyg, vs, false, true);
        if (saved[5]) dp = dp.mul(saved[5].reshape(dp.shape));
        const ds = softmaxGrad(p, dp.reshape(p.shape), scale).reshape([B, Hkv, group * T, Tk]);
        const dq = tf.matMul(ds, ks).reshape([B, H, T, hd]);
        const dk = tf.matMul(ds, qs, true, false);
        return [dq, dk, dv];
      },
    };
  }) as tf.Tensor4D;
}

/** softmax(scores·scale + mask) over the last axis. */
function maskedSoftmax(scores: tf.Tensor, mask: tf.Tensor, scale: number): tf.Tensor {
  if (hasKernel(FusedKernel.attnSoftmax)) return run(FusedKernel.attnSoftmax, { scores, mask }, { scale });
  return tf.softmax(scores.mul(scale).add(mask), -1);
}

/** Gradient through y = softmax(scale·x) given y = probs: scale·y·(dy − Σ dy·y). */
function softmaxGrad(probs: tf.Tensor, dy: tf.Tensor, scale: number): tf.Tensor {
  if (hasKernel(FusedKernel.softmaxGrad)) return run(FusedKernel.softmaxGrad, { probs, dy }, { scale });
  return probs.mul(dy.sub(dy.mul(probs).sum(-1, true))).mul(scale);
}

// --- target log-probs -------------------------------------------------------------

/**
 * log softmax(logits)[target] for each row of logits [N, V] and its target id in targets [N]:
 * the target's logit minus the row's log-sum-exp. Only the N picked values are gathered, so no
 * one-hot [N, V] mask or full log-softmax is built besides the logits themselves (at a 128k
 * vocabulary each of those is as large as the logits). Gradient: dy·(onehot − softmax), formed
 * as −dy·softmax with dy scattered into the target columns.
 */
export function targetLogProbs(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Tensor1D {
  const [N, V] = logits.shape;
  // gatherND rather than gather with batchDims: the wasm backend's batched gather is wrong.
  const at = tf.stack([tf.range(0, N, 1, "int32"), targets.cast("int32")], 1) as tf.Tensor2D;
  return customOp([logits], ([x], save) => {
    const lse = tf.logSumExp(x, -1, true);
    save([x, lse, at]);
    return {
      value: tf.gatherND(x, at).sub(lse.reshape([N])),
      gradFunc: (dy, [xs, l, idx]) => {
        const softmax = tf.exp(xs.sub(l));
        return tf.scatterND(idx, dy, [N, V]).sub(softmax.mul(dy.reshape([N, 1])));
      },
    };
  }) as tf.Tensor1D;
}

// --- optimizer ----------------------------------------------------------------------

/** Σ of x² over every element of every tensor: the squared global norm of a set of gradients. */
export function sumOfSquares(tensors: tf.Tensor[]): tf.Scalar {
  if (hasKernel(FusedKernel.sumSquares)) {
    // an array of inputs, as tfjs passes them to AddN and Concat
    return tf
      .engine()
      .runKernel(FusedKernel.sumSquares, tensors as unknown as tf.NamedTensorMap) as tf.Scalar;
  }
  return tf.addN(tensors.map((t) => t.square().sum())) as tf.Scalar;
}

// --- AdamW ------------------------------------------------------------------------

export interface AdamWStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  /** Bias corrections 1 − β₁ᵗ and 1 − β₂ᵗ. */
  c1: number;
  c2: number;
  /** Decoupled weight decay factor 1 − lr·wd (1 for none). */
  decay: number;
}

/** One AdamW update: returns [param', m', v'] (the caller assigns them). */
export function adamWUpdate(
  param: tf.Tensor,
  grad: tf.Tensor,
  m: tf.Tensor,
  v: tf.Tensor,
  s: AdamWStep,
): [tf.Tensor, tf.Tensor, tf.Tensor] {
  if (hasKernel(FusedKernel.adamW)) {
    const attrs = { ...s };
    return run<tf.Tensor[]>(FusedKernel.adamW, { param, grad, m, v }, attrs) as [
      tf.Tensor,
      tf.Tensor,
      tf.Tensor,
    ];
  }
  const m1 = m.mul(s.beta1).add(grad.mul(1 - s.beta1));
  const v1 = v.mul(s.beta2).add(grad.square().mul(1 - s.beta2));
  const step = m1.div(s.c1).div(v1.div(s.c2).sqrt().add(s.eps)).mul(s.lr);
  return [s.decay === 1 ? param.sub(step) : param.mul(s.decay).sub(step), m1, v1];
}
