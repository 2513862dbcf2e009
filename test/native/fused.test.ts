// The fused blocks of model/fused.ts: their hand-written gradients against autodiff of the plain
// graph they replace (on cpu, which runs the composite versions), and the blas backend's native
// kernels against that same plain graph on random inputs of several shapes.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { registerBlasBackend } from "../../model/backends/blas.ts";
import {
  adamWUpdate,
  attention,
  FusedKernel,
  hasKernel,
  rmsNorm,
  ropeHeads,
  sumOfSquares,
  swiglu,
} from "../../model/fused.ts";
import { assertClose, type Build, type Host, random, runOn } from "./helpers.ts";

const registered = await registerBlasBackend();
const skip = registered.ok ? false : registered.reason;

/** f's value and its gradients for a fixed random cotangent, so no two outputs can cancel. */
function valueAndGrads(f: (...xs: tf.Tensor[]) => tf.Tensor, n: number): Build {
  return (...inputs) => {
    const xs = inputs.slice(0, n);
    const weights = inputs[n];
    const loss = (...args: tf.Tensor[]) =>
      f(...args)
        .mul(weights)
        .sum();
    return [f(...xs), ...tf.grads(loss)(xs)];
  };
}

// The plain graphs the fused blocks replace, as model/llama.ts wrote them before.

function plainRmsNorm(x: tf.Tensor, w: tf.Tensor, eps: number): tf.Tensor {
  return x.mul(tf.rsqrt(x.square().mean(-1, true).add(eps))).mul(w);
}

function plainRopeHeads(x: tf.Tensor, cos: tf.Tensor, sin: tf.Tensor, heads: number): tf.Tensor {
  const [, , T, hd] = cos.shape;
  const h = x.reshape([x.shape[0] / T, T, heads, hd]).transpose([0, 2, 1, 3]);
  const [h1, h2] = tf.split(h, 2, -1);
  return h.mul(cos).add(tf.concat([h2.neg(), h1], -1).mul(sin));
}

function plainAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, mask: tf.Tensor): tf.Tensor {
  const [B, H, T, hd] = q.shape;
  const [, Hkv, Tk] = k.shape;
  const group = H / Hkv;
  const scores = tf
    .matMul(q.reshape([B, Hkv, group * T, hd]), k, false, true)
    .mul(1 / Math.sqrt(hd))
    .reshape([B, H, T, Tk])
    .add(mask);
  const probs = tf.softmax(scores, -1);
  return tf.matMul(probs.reshape([B, Hkv, group * T, Tk]), v).reshape([B, H, T, hd]);
}

/** Additive mask [rows, 1, T, Tk]: causal over the last T of Tk keys, plus a padded first key in row 1. */
function maskHost(rows: number, T: number, Tk: number): Host {
  const data = new Float32Array(rows * T * Tk);
  for (let b = 0; b < rows; b++)
    for (let t = 0; t < T; t++)
      for (let j = 0; j < Tk; j++) {
        const visible = j <= Tk - T + t && !(b === 1 && j === 0 && t > 0);
        data[(b * T + t) * Tk + j] = visible ? 0 : -1e9;
      }
  return { shape: [rows, 1, T, Tk], data };
}

/** Checks the fused block against the plain graph on cpu (composite) and on blas (native). */
async function fusedMatchesPlain(
  what: string,
  inputs: Host[],
  n: number,
  fused: (...xs: tf.Tensor[]) => tf.Tensor,
  plain: (...xs: tf.Tensor[]) => tf.Tensor,
  tol = 1e-5,
): Promise<void> {
  const expected = await runOn("cpu", inputs, valueAndGrads(plain, n));
  assertClose(await runOn("cpu", inputs, valueAndGrads(fused, n)), expected, `${what} (cpu, composite)`, tol);
  if (!registered.ok) return;
  assertClose(await runOn("blas", inputs, valueAndGrads(fused, n)), expected, `${what} (blas, native)`, tol);
}

test("the blas backend runs every fused block natively; cpu runs none", { skip }, async () => {
  for (const name of Object.values(FusedKernel)) {
    await tf.setBackend("blas");
    assert.ok(hasKernel(name), `blas lacks ${name}`);
    await tf.setBackend("cpu");
    assert.ok(!hasKernel(name), `cpu should not have ${name}`);
  }
});

test("rmsNorm: value and gradients match the plain graph", async () => {
  for (const [rows, cols] of [
    [1, 1],
    [3, 8],
    [37, 128],
    [600, 256],
  ]) {
    const inputs = [random([rows, cols], 1, -2, 2), random([cols], 2, 0.5, 1.5), random([rows, cols], 3)];
    await fusedMatchesPlain(
      `rmsNorm [${rows}, ${cols}]`,
      inputs,
      2,
      (x, w) => rmsNorm(x as tf.Tensor2D, w, 1e-5),
      (x, w) => plainRmsNorm(x, w, 1e-5),
    );
  }
});

test("ropeHeads: value and gradients match split-transpose-rotate", async () => {
  // [B, T, heads, hd, rows of the rotary tables (1 = shared by the batch)]
  for (const [B, T, H, hd, rows] of [
    [1, 1, 1, 2, 1],
    [2, 5, 3, 8, 2],
    [3, 7, 2, 4, 1],
    [8, 64, 4, 32, 1],
  ]) {
    const angles = random([rows, 1, T, hd], 4, -3, 3);
    // rotate_half tables: both halves share their frequencies, as model/llama.ts builds them
    for (let i = 0; i < angles.data.length; i++) {
      if (i % hd >= hd / 2) angles.data[i] = angles.data[i - hd / 2];
    }
    const cos = { shape: angles.shape, data: angles.data.map(Math.cos) };
    const sin = { shape: angles.shape, data: angles.data.map(Math.sin) };
    const inputs = [random([B * T, H * hd], 5), cos, sin, random([B, H, T, hd], 6)];
    await fusedMatchesPlain(
      `ropeHeads B=${B} T=${T} H=${H} hd=${hd} tables=${rows}`,
      [inputs[0], inputs[3]],
      1,
      (x) => tf.tidy(() => ropeHeads(x as tf.Tensor2D, tensor4(cos), tensor4(sin), H)),
      (x) => plainRopeHeads(x, tensor4(cos), tensor4(sin), H),
    );
  }
});

function tensor4(h: Host): tf.Tensor4D {
  return tf.tensor4d(h.data, h.shape as [number, number, number, number]);
}

test("swiglu: value and gradients match gate·σ(gate)·up", async () => {
  for (const shape of [
    [1, 1],
    [5, 7],
    [512, 352],
  ]) {
    const inputs = [random(shape, 7, -6, 6), random(shape, 8), random(shape, 9)];
    await fusedMatchesPlain(
      `swiglu [${shape}]`,
      inputs,
      2,
      (g, u) => swiglu(g as tf.Tensor2D, u as tf.Tensor2D),
      (g, u) => g.mul(tf.sigmoid(g)).mul(u),
    );
  }
});

test("attention: value and gradients match the plain graph (GQA, cache-shaped keys, padding)", async () => {
  // [B, H, Hkv, T, Tk, hd, mask rows]
  for (const [B, H, Hkv, T, Tk, hd, rows] of [
    [1, 1, 1, 1, 1, 2, 1],
    [2, 4, 2, 5, 5, 8, 2],
    [2, 4, 4, 3, 7, 4, 1],
    [3, 6, 2, 4, 9, 4, 3],
    [8, 4, 4, 64, 64, 32, 1],
  ]) {
    const mask = maskHost(rows, T, Tk);
    const inputs = [
      random([B, H, T, hd], 10, -2, 2),
      random([B, Hkv, Tk, hd], 11, -2, 2),
      random([B, Hkv, Tk, hd], 12),
      random([B, H, T, hd], 13),
    ];
    await fusedMatchesPlain(
      `attention B=${B} H=${H} Hkv=${Hkv} T=${T} Tk=${Tk} hd=${hd} mask rows=${rows}`,
      inputs,
      3,
      (q, k, v) => attention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, tensor4(mask)),
      (q, k, v) => plainAttention(q, k, v, tensor4(mask)),
      1e-4,
    );
  }
});

test("attention with dropout drops the same probabilities as tf.dropout, forwards and backwards", async () => {
  const [B, H, T, hd] = [2, 2, 6, 4];
  const mask = maskHost(1, T, T);
  const inputs = [
    random([B, H, T, hd], 14, -2, 2),
    random([B, H, T, hd], 15, -2, 2),
    random([B, H, T, hd], 16),
    random([B, H, T, hd], 17),
  ];
  const seed = 1234;
  await fusedMatchesPlain(
    "attention with dropout 0.3",
    inputs,
    3,
    (q, k, v) =>
      attention(q as tf.Tensor4D, k as tf.Tensor4D, v as tf.Tensor4D, tensor4(mask), { dropout: 0.3, seed }),
    (q, k, v) => {
      const scores = tf
        .matMul(q, k, false, true)
        .mul(1 / Math.sqrt(hd))
        .add(tensor4(mask));
      return tf.matMul(tf.dropout(tf.softmax(scores, -1), 0.3, undefined, seed), v);
    },
    1e-4,
  );
});

test("adamWUpdate: the native kernel matches the composite update", { skip }, async () => {
  for (const [shape, decay] of [
    [[7], 1],
    [[128, 352], 0.999],
    [[300, 500], 0.99],
  ] as [number[], number][]) {
    const inputs = [random(shape, 18), random(shape, 19, -1e-3, 1e-3), random(shape, 20, -1e-3, 1e-3)];
    inputs.push(random(shape, 21, 0, 1e-6));
    const step = {
      lr: 1e-3,
      beta1: 0.9,
      beta2: 0.999,
      eps: 1e-8,
      c1: 1 - 0.9 ** 3,
      c2: 1 - 0.999 ** 3,
      decay,
    };
    const build = (p: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor) => adamWUpdate(p, g, m, v, step);
    const expected = await runOn("cpu", inputs, build);
    assertClose(await runOn("blas", inputs, build), expected, `adamW [${shape}] decay ${decay}`, 1e-6);
  }
});

test("UnsortedSegmentSum and OneHot: native kernels match cpu, out-of-range ids dropped", {
  skip,
}, async () => {
  const ids = [3, 0, 3, 9, -1, 2, 2, 2];
  const x = random([ids.length, 5], 22);
  for (const segments of [4, 10, 1]) {
    const build = (t: tf.Tensor) => tf.unsortedSegmentSum(t, tf.tensor1d(ids, "int32"), segments);
    assertClose(
      await runOn("blas", [x], build),
      await runOn("cpu", [x], build),
      `segment sum ${segments}`,
      1e-6,
    );
  }
  const gather = (t: tf.Tensor) =>
    tf.grad((table: tf.Tensor) =>
      tf
        .gather(table, tf.tensor2d([[1, 2, 1]], [1, 3], "int32"))
        .square()
        .sum(),
    )(t);
  const table = random([4, 6], 23);
  assertClose(
    await runOn("blas", [table], gather),
    await runOn("cpu", [table], gather),
    "gather gradient",
    1e-6,
  );
  const hot = () => [
    tf
      .oneHot(
        tf.tensor2d(
          [
            [0, 3],
            [5, -1],
          ],
          [2, 2],
          "int32",
        ),
        4,
        2,
        -1,
      )
      .cast("float32"),
  ];
  assertClose(await runOn("blas", [], hot), await runOn("cpu", [], hot), "oneHot", 0);
});

test("sumOfSquares: the native kernel matches Σ x² over several tensors", { skip }, async () => {
  const inputs = [random([7], 24), random([128, 352], 25, -3, 3), random([1], 26), random([300, 500], 27)];
  const build = (...ts: tf.Tensor[]) => sumOfSquares(ts);
  assertClose(await runOn("blas", inputs, build), await runOn("cpu", inputs, build), "sum of squares", 1e-6);
});
