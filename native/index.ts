// Typed loader for the OpenBLAS addon built by native/build.mjs.
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/** Binary ops understood by `binary` (the number is the addon's op code). */
export const BinaryOp = {
  add: 0,
  sub: 1,
  mul: 2,
  div: 3,
  max: 4,
  min: 5,
  squaredDifference: 6,
  pow: 7,
} as const;

/** Unary ops understood by `unary`. */
export const UnaryOp = {
  exp: 0,
  log: 1,
  neg: 2,
  sqrt: 3,
  rsqrt: 4,
  square: 5,
  relu: 6,
  sigmoid: 7,
  tanh: 8,
  abs: 9,
  reciprocal: 10,
  step: 11,
} as const;

/** Reductions understood by `reduce`. */
export const ReduceOp = { sum: 0, max: 1, min: 2, mean: 3, prod: 4 } as const;

/** Activations fused after a matmul by `biasAct`. */
export const Activation = { linear: 0, relu: 1, relu6: 2, sigmoid: 3, leakyrelu: 4, elu: 5 } as const;

/**
 * The addon's functions. All write into `out` (caller-allocated); none allocate or copy inputs.
 * Invalid arguments throw a TypeError starting with "srlm_blas:".
 */
export interface BlasAddon {
  /** out[i] = op(a[aOffsets[i]..]) x op(b[bOffsets[i]..]) for each batch i; each result is m x n row-major. */
  gemm(
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    aOffsets: Int32Array,
    bOffsets: Int32Array,
    m: number,
    n: number,
    k: number,
    transposeA: number,
    transposeB: number,
  ): void;
  /** In place: x[r, c] = act(x[r, c] + bias[c]), bias may be null. */
  biasAct(x: Float32Array, bias: Float32Array | null, activation: number, alpha: number): void;
  /** out[idx] = op(a[idx . aStrides], b[idx . bStrides]) over `shape` (broadcast dims have stride 0). */
  binary(
    op: number,
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    shape: Int32Array,
    aStrides: Int32Array,
    bStrides: Int32Array,
  ): void;
  unary(op: number, x: Float32Array, out: Float32Array): void;
  /** Softmax over each contiguous row of `cols` values. */
  softmax(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  /** x viewed as [outer, mid, inner], reduced over mid into out [outer, inner]. */
  reduce(op: number, x: Float32Array, out: Float32Array, outer: number, mid: number, inner: number): void;
  /** dst[dstOffset + idx . dstStrides] = src[srcOffset + idx . srcStrides] for every idx in `shape`. */
  strided(
    src: Float32Array,
    srcOffset: number,
    srcStrides: Int32Array,
    dst: Float32Array,
    dstOffset: number,
    dstStrides: Int32Array,
    shape: Int32Array,
  ): void;
  /** params as [outer, dim, inner]; out[o, j, :] = params[o, indices[j], :]. Throws on an index out of range. */
  gather(
    params: Float32Array,
    indices: Int32Array,
    out: Float32Array,
    outer: number,
    dim: number,
    inner: number,
  ): void;
  /** out = x · rsqrt(mean over each row of x² + eps) · w, for x [rows, cols] and w [cols]. */
  rmsNorm(x: Float32Array, w: Float32Array, out: Float32Array, rows: number, cols: number, eps: number): void;
  /** Gradients of rmsNorm for dy: dx [rows, cols] and dw [cols]. */
  rmsNormGrad(
    x: Float32Array,
    w: Float32Array,
    dy: Float32Array,
    dx: Float32Array,
    dw: Float32Array,
    rows: number,
    cols: number,
    eps: number,
  ): void;
  /**
   * Rotary embedding (HF rotate_half) over [B, H, T, hd] read and written through (b, h, t)
   * strides; cos and sin are [cosBatch, T, hd] with cosBatch 1 or B. `inverse` applies the
   * transpose rotation (the gradient).
   */
  rope(
    x: Float32Array,
    cos: Float32Array,
    sin: Float32Array,
    out: Float32Array,
    b: number,
    h: number,
    t: number,
    hd: number,
    inStrides: Int32Array,
    outStrides: Int32Array,
    inverse: number,
    cosBatch: number,
  ): void;
  /** out = gate · sigmoid(gate) · up. */
  swiglu(gate: Float32Array, up: Float32Array, out: Float32Array): void;
  /** Gradients of swiglu for dy into dGate and dUp. */
  swigluGrad(
    gate: Float32Array,
    up: Float32Array,
    dy: Float32Array,
    dGate: Float32Array,
    dUp: Float32Array,
  ): void;
  /** Row softmax of scores [B, H, T, Tk] · scale + mask [maskBatch, 1, T, Tk] (mask may be null). */
  attnSoftmax(
    scores: Float32Array,
    mask: Float32Array | null,
    out: Float32Array,
    b: number,
    h: number,
    t: number,
    tk: number,
    scale: number,
    maskBatch: number,
  ): void;
  /** out = scale · p · (dp − Σ_row dp·p): the gradient through softmax(scale · x). */
  softmaxGrad(
    p: Float32Array,
    dp: Float32Array,
    out: Float32Array,
    rows: number,
    cols: number,
    scale: number,
  ): void;
  /** One AdamW update of p with gradient g and moments m, v into pOut, mOut, vOut. */
  adamW(
    p: Float32Array,
    g: Float32Array,
    m: Float32Array,
    v: Float32Array,
    pOut: Float32Array,
    mOut: Float32Array,
    vOut: Float32Array,
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    c1: number,
    c2: number,
    decay: number,
  ): void;
  /** Σ x² over the array, accumulated in double. */
  sumSquares(x: Float32Array): number;
  /** out [segments, cols] = Σ of the rows of x [rows, cols] by ids[row]; ids out of range are dropped. */
  segmentSum(
    x: Float32Array,
    ids: Int32Array,
    out: Float32Array,
    rows: number,
    cols: number,
    segments: number,
  ): void;
  /** glibc only: keeps tensor-sized blocks on the heap instead of fresh mmaps; false elsewhere. */
  tuneAllocator(): boolean;
  /** Sets OpenBLAS's thread count when given; returns the count in use. */
  threads(n?: number): number;
  /** OpenBLAS build description, e.g. "OpenBLAS 0.3.21 ... Zen MAX_THREADS=64". */
  config: string;
}

/** Where native/build.mjs puts the addon, relative to the repository. */
export const addonRelativePath = "native/build/Release/srlm_blas.node";

const addonFile = fileURLToPath(new URL("./build/Release/srlm_blas.node", import.meta.url));

let cached: { ok: true; addon: BlasAddon } | { ok: false; reason: string } | undefined;

/** Loads the addon once; never throws. */
export function loadBlasAddon(): { ok: true; addon: BlasAddon } | { ok: false; reason: string } {
  if (cached) return cached;
  if (!existsSync(addonFile)) {
    cached = {
      ok: false,
      reason: `${addonRelativePath} not found: run npm install with g++ and libopenblas-dev`,
    };
    return cached;
  }
  try {
    const addon = createRequire(import.meta.url)(addonFile) as BlasAddon;
    cached = { ok: true, addon };
  } catch (err) {
    cached = { ok: false, reason: `${addonRelativePath} failed to load: ${(err as Error).message}` };
  }
  return cached;
}
