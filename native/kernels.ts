// tfjs kernels for the "blas" backend: the cpu backend's data layout, native loops.
//
// Each kernel handles the float32 cases the model produces and hands anything else
// (other dtypes, unusual attrs) to the cpu backend's own kernel, so the blas backend
// is never less capable than cpu. Gradients need nothing here: tfjs gradient
// functions are built from these same kernels.

import type { KernelConfig, KernelFunc, NamedAttrMap, TensorInfo } from "@tensorflow/tfjs";
import * as tf from "@tensorflow/tfjs";
import type { MathBackendCPU } from "@tensorflow/tfjs-backend-cpu";
import { FusedKernel } from "../model/fused.ts";
import { BlasBackend } from "./backend.ts";
import { Activation, BinaryOp, type BlasAddon, ReduceOp, UnaryOp } from "./index.ts";

type Args = { inputs: Record<string, TensorInfo>; backend: unknown; attrs?: NamedAttrMap };

function f32(backend: MathBackendCPU, t: TensorInfo | undefined): Float32Array | null {
  if (t?.dtype !== "float32") return null;
  const values = backend.data.get(t.dataId).values;
  return values instanceof Float32Array ? values : null;
}

/**
 * The bits of a float32 or int32 tensor as a Float32Array, for kernels that only move data
 * (slice, concat, transpose, gather), which copy int32 exactly through a float32 view.
 */
function bits(backend: MathBackendCPU, t: TensorInfo | undefined): Float32Array | null {
  if (!t || (t.dtype !== "float32" && t.dtype !== "int32")) return null;
  const values = backend.data.get(t.dataId).values;
  if (values instanceof Float32Array) return values;
  if (values instanceof Int32Array) return new Float32Array(values.buffer, values.byteOffset, values.length);
  return null;
}

/** Registers `out` (filled through a float32 view) as a tensor of the given 4-byte dtype. */
function outputAs(
  backend: MathBackendCPU,
  shape: number[],
  dtype: "float32" | "int32",
  out: Float32Array,
): TensorInfo {
  if (dtype === "float32") return backend.makeTensorInfo(shape, dtype, out);
  return backend.makeTensorInfo(shape, dtype, new Int32Array(out.buffer, out.byteOffset, out.length));
}

function size(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Output buffer for a kernel that writes every element (contents arbitrary). */
function take(backend: MathBackendCPU, n: number): Float32Array {
  if (backend instanceof BlasBackend) return backend.take(n);
  return new Float32Array(n);
}

function output(backend: MathBackendCPU, shape: number[], values: Float32Array): TensorInfo {
  return backend.makeTensorInfo(shape, "float32", values);
}

/** Row-major strides of `shape` with 0 for size-1 dims, so they broadcast. */
function broadcastStrides(shape: readonly number[], rank: number): number[] {
  const strides = new Array<number>(rank).fill(0);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    const d = rank - shape.length + i;
    strides[d] = shape[i] === 1 ? 0 : s;
    s *= shape[i];
  }
  return strides;
}

/** Broadcast result shape of a and b, or null when they do not broadcast. */
export function broadcastShape(a: readonly number[], b: readonly number[]): number[] | null {
  const rank = Math.max(a.length, b.length);
  const out = new Array<number>(rank);
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) return null;
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/**
 * Drops size-1 dims and merges neighbours that both operands walk contiguously, so
 * e.g. [8, 64, 128] + [128] becomes a 2-d loop of 512 rows x 128.
 */
export function simplifyBroadcast(
  shape: number[],
  aStrides: number[],
  bStrides: number[],
): { shape: Int32Array; a: Int32Array; b: Int32Array } {
  const s: number[] = [];
  const as: number[] = [];
  const bs: number[] = [];
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = s.length - 1;
    // merge when both operands step over dim d-1 exactly as far as all of dim d (zero strides included)
    if (last >= 0 && as[last] === aStrides[d] * shape[d] && bs[last] === bStrides[d] * shape[d]) {
      s[last] *= shape[d];
      as[last] = aStrides[d];
      bs[last] = bStrides[d];
    } else {
      s.push(shape[d]);
      as.push(aStrides[d]);
      bs.push(bStrides[d]);
    }
  }
  if (s.length === 0) {
    s.push(1);
    as.push(0);
    bs.push(0);
  }
  return { shape: Int32Array.from(s), a: Int32Array.from(as), b: Int32Array.from(bs) };
}

/** Kernel that runs `fast` and, when it returns null, the cpu backend's kernel instead. */
function withFallback(
  name: string,
  fast: (args: Args, backend: MathBackendCPU) => TensorInfo | null,
): KernelConfig {
  const cpu = tf.getKernel(name, "cpu");
  if (!cpu) throw new Error(`blas backend: the cpu backend has no ${name} kernel to fall back to`);
  const kernelFunc = ((args: Args) => {
    const backend = args.backend as MathBackendCPU;
    return fast(args, backend) ?? (cpu.kernelFunc as (a: Args) => TensorInfo | TensorInfo[])(args);
  }) as unknown as KernelFunc;
  return { kernelName: name, backendName: "blas", kernelFunc };
}

// --- matmul -----------------------------------------------------------------

function matmul(
  native: BlasAddon,
  backend: MathBackendCPU,
  a: TensorInfo,
  b: TensorInfo,
  transposeA: boolean,
  transposeB: boolean,
): { out: Float32Array; shape: number[]; n: number } | null {
  const av = f32(backend, a);
  const bv = f32(backend, b);
  if (!av || !bv || a.shape.length < 2 || b.shape.length < 2) return null;
  const ar = a.shape.length;
  const br = b.shape.length;
  const m = transposeA ? a.shape[ar - 1] : a.shape[ar - 2];
  const k = transposeA ? a.shape[ar - 2] : a.shape[ar - 1];
  const kb = transposeB ? b.shape[br - 1] : b.shape[br - 2];
  const n = transposeB ? b.shape[br - 2] : b.shape[br - 1];
  if (k !== kb) {
    throw new Error(
      `blas matMul: inner dims ${k} and ${kb} of shapes [${a.shape}] and [${b.shape}] differ ` +
        `(transposeA=${transposeA}, transposeB=${transposeB})`,
    );
  }
  const aBatchShape = a.shape.slice(0, -2);
  const bBatchShape = b.shape.slice(0, -2);
  const batchShape = broadcastShape(aBatchShape, bBatchShape);
  if (!batchShape) {
    throw new Error(`blas matMul: batch dims of [${a.shape}] and [${b.shape}] do not broadcast`);
  }
  const batch = size(batchShape);
  const rank = batchShape.length;
  const aStr = broadcastStrides(aBatchShape, rank);
  const bStr = broadcastStrides(bBatchShape, rank);
  const aOff = new Int32Array(batch);
  const bOff = new Int32Array(batch);
  const idx = new Array<number>(rank).fill(0);
  for (let i = 0; i < batch; i++) {
    let ao = 0;
    let bo = 0;
    for (let d = 0; d < rank; d++) {
      ao += idx[d] * aStr[d];
      bo += idx[d] * bStr[d];
    }
    aOff[i] = ao * m * k;
    bOff[i] = bo * k * n;
    for (let d = rank - 1; d >= 0; d--) {
      if (++idx[d] < batchShape[d]) break;
      idx[d] = 0;
    }
  }
  const out = take(backend, batch * m * n);
  native.gemm(av, bv, out, aOff, bOff, m, n, k, transposeA ? 1 : 0, transposeB ? 1 : 0);
  return { out, shape: [...batchShape, m, n], n };
}

function batchMatMul(native: BlasAddon): KernelConfig {
  return withFallback(tf.BatchMatMul, ({ inputs, attrs }, backend) => {
    const r = matmul(native, backend, inputs.a, inputs.b, !!attrs?.transposeA, !!attrs?.transposeB);
    return r && output(backend, r.shape, r.out);
  });
}

const fusedActivations: Record<string, number> = {
  linear: Activation.linear,
  relu: Activation.relu,
  relu6: Activation.relu6,
  sigmoid: Activation.sigmoid,
  leakyrelu: Activation.leakyrelu,
  elu: Activation.elu,
};

function fusedMatMul(native: BlasAddon): KernelConfig {
  return withFallback(tf._FusedMatMul, ({ inputs, attrs }, backend) => {
    const { a, b, bias, preluActivationWeights } = inputs;
    const activation = (attrs?.activation as string | undefined) ?? "linear";
    const act = fusedActivations[activation];
    if (act === undefined || preluActivationWeights) return null;
    let biasValues: Float32Array | null = null;
    if (bias) {
      biasValues = f32(backend, bias);
      const n = transposeBDim(b, !!attrs?.transposeB);
      // only a bias along the output columns fuses; other broadcasts go through cpu
      if (!biasValues || biasValues.length !== n || bias.shape[bias.shape.length - 1] !== n) return null;
    }
    const r = matmul(native, backend, a, b, !!attrs?.transposeA, !!attrs?.transposeB);
    if (!r) return null;
    const outShape = bias ? (broadcastShape(r.shape, bias.shape) ?? r.shape) : r.shape;
    if (size(outShape) !== r.out.length) return null;
    if (biasValues || act !== Activation.linear) {
      native.biasAct(r.out, biasValues, act, Number(attrs?.leakyreluAlpha ?? 0.2));
    }
    return output(backend, outShape, r.out);
  });
}

function transposeBDim(b: TensorInfo, transposeB: boolean): number {
  const r = b.shape.length;
  return transposeB ? b.shape[r - 2] : b.shape[r - 1];
}

// --- elementwise ------------------------------------------------------------

function binary(native: BlasAddon, name: string, op: number): KernelConfig {
  return withFallback(name, ({ inputs }, backend) => {
    const { a, b } = inputs;
    const av = f32(backend, a);
    const bv = f32(backend, b);
    if (!av || !bv) return null;
    const shape = broadcastShape(a.shape, b.shape);
    if (!shape) return null; // cpu kernel raises tfjs's usual error
    const out = take(backend, size(shape));
    if (out.length === 0) return output(backend, shape, out);
    const s = simplifyBroadcast(
      shape,
      broadcastStrides(a.shape, shape.length),
      broadcastStrides(b.shape, shape.length),
    );
    native.binary(op, av, bv, out, s.shape, s.a, s.b);
    return output(backend, shape, out);
  });
}

function unary(native: BlasAddon, name: string, op: number): KernelConfig {
  return withFallback(name, ({ inputs, attrs }, backend) => {
    const xv = f32(backend, inputs.x);
    if (!xv) return null;
    if (name === tf.Step && Number(attrs?.alpha ?? 0) !== 0) return null;
    const out = take(backend, xv.length);
    native.unary(op, xv, out);
    return output(backend, inputs.x.shape.slice(), out);
  });
}

function softmax(native: BlasAddon): KernelConfig {
  return withFallback(tf.Softmax, ({ inputs, attrs }, backend) => {
    const logits = inputs.logits;
    const xv = f32(backend, logits);
    const rank = logits.shape.length;
    const dim = Number(attrs?.dim ?? -1);
    if (!xv || rank === 0 || (dim !== -1 && dim !== rank - 1)) return null;
    const cols = logits.shape[rank - 1];
    const out = take(backend, xv.length);
    if (cols > 0) native.softmax(xv, out, xv.length / cols, cols);
    return output(backend, logits.shape.slice(), out);
  });
}

/** Reduction over a contiguous block of axes, as [outer, mid, inner]; other axis sets use cpu. */
function reduce(
  native: BlasAddon,
  name: string,
  op: number,
  axisAttr: "axis" | "reductionIndices",
): KernelConfig {
  return withFallback(name, ({ inputs, attrs }, backend) => {
    const x = inputs.x;
    const xv = f32(backend, x);
    if (!xv) return null;
    const rank = x.shape.length;
    const raw = attrs?.[axisAttr] as number | number[] | null | undefined;
    const list = raw == null ? [...Array(rank).keys()] : Array.isArray(raw) ? raw : [raw];
    const axes = [...new Set(list.map((a) => (a < 0 ? a + rank : a)))].sort((p, q) => p - q);
    if (axes.some((a) => a < 0 || a >= rank)) return null;
    for (let i = 1; i < axes.length; i++) if (axes[i] !== axes[i - 1] + 1) return null;
    const first = axes[0] ?? 0;
    const last = axes.length ? axes[axes.length - 1] : -1;
    const outer = size(x.shape.slice(0, first));
    const mid = size(x.shape.slice(first, last + 1));
    const inner = size(x.shape.slice(last + 1));
    const out = take(backend, outer * inner);
    if (mid === 0 && (op === ReduceOp.max || op === ReduceOp.min || op === ReduceOp.mean)) return null;
    native.reduce(op, xv, out, outer, mid, inner);
    const keep = !!attrs?.keepDims;
    const shape = x.shape.flatMap((d, i) => (axes.includes(i) ? (keep ? [1] : []) : [d]));
    return output(backend, shape, out);
  });
}

// --- copies: slice, split, concat --------------------------------------------

function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/** Copies the block `shape` between two strided views (after merging contiguous dims). */
function copyBlock(
  native: BlasAddon,
  src: Float32Array,
  srcOffset: number,
  srcStrides: number[],
  dst: Float32Array,
  dstOffset: number,
  dstStrides: number[],
  shape: number[],
): void {
  if (size(shape) === 0) return;
  const v = simplifyBroadcast(shape, srcStrides, dstStrides);
  native.strided(src, srcOffset, v.a, dst, dstOffset, v.b, v.shape);
}

function slice(native: BlasAddon): KernelConfig {
  return withFallback(tf.Slice, ({ inputs, attrs }, backend) => {
    const x = inputs.x;
    const xv = bits(backend, x);
    if (!xv || x.shape.length === 0) return null;
    const [begin, sizes] = tf.slice_util.parseSliceParams(
      x as tf.Tensor,
      attrs?.begin as number | number[],
      attrs?.size as number | number[] | undefined,
    );
    tf.slice_util.assertParamsValid(x as tf.Tensor, begin, sizes);
    const xs = contiguousStrides(x.shape);
    let offset = 0;
    for (let d = 0; d < begin.length; d++) offset += begin[d] * xs[d];
    const out = take(backend, size(sizes));
    copyBlock(native, xv, offset, xs, out, 0, contiguousStrides(sizes), sizes);
    return outputAs(backend, sizes, x.dtype as "float32" | "int32", out);
  });
}

function splitV(native: BlasAddon): KernelConfig {
  const cpu = tf.getKernel(tf.SplitV, "cpu");
  if (!cpu) throw new Error("blas backend: the cpu backend has no SplitV kernel to fall back to");
  const kernelFunc = ((args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const x = args.inputs.x;
    const xv = bits(backend, x);
    if (!xv || x.shape.length === 0) return (cpu.kernelFunc as (a: Args) => TensorInfo[])(args);
    const axis = tf.util.parseAxisParam(args.attrs?.axis as number, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(
      x as tf.Tensor,
      args.attrs?.numOrSizeSplits as number | number[],
      axis,
    );
    const xs = contiguousStrides(x.shape);
    let at = 0;
    return sizes.map((n) => {
      const shape = x.shape.slice();
      shape[axis] = n;
      const out = take(backend, size(shape));
      copyBlock(native, xv, at * xs[axis], xs, out, 0, contiguousStrides(shape), shape);
      at += n;
      return outputAs(backend, shape, x.dtype as "float32" | "int32", out);
    });
  }) as unknown as KernelFunc;
  return { kernelName: tf.SplitV, backendName: "blas", kernelFunc };
}

function concat(native: BlasAddon): KernelConfig {
  const cpu = tf.getKernel(tf.Concat, "cpu");
  if (!cpu) throw new Error("blas backend: the cpu backend has no Concat kernel to fall back to");
  const kernelFunc = ((args: { inputs: TensorInfo[]; backend: unknown; attrs?: NamedAttrMap }) => {
    const backend = args.backend as MathBackendCPU;
    const inputs = args.inputs;
    const values = inputs.map((t) => bits(backend, t));
    if (
      inputs.length === 0 ||
      values.some((v) => v === null) ||
      inputs.some((t) => t.dtype !== inputs[0].dtype) ||
      inputs[0].shape.length === 0
    ) {
      return (cpu.kernelFunc as (a: unknown) => TensorInfo)(args);
    }
    const axis = tf.util.parseAxisParam(args.attrs?.axis as number, inputs[0].shape)[0];
    tf.backend_util.assertParamsConsistent(
      inputs.map((t) => t.shape),
      axis,
    );
    const shape = tf.backend_util.computeOutShape(
      inputs.map((t) => t.shape),
      axis,
    );
    const out = take(backend, size(shape));
    const os = contiguousStrides(shape);
    let at = 0;
    inputs.forEach((t, i) => {
      copyBlock(
        native,
        values[i] as Float32Array,
        0,
        contiguousStrides(t.shape),
        out,
        at * os[axis],
        os,
        t.shape,
      );
      at += t.shape[axis];
    });
    return outputAs(backend, shape, inputs[0].dtype as "float32" | "int32", out);
  }) as unknown as KernelFunc;
  return { kernelName: tf.Concat, backendName: "blas", kernelFunc };
}

function transpose(native: BlasAddon): KernelConfig {
  return withFallback(tf.Transpose, ({ inputs, attrs }, backend) => {
    const x = inputs.x;
    const xv = bits(backend, x);
    const perm = attrs?.perm as number[] | undefined;
    if (!xv || !perm || perm.length !== x.shape.length || perm.length === 0) return null;
    const shape = perm.map((p) => x.shape[p]);
    const xs = contiguousStrides(x.shape);
    const out = take(backend, xv.length);
    // walk the output in order, reading x through permuted strides
    copyBlock(
      native,
      xv,
      0,
      perm.map((p) => xs[p]),
      out,
      0,
      contiguousStrides(shape),
      shape,
    );
    return outputAs(backend, shape, x.dtype as "float32" | "int32", out);
  });
}

function gatherV2(native: BlasAddon): KernelConfig {
  return withFallback(tf.GatherV2, ({ inputs, attrs }, backend) => {
    const { x, indices } = inputs;
    const xv = bits(backend, x);
    const iv = backend.data.get(indices.dataId).values;
    if (!xv || !(iv instanceof Int32Array) || Number(attrs?.batchDims ?? 0) !== 0 || x.shape.length === 0)
      return null;
    const axis = tf.util.parseAxisParam(attrs?.axis as number, x.shape)[0];
    const shape = [...x.shape.slice(0, axis), ...indices.shape, ...x.shape.slice(axis + 1)];
    const out = take(backend, size(shape));
    native.gather(xv, iv, out, size(x.shape.slice(0, axis)), x.shape[axis], size(x.shape.slice(axis + 1)));
    return outputAs(backend, shape, x.dtype as "float32" | "int32", out);
  });
}

function unsortedSegmentSum(native: BlasAddon): KernelConfig {
  return withFallback(tf.UnsortedSegmentSum, ({ inputs, attrs }, backend) => {
    const { x, segmentIds } = inputs;
    const xv = f32(backend, x);
    const ids = backend.data.get(segmentIds.dataId).values;
    const segments = Number(attrs?.numSegments);
    if (!xv || !(ids instanceof Int32Array) || x.shape.length < 1 || segmentIds.shape.length !== 1)
      return null;
    if (segmentIds.shape[0] !== x.shape[0] || !Number.isInteger(segments) || segments < 0) return null;
    const cols = size(x.shape.slice(1));
    const out = take(backend, segments * cols);
    native.segmentSum(xv, ids, out, x.shape[0], cols, segments);
    return output(backend, [segments, ...x.shape.slice(1)], out);
  });
}

/**
 * Cast to float32 as a real conversion. The cpu kernel casts int32 to float32 by relabelling
 * the tensor and sharing its Int32Array, which every native kernel then refuses (they read
 * float32 data only), so a one-hot mask sent whole products back to the JS kernels.
 */
function cast(): KernelConfig {
  return withFallback(tf.Cast, ({ inputs, attrs }, backend) => {
    const values = backend.data.get(inputs.x.dataId).values;
    if (attrs?.dtype !== "float32" || !(values instanceof Int32Array || values instanceof Uint8Array))
      return null;
    const out = take(backend, values.length);
    for (let i = 0; i < values.length; i++) out[i] = values[i];
    return output(backend, inputs.x.shape.slice(), out);
  });
}

function oneHot(): KernelConfig {
  return withFallback(tf.OneHot, ({ inputs, attrs }, backend) => {
    const ids = backend.data.get(inputs.indices.dataId).values;
    const depth = Number(attrs?.depth);
    const on = Number(attrs?.onValue ?? 1);
    const off = Number(attrs?.offValue ?? 0);
    const dtype = (attrs?.dtype ?? "int32") as string;
    if (!(ids instanceof Int32Array) || (dtype !== "float32" && dtype !== "int32") || !(depth > 0))
      return null;
    const out = take(backend, ids.length * depth);
    const values = dtype === "int32" ? new Int32Array(out.buffer, out.byteOffset, out.length) : out;
    values.fill(off);
    for (let i = 0; i < ids.length; i++) if (ids[i] >= 0 && ids[i] < depth) values[i * depth + ids[i]] = on;
    return outputAs(backend, [...inputs.indices.shape, depth], dtype as "float32" | "int32", out);
  });
}

// --- fused model kernels (model/fused.ts names them and holds their composite reference) ---

/** Float32 data of a fused kernel's input; these kernels have no cpu fallback. */
function need(
  backend: MathBackendCPU,
  t: TensorInfo | undefined,
  kernel: string,
  name: string,
): Float32Array {
  const v = f32(backend, t);
  if (!v) throw new Error(`${kernel}: input ${name} must be a float32 tensor`);
  return v;
}

function fused(name: string, fn: (args: Args, backend: MathBackendCPU) => TensorInfo | TensorInfo[]) {
  const kernelFunc = ((args: Args) => fn(args, args.backend as MathBackendCPU)) as unknown as KernelFunc;
  return { kernelName: name, backendName: "blas", kernelFunc };
}

function rmsNormKernels(native: BlasAddon): KernelConfig[] {
  const dims = (x: TensorInfo) => {
    const cols = x.shape[x.shape.length - 1] ?? 1;
    return { cols, rows: cols === 0 ? 0 : size(x.shape) / cols };
  };
  return [
    fused(FusedKernel.rmsNorm, ({ inputs, attrs }, backend) => {
      const k = FusedKernel.rmsNorm;
      const x = need(backend, inputs.x, k, "x");
      const w = need(backend, inputs.weight, k, "weight");
      const { rows, cols } = dims(inputs.x);
      const out = take(backend, x.length);
      native.rmsNorm(x, w, out, rows, cols, Number(attrs?.eps));
      return output(backend, inputs.x.shape.slice(), out);
    }),
    fused(FusedKernel.rmsNormGrad, ({ inputs, attrs }, backend) => {
      const k = FusedKernel.rmsNormGrad;
      const x = need(backend, inputs.x, k, "x");
      const w = need(backend, inputs.weight, k, "weight");
      const dy = need(backend, inputs.dy, k, "dy");
      const { rows, cols } = dims(inputs.x);
      const dx = take(backend, x.length);
      const dw = take(backend, w.length);
      native.rmsNormGrad(x, w, dy, dx, dw, rows, cols, Number(attrs?.eps));
      return [output(backend, inputs.x.shape.slice(), dx), output(backend, inputs.weight.shape.slice(), dw)];
    }),
  ];
}

function ropeHeads(native: BlasAddon): KernelConfig {
  return fused(FusedKernel.ropeHeads, ({ inputs, attrs }, backend) => {
    const k = FusedKernel.ropeHeads;
    const x = need(backend, inputs.x, k, "x");
    const cos = need(backend, inputs.cos, k, "cos");
    const sin = need(backend, inputs.sin, k, "sin");
    const [cosBatch, , T, hd] = inputs.cos.shape;
    const H = Number(attrs?.heads);
    const inverse = !!attrs?.inverse;
    // token-major [B, T, H, hd] strides (b, h, t) and head-major [B, H, T, hd] ones
    const B = inverse ? inputs.x.shape[0] : inputs.x.shape[0] / T;
    const tokenMajor = Int32Array.of(T * H * hd, hd, H * hd);
    const headMajor = Int32Array.of(H * T * hd, T * hd, hd);
    const out = take(backend, x.length);
    native.rope(
      x,
      cos,
      sin,
      out,
      B,
      H,
      T,
      hd,
      inverse ? headMajor : tokenMajor,
      inverse ? tokenMajor : headMajor,
      inverse ? 1 : 0,
      cosBatch,
    );
    return output(backend, inverse ? [B * T, H * hd] : [B, H, T, hd], out);
  });
}

function swigluKernels(native: BlasAddon): KernelConfig[] {
  return [
    fused(FusedKernel.swiglu, ({ inputs }, backend) => {
      const k = FusedKernel.swiglu;
      const gate = need(backend, inputs.gate, k, "gate");
      const out = take(backend, gate.length);
      native.swiglu(gate, need(backend, inputs.up, k, "up"), out);
      return output(backend, inputs.gate.shape.slice(), out);
    }),
    fused(FusedKernel.swigluGrad, ({ inputs }, backend) => {
      const k = FusedKernel.swigluGrad;
      const gate = need(backend, inputs.gate, k, "gate");
      const dGate = take(backend, gate.length);
      const dUp = take(backend, gate.length);
      native.swigluGrad(
        gate,
        need(backend, inputs.up, k, "up"),
        need(backend, inputs.dy, k, "dy"),
        dGate,
        dUp,
      );
      const shape = inputs.gate.shape;
      return [output(backend, shape.slice(), dGate), output(backend, shape.slice(), dUp)];
    }),
  ];
}

function attnSoftmax(native: BlasAddon): KernelConfig {
  return fused(FusedKernel.attnSoftmax, ({ inputs, attrs }, backend) => {
    const k = FusedKernel.attnSoftmax;
    const scores = need(backend, inputs.scores, k, "scores");
    const mask = inputs.mask ? need(backend, inputs.mask, k, "mask") : null;
    const [B, H, T, Tk] = inputs.scores.shape;
    const out = take(backend, scores.length);
    native.attnSoftmax(scores, mask, out, B, H, T, Tk, Number(attrs?.scale), inputs.mask?.shape[0] ?? 1);
    return output(backend, inputs.scores.shape.slice(), out);
  });
}

function softmaxGrad(native: BlasAddon): KernelConfig {
  return fused(FusedKernel.softmaxGrad, ({ inputs, attrs }, backend) => {
    const k = FusedKernel.softmaxGrad;
    const p = need(backend, inputs.probs, k, "probs");
    const cols = inputs.probs.shape[inputs.probs.shape.length - 1] ?? 1;
    const out = take(backend, p.length);
    native.softmaxGrad(
      p,
      need(backend, inputs.dy, k, "dy"),
      out,
      cols ? p.length / cols : 0,
      cols,
      Number(attrs?.scale),
    );
    return output(backend, inputs.probs.shape.slice(), out);
  });
}

function adamW(native: BlasAddon): KernelConfig {
  return fused(FusedKernel.adamW, ({ inputs, attrs }, backend) => {
    const k = FusedKernel.adamW;
    const p = need(backend, inputs.param, k, "param");
    const a = (name: string) => Number(attrs?.[name]);
    const outs = [take(backend, p.length), take(backend, p.length), take(backend, p.length)];
    native.adamW(
      p,
      need(backend, inputs.grad, k, "grad"),
      need(backend, inputs.m, k, "m"),
      need(backend, inputs.v, k, "v"),
      outs[0],
      outs[1],
      outs[2],
      a("lr"),
      a("beta1"),
      a("beta2"),
      a("eps"),
      a("c1"),
      a("c2"),
      a("decay"),
    );
    return outs.map((o) => output(backend, inputs.param.shape.slice(), o));
  });
}

function sumSquares(native: BlasAddon): KernelConfig {
  return fused(FusedKernel.sumSquares, ({ inputs }, backend) => {
    let total = 0;
    for (const [i, t] of Object.values(inputs).entries()) {
      total += native.sumSquares(need(backend, t, FusedKernel.sumSquares, String(i)));
    }
    return backend.makeTensorInfo([], "float32", Float32Array.of(total));
  });
}

/** Every kernel the blas backend overrides, ready for tf.registerKernel. */
export function blasKernels(native: BlasAddon): KernelConfig[] {
  return [
    batchMatMul(native),
    fusedMatMul(native),
    binary(native, tf.Add, BinaryOp.add),
    binary(native, tf.Sub, BinaryOp.sub),
    binary(native, tf.Multiply, BinaryOp.mul),
    binary(native, tf.RealDiv, BinaryOp.div),
    binary(native, tf.Maximum, BinaryOp.max),
    binary(native, tf.Minimum, BinaryOp.min),
    binary(native, tf.SquaredDifference, BinaryOp.squaredDifference),
    binary(native, tf.Pow, BinaryOp.pow),
    unary(native, tf.Exp, UnaryOp.exp),
    unary(native, tf.Log, UnaryOp.log),
    unary(native, tf.Neg, UnaryOp.neg),
    unary(native, tf.Sqrt, UnaryOp.sqrt),
    unary(native, tf.Rsqrt, UnaryOp.rsqrt),
    unary(native, tf.Square, UnaryOp.square),
    unary(native, tf.Relu, UnaryOp.relu),
    unary(native, tf.Sigmoid, UnaryOp.sigmoid),
    unary(native, tf.Tanh, UnaryOp.tanh),
    unary(native, tf.Abs, UnaryOp.abs),
    unary(native, tf.Reciprocal, UnaryOp.reciprocal),
    unary(native, tf.Step, UnaryOp.step),
    softmax(native),
    reduce(native, tf.Sum, ReduceOp.sum, "axis"),
    reduce(native, tf.Mean, ReduceOp.mean, "axis"),
    reduce(native, tf.Prod, ReduceOp.prod, "axis"),
    reduce(native, tf.Max, ReduceOp.max, "reductionIndices"),
    reduce(native, tf.Min, ReduceOp.min, "axis"),
    transpose(native),
    slice(native),
    splitV(native),
    concat(native),
    gatherV2(native),
    unsortedSegmentSum(native),
    oneHot(),
    cast(),
    ...rmsNormKernels(native),
    ropeHeads(native),
    ...swigluKernels(native),
    attnSoftmax(native),
    softmaxGrad(native),
    adamW(native),
    sumSquares(native),
  ];
}
