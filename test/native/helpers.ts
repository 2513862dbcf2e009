// Shared by the native kernel tests: seeded host tensors, running one graph on a named backend,
// and comparing outputs within a tolerance relative to the expected values' scale.
import assert from "node:assert/strict";
import * as tf from "@tensorflow/tfjs";

/** A seeded stream so a failing case is reproducible. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export interface Host {
  shape: number[];
  data: Float32Array;
}

export function random(shape: number[], seed: number, lo = -1, hi = 1): Host {
  const next = rng(seed);
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = lo + (hi - lo) * next();
  return { shape, data };
}

export type Build = (...inputs: tf.Tensor[]) => tf.Tensor | tf.Tensor[];

/** Runs `build` on a backend over fresh tensors made from host data; returns host copies. */
export async function runOn(backend: string, inputs: Host[], build: Build): Promise<Host[]> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const ts = inputs.map((h) => tf.tensor(h.data, h.shape, "float32"));
    const out = build(...ts);
    return (Array.isArray(out) ? out : [out]).map((t) => ({
      shape: t.shape.slice(),
      data: Float32Array.from(t.dataSync() as Float32Array),
    }));
  });
}

/** Element-wise |actual − expected| ≤ tol · max(1, max |expected|); NaN must match NaN. */
export function assertClose(actual: Host[], expected: Host[], what: string, tol = 1e-5): void {
  assert.equal(actual.length, expected.length, `${what}: number of outputs`);
  actual.forEach((a, i) => {
    const e = expected[i];
    assert.deepEqual(a.shape, e.shape, `${what}: shape of output ${i}`);
    let scale = 1;
    for (const v of e.data) if (Number.isFinite(v)) scale = Math.max(scale, Math.abs(v));
    for (let j = 0; j < e.data.length; j++) {
      const x = a.data[j];
      const y = e.data[j];
      if (Number.isNaN(y) || (!Number.isFinite(y) && x === y)) {
        assert.ok(
          Number.isNaN(y) ? Number.isNaN(x) : true,
          `${what}: output ${i}[${j}] is ${x}, expected NaN`,
        );
        continue;
      }
      const err = Math.abs(x - y);
      assert.ok(err <= tol * scale, `${what}: output ${i}[${j}] = ${x}, expected ${y} (|diff| ${err})`);
    }
  });
}
