// Every native kernel of the "blas" backend against the pure-JS cpu backend on random inputs.
// Without the addon these tests skip (with the reason), except under CI, which installs
// libopenblas-dev and so must have built it: there they fail.
import assert from "node:assert/strict";
import { test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { nativeKernelNames, registerBlasBackend } from "../../model/backends/blas.ts";
import { assertClose, type Build, type Host, random, runOn } from "./helpers.ts";

const registered = await registerBlasBackend();
const skip = registered.ok ? false : registered.reason;

if (!registered.ok && process.env.CI) {
  test("blas addon is built (required under CI)", () => {
    assert.fail(`blas backend unavailable: ${registered.reason}`);
  });
}

async function same(what: string, inputs: Host[], build: Build, tol?: number): Promise<void> {
  const expected = await runOn("cpu", inputs, build);
  const actual = await runOn("blas", inputs, build);
  assertClose(actual, expected, what, tol);
}

test("registerBlasBackend is idempotent and overrides the heavy kernels", { skip }, async () => {
  assert.deepEqual(await registerBlasBackend(), { ok: true });
  const names = nativeKernelNames();
  for (const k of ["BatchMatMul", "_FusedMatMul", "Multiply", "Softmax", "Transpose", "Sum", "Concat"]) {
    assert.ok(names.includes(k), `${k} should run natively`);
  }
  const cpu = tf.getKernelsForBackend("cpu").map((k) => k.kernelName);
  const blas = new Set(tf.getKernelsForBackend("blas").map((k) => k.kernelName));
  for (const k of cpu) assert.ok(blas.has(k), `blas lacks cpu kernel ${k}`);
});

// [aShape, bShape, transposeA, transposeB]: batched, transposed, broadcast and 1-sized cases.
const matmulCases: [number[], number[], boolean, boolean][] = [
  [[3, 5], [5, 4], false, false],
  [[5, 3], [5, 4], true, false],
  [[3, 5], [4, 5], false, true],
  [[5, 3], [4, 5], true, true],
  [[2, 3, 5], [2, 5, 4], false, false],
  [[2, 5, 3], [2, 4, 5], true, true],
  [[1, 3, 5], [4, 5, 2], false, false],
  [[4, 3, 5], [1, 5, 2], false, false],
  [[3, 5], [4, 5, 2], false, false],
  [[2, 3, 3, 5], [5, 4], false, false],
  [[1, 1], [1, 1], false, false],
  [[1, 7], [7, 1], false, false],
  [[6, 1], [1, 6], false, false],
  [[2, 2, 1, 8], [2, 2, 8, 3], false, false],
  [[64, 96], [96, 80], false, false],
];

for (const [as, bs, ta, tb] of matmulCases) {
  test(`BatchMatMul [${as}] x [${bs}] tA=${ta} tB=${tb}`, { skip }, async () => {
    await same("matMul", [random(as, 1), random(bs, 2)], (a, b) => tf.matMul(a, b, ta, tb), 1e-5);
  });
}

test("BatchMatMul broadcasts batch dims on both sides", { skip }, async () => {
  // The cpu kernel indexes batches modulo each side's size, which is only right when one side
  // has a single batch, so the reference here broadcasts explicitly first.
  const a = random([2, 1, 3, 4], 3);
  const b = random([1, 3, 4, 2], 4);
  const expected = await runOn("cpu", [a, b], (x, y) =>
    tf.matMul(tf.broadcastTo(x, [2, 3, 3, 4]), tf.broadcastTo(y, [2, 3, 4, 2])),
  );
  const actual = await runOn("blas", [a, b], (x, y) => tf.matMul(x, y));
  assertClose(actual, expected, "broadcast matMul");
});

const fusedCases: {
  a: number[];
  b: number[];
  ta: boolean;
  tb: boolean;
  bias?: number[];
  act?: tf.fused.Activation;
}[] = [
  { a: [4, 6], b: [6, 5], ta: false, tb: false, bias: [5], act: "relu" },
  { a: [6, 4], b: [5, 6], ta: true, tb: true, bias: [5], act: "linear" },
  { a: [2, 4, 6], b: [6, 5], ta: false, tb: false, bias: [1, 5], act: "relu" },
  { a: [4, 6], b: [6, 5], ta: false, tb: false, act: "relu" },
  { a: [4, 6], b: [6, 5], ta: false, tb: false, bias: [5], act: "sigmoid" },
  { a: [4, 6], b: [6, 5], ta: false, tb: false, bias: [5], act: "elu" },
  { a: [4, 6], b: [6, 5], ta: false, tb: false, bias: [5], act: "relu6" },
  { a: [4, 6], b: [6, 5], ta: false, tb: false, bias: [4, 1], act: "linear" }, // not fusable: cpu path
];

for (const c of fusedCases) {
  test(`_FusedMatMul [${c.a}] x [${c.b}] bias=[${c.bias ?? ""}] ${c.act}`, { skip }, async () => {
    const inputs = [random(c.a, 5), random(c.b, 6), ...(c.bias ? [random(c.bias, 7)] : [])];
    await same("fused matMul", inputs, (a, b, bias) =>
      tf.fused.matMul({ a, b, transposeA: c.ta, transposeB: c.tb, bias, activation: c.act }),
    );
  });
}

test("gradients through matMul agree on both backends", { skip }, async () => {
  for (const [as, bs, ta, tb] of [
    [[2, 3, 5], [2, 5, 4], false, false],
    [[5, 3], [4, 5], true, true],
    [[4, 5, 3], [4, 5, 2], true, false],
  ] as [number[], number[], boolean, boolean][]) {
    await same(`grad matMul [${as}] x [${bs}]`, [random(as, 8), random(bs, 9)], (a, b) =>
      tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.matMul(x, y, ta, tb).square().sum())([a, b]),
    );
  }
});

const binaryOps: [string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, number][] = [
  ["add", tf.add, -1],
  ["sub", tf.sub, -1],
  ["mul", tf.mul, -1],
  ["div", tf.div, 0.5],
  ["maximum", tf.maximum, -1],
  ["minimum", tf.minimum, -1],
  ["squaredDifference", tf.squaredDifference, -1],
  ["pow", tf.pow, 0.1],
];
const binaryShapes: [number[], number[]][] = [
  [[7], [7]],
  [[3, 4], []],
  [[], [3, 4]],
  [
    [3, 1],
    [1, 4],
  ],
  [[2, 3, 4], [4]],
  [
    [2, 1, 4],
    [3, 1],
  ],
  [[5], [2, 3, 5]],
  [
    [2, 3, 1, 5],
    [2, 1, 4, 5],
  ],
  [
    [1, 1, 1],
    [1, 1, 1],
  ],
];

for (const [name, op, lo] of binaryOps) {
  test(`${name} with broadcasting`, { skip }, async () => {
    for (const [as, bs] of binaryShapes) {
      await same(`${name} [${as}] [${bs}]`, [random(as, 10, lo, 2), random(bs, 11, lo, 2)], op);
    }
  });
}

const unaryOps: [string, (x: tf.Tensor) => tf.Tensor, number][] = [
  ["exp", tf.exp, -3],
  ["log", tf.log, 0.01],
  ["neg", tf.neg, -3],
  ["sqrt", tf.sqrt, 0],
  ["rsqrt", tf.rsqrt, 0.01],
  ["square", tf.square, -3],
  ["relu", tf.relu, -3],
  ["sigmoid", tf.sigmoid, -6],
  ["tanh", tf.tanh, -3],
  ["abs", tf.abs, -3],
  ["reciprocal", tf.reciprocal, 0.1],
  ["step", (x) => tf.step(x), -3],
];

for (const [name, op, lo] of unaryOps) {
  test(`${name}`, { skip }, async () => {
    for (const shape of [[1], [17], [3, 5, 2]]) {
      await same(`${name} [${shape}]`, [random(shape, 12, lo, 3)], op);
    }
  });
}

test("softmax over the last axis", { skip }, async () => {
  for (const shape of [[1], [7], [3, 5], [2, 3, 9], [4, 1]]) {
    await same(`softmax [${shape}]`, [random(shape, 13, -20, 20)], (x) => tf.softmax(x));
  }
});

const reductions: [string, (x: tf.Tensor, axis?: number | number[], keep?: boolean) => tf.Tensor][] = [
  ["sum", tf.sum],
  ["mean", tf.mean],
  ["max", tf.max],
  ["min", tf.min],
  ["prod", tf.prod],
];
const axesCases: (number | number[] | undefined)[] = [undefined, 0, -1, 1, [0, 1], [1, 2], [0, 2], [0, 1, 2]];

for (const [name, op] of reductions) {
  test(`${name} over axes`, { skip }, async () => {
    for (const axis of axesCases) {
      for (const keep of [false, true]) {
        await same(
          `${name} axis=${JSON.stringify(axis)} keep=${keep}`,
          [random([3, 4, 5], 14, 0.5, 1.5)],
          (x) => op(x, axis, keep),
        );
      }
    }
    await same(`${name} of a vector`, [random([9], 15, 0.5, 1.5)], (x) => op(x));
  });
}

test("transpose", { skip }, async () => {
  const cases: [number[], number[]][] = [
    [
      [3, 4],
      [1, 0],
    ],
    [
      [2, 3, 4],
      [0, 2, 1],
    ],
    [
      [2, 3, 4],
      [2, 0, 1],
    ],
    [
      [2, 3, 4, 5],
      [0, 2, 1, 3],
    ],
    [
      [2, 1, 4, 5],
      [3, 2, 1, 0],
    ],
  ];
  for (const [shape, perm] of cases) {
    await same(`transpose [${shape}] by [${perm}]`, [random(shape, 16)], (x) => tf.transpose(x, perm));
  }
});

test("slice, split and concat", { skip }, async () => {
  const x = random([2, 3, 4, 6], 17);
  await same("slice inner", [x], (t) => tf.slice(t, [0, 1, 1, 2], [2, 2, 2, 3]));
  await same("slice contiguous", [x], (t) => tf.slice(t, [1, 0, 0, 0], [1, -1, -1, -1]));
  await same("slice 1-d", [random([10], 18)], (t) => tf.slice(t, [3], [4]));
  await same("split last axis", [x], (t) => tf.split(t, 2, -1));
  await same("split uneven sizes", [x], (t) => tf.split(t, [1, 2], 1));
  await same("concat axis 2", [x, random([2, 3, 1, 6], 19)], (a, b) => tf.concat([a, b], 2));
  await same("concat axis 0", [x, x], (a, b) => tf.concat([a, b], 0));
  await same("concat last axis", [x, random([2, 3, 4, 2], 20)], (a, b) => tf.concat([a, b], -1));
});

test("gradients of an attention block agree on both backends", { skip }, async () => {
  const B = 2;
  const T = 5;
  const H = 2;
  const hd = 4;
  const d = H * hd;
  const inputs = [random([B * T, d], 21), random([d, 3 * d], 22), random([d], 23, 0.5, 1.5)];
  await same(
    "attention grads",
    inputs,
    (x, w, g) =>
      tf.grads((xx: tf.Tensor, ww: tf.Tensor, gg: tf.Tensor) => {
        const h = xx.mul(tf.rsqrt(xx.square().mean(-1, true).add(1e-5))).mul(gg);
        const [q, k, v] = tf
          .split(tf.matMul(h, ww), 3, -1)
          .map((t) => t.reshape([B, T, H, hd]).transpose([0, 2, 1, 3]));
        const mask = tf.linalg
          .bandPart(tf.ones([T, T]), -1, 0)
          .sub(1)
          .mul(1e9);
        const p = tf.softmax(
          tf
            .matMul(q, k, false, true)
            .mul(1 / Math.sqrt(hd))
            .add(mask),
        );
        const o = tf
          .matMul(p, v)
          .transpose([0, 2, 1, 3])
          .reshape([B * T, d]);
        return o.mul(tf.sigmoid(o)).sum();
      })([x, w, g]),
    1e-4,
  );
});

test("recycled buffers never reach arrays a caller still holds", { skip }, async () => {
  await tf.setBackend("blas");
  const backend = tf.backend() as unknown as { pooledFloats(): number };
  const n = 64 * 128; // above the pooling threshold
  const x = tf.randomNormal([64, 128]);

  // an intermediate disposed by tidy goes back to the pool
  const before = backend.pooledFloats();
  tf.tidy(() => x.mul(2).add(1).dispose());
  assert.ok(backend.pooledFloats() > before, "disposed kernel outputs should be pooled");

  // read by the caller: its array must survive the tensor's disposal
  const read = x.mul(3);
  const values = read.dataSync();
  const copy = Float32Array.from(values);
  read.dispose();
  // views made by cpu-fallback kernels (unstack slices rows as subarrays) pin the buffer too
  const parent = x.add(5);
  const rows = tf.unstack(parent);
  const rowCopy = Float32Array.from(rows[3].dataSync());
  parent.dispose();
  for (let i = 0; i < 8; i++) tf.tidy(() => x.mul(i).sub(x).exp().dispose());
  assert.equal(values.length, n);
  assert.deepEqual(values, copy, "a read array was overwritten after its tensor was disposed");
  assert.deepEqual(rows[3].dataSync(), rowCopy, "a view of a disposed tensor was overwritten");
  tf.dispose([x, ...rows]);
});

test("large inputs take the multithreaded paths and still agree", { skip }, async () => {
  // sizes above the addon's threading thresholds (2^17 elements, 4 MFLOP per matmul)
  await same(
    "batched matmul split across threads",
    [random([32, 64, 64], 30), random([32, 64, 64], 31)],
    (a, b) => tf.matMul(a, b, false, true),
  );
  await same("single large matmul", [random([256, 200], 32), random([200, 300], 33)], (a, b) =>
    tf.matMul(a, b),
  );
  await same("broadcast add", [random([300, 500], 34), random([500], 35)], (a, b) => a.add(b));
  await same("broadcast mul, inner broadcast", [random([4, 300, 200], 36), random([4, 300, 1], 37)], (a, b) =>
    a.mul(b),
  );
  await same("exp", [random([400, 400], 38, -5, 5)], (x) => x.exp());
  await same("softmax", [random([600, 256], 39, -10, 10)], (x) => tf.softmax(x));
  await same("sum over rows", [random([1024, 256], 40)], (x) => x.sum(0), 1e-4);
  await same("max over columns", [random([1024, 256], 41)], (x) => x.max(-1));
  await same("transpose", [random([8, 64, 8, 40], 42)], (x) => x.transpose([0, 2, 1, 3]));
  await same("concat", [random([8, 8, 64, 32], 43), random([8, 8, 64, 32], 44)], (a, b) =>
    tf.concat([a, b], 2),
  );
});

test("gather and the copy kernels handle int32 bit-exactly", { skip }, async () => {
  const run = async (backend: string) => {
    await tf.setBackend(backend);
    return tf.tidy(() => {
      const table = tf.tensor(random([10, 3, 4], 50).data, [10, 3, 4]);
      const ints = tf.tensor2d(
        [
          [1, -2, 3_000_000, 4],
          [5, 6, 7, 2 ** 30],
        ],
        undefined,
        "int32",
      );
      const idx = tf.tensor2d(
        [
          [0, 9],
          [3, 3],
        ],
        undefined,
        "int32",
      );
      const outs = [
        tf.gather(table, idx),
        tf.gather(table, tf.tensor1d([2, 0], "int32"), 1),
        tf.gather(table, tf.tensor1d([3, 1, 1], "int32"), 2),
        tf.gather(ints, tf.tensor1d([1, 1, 0], "int32")),
        tf.slice(ints, [0, 1], [2, 2]),
        tf.concat([ints, ints], 1),
        tf.transpose(ints),
        ...tf.split(ints, 2, 1),
      ];
      return outs.map((t) => ({ dtype: t.dtype, shape: t.shape, data: Array.from(t.dataSync()) }));
    });
  };
  assert.deepEqual(await run("blas"), await run("cpu"));
  await tf.setBackend("blas");
  assert.throws(
    () => tf.tidy(() => tf.gather(tf.ones([3, 2]), tf.tensor1d([3], "int32")).dataSync()),
    /GatherV2: the index value 3 is not in \[0, 2\]/,
  );
});
