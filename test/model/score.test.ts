import assert from "node:assert/strict";
import { test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { responseLogProbs } from "../../model/score.ts";
import { BACKENDS, maxAbsDiff, numTensors, tinyModel, useBackend } from "./helpers.ts";

const batch = [
  { prompt: [1, 4, 5, 6], response: [7, 8, 2] },
  { prompt: [1], response: [9, 10, 11, 12, 2] },
  { prompt: [1, 13, 14, 15, 16, 17], response: [18] },
  { prompt: [1, 5], response: [] },
];

for (const backend of BACKENDS) {
  test(`${backend}: batched response log-probs equal a direct per-example computation`, async () => {
    await useBackend(backend);
    const model = tinyModel(21);
    try {
      const before = numTensors();
      const scored = responseLogProbs(model, batch, 16, { entropy: true });
      assert.equal(numTensors(), before);
      batch.forEach((ex, b) => {
        const seq = [...ex.prompt, ...ex.response];
        const [logp] = tf.tidy(() => {
          const logits = model.forward(tf.tensor2d([seq], [1, seq.length], "int32")).logits;
          return [tf.logSoftmax(logits, -1).arraySync()[0] as number[][]];
        });
        const direct = ex.response.map((tok, i) => logp[ex.prompt.length - 1 + i][tok]);
        const entropy = ex.response.map(
          (_, i) => -logp[ex.prompt.length - 1 + i].reduce((a, l) => a + Math.exp(l) * l, 0),
        );
        assert.equal(scored.perToken[b].length, ex.response.length);
        assert.ok(maxAbsDiff(scored.perToken[b], direct) < 1e-5, `row ${b}`);
        assert.ok(maxAbsDiff(scored.entropy![b], entropy) < 1e-5, `entropy row ${b}`);
        assert.ok(Math.abs(scored.sum[b] - direct.reduce((a, x) => a + x, 0)) < 1e-4);
      });
      // Chunking does not change the answer; without entropy the log-probs are the same.
      assert.equal(responseLogProbs(model, batch).entropy, undefined);
      const chunked = responseLogProbs(model, batch, 1);
      batch.forEach((_, b) => {
        assert.ok(maxAbsDiff(chunked.perToken[b], scored.perToken[b]) < 1e-5);
      });
    } finally {
      model.dispose();
    }
  });
}

test("empty prompts are refused with a clear error", () => {
  const model = tinyModel(22);
  try {
    assert.throws(
      () => responseLogProbs(model, [{ prompt: [], response: [4] }]),
      /example 0 has an empty prompt/,
    );
  } finally {
    model.dispose();
  }
});
