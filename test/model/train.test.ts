import assert from "node:assert/strict";
import { test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { embedding, targetLogProbs } from "../../model/fused.ts";
import { dpoLoss, sftLoss } from "../../model/losses.ts";
import { learningRate } from "../../model/optim.ts";
import { responseLogProbs } from "../../model/score.ts";
import { Trainer } from "../../model/train.ts";
import { BACKENDS, maxAbsDiff, numTensors, tinyModel, tokenizer, useBackend } from "./helpers.ts";

const enc = (s: string) => tokenizer.encode(s);
const sftBatch = [
  { prompt: [1, ...enc("1+2=")], response: [...enc("3"), 2] },
  { prompt: [1, ...enc("2+2=")], response: [...enc("4"), 2] },
  { prompt: [1, ...enc("ab")], response: [...enc("cdef"), 2] },
  { prompt: [1, ...enc("hg")], response: [...enc("fedc"), 2] },
];

test("learning-rate schedules: warmup, then linear or cosine decay to minLr", () => {
  const s = { peak: 1, warmupSteps: 4, totalSteps: 14, minLr: 0.1 };
  assert.equal(learningRate(0, { kind: "cosine", ...s }), 0.25);
  assert.equal(learningRate(3, { kind: "cosine", ...s }), 1);
  assert.equal(learningRate(4, { kind: "cosine", ...s }), 1);
  assert.ok(Math.abs(learningRate(9, { kind: "cosine", ...s }) - 0.55) < 1e-12);
  assert.ok(Math.abs(learningRate(9, { kind: "linear", ...s }) - 0.55) < 1e-12);
  assert.ok(Math.abs(learningRate(14, { kind: "linear", ...s }) - 0.1) < 1e-12);
  assert.equal(learningRate(100, { kind: "constant", peak: 3 }), 3);
  assert.throws(() => learningRate(5, { kind: "cosine", peak: 1 }), /totalSteps/);
});

test("dpoLoss matches the formula", () => {
  const t = tf.tidy(() => {
    const r = dpoLoss([-1, -2], [-3, -1], [-2, -2], [-2, -2], 0.5);
    return [r.loss, r.rewardMargin, r.preferenceAccuracy, r.chosenReward, r.rejectedReward].map(
      (x) => x.dataSync()[0],
    );
  });
  const m = [0.5 * (1 - -1), 0.5 * (0 - 1)];
  const loss = m.map((x) => Math.log(1 + Math.exp(-x))).reduce((a, b) => a + b) / 2;
  assert.ok(Math.abs(t[0] - loss) < 1e-6);
  assert.ok(Math.abs(t[1] - (m[0] + m[1]) / 2) < 1e-6);
  assert.equal(t[2], 0.5);
  // β(πc − rc) = 0.5·(1, 0), β(πr − rr) = 0.5·(−1, 1): means 0.25 and 0.
  assert.ok(Math.abs(t[3] - 0.25) < 1e-6);
  assert.ok(Math.abs(t[4] - 0) < 1e-6);
});

test("sftLoss perExample: the mean of each example's own token mean", async () => {
  await useBackend("cpu");
  const model = tinyModel(33);
  const [perToken, perExample, rowSums] = tf.tidy(() => [
    sftLoss(model, sftBatch, { training: false }).dataSync()[0],
    sftLoss(model, sftBatch, { training: false, perExample: true }).dataSync()[0],
    Array.from(responseLogProbs(model, sftBatch).sum),
  ]);
  const lengths = sftBatch.map((ex) => ex.response.length);
  const tokenMean = -rowSums.reduce((a, b) => a + b, 0) / lengths.reduce((a, b) => a + b, 0);
  const exampleMean = -rowSums.reduce((a, s, i) => a + s / lengths[i], 0) / sftBatch.length;
  assert.ok(Math.abs(perToken - tokenMean) < 1e-4, `${perToken} vs ${tokenMean}`);
  assert.ok(Math.abs(perExample - exampleMean) < 1e-4, `${perExample} vs ${exampleMean}`);
  model.dispose();
});

test("sftLoss with row weights: each row's tokens count at its weight, in the sum and the mean", async () => {
  await useBackend("cpu");
  const model = tinyModel(34);
  const weights = [3, ...sftBatch.slice(1).map(() => 1)];
  const weighted = sftBatch.map((ex, i) => ({ ...ex, weight: weights[i] }));
  const [perToken, perExample, rowSums] = tf.tidy(() => [
    sftLoss(model, weighted, { training: false }).dataSync()[0],
    sftLoss(model, weighted, { training: false, perExample: true }).dataSync()[0],
    Array.from(responseLogProbs(model, sftBatch).sum),
  ]);
  const lengths = sftBatch.map((ex) => ex.response.length);
  const tokenMean =
    -rowSums.reduce((a, s, i) => a + weights[i] * s, 0) / lengths.reduce((a, n, i) => a + weights[i] * n, 0);
  const exampleMean =
    -rowSums.reduce((a, s, i) => a + (weights[i] * s) / lengths[i], 0) / weights.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(perToken - tokenMean) < 1e-4, `${perToken} vs ${tokenMean}`);
  assert.ok(Math.abs(perExample - exampleMean) < 1e-4, `${perExample} vs ${exampleMean}`);
  // A weight is not a no-op: the unweighted mean differs.
  const plain = tf.tidy(() => sftLoss(model, sftBatch, { training: false }).dataSync()[0]);
  assert.ok(Math.abs(plain - perToken) > 1e-4);
  model.dispose();
});

for (const backend of BACKENDS) {
  test(`${backend}: target log-probs and the embedding lookup match their one-hot formulations, gradients too`, async () => {
    await useBackend(backend);
    const N = 6;
    const V = 11;
    const logits = tf.randomNormal([N, V], 0, 3, "float32", 5) as tf.Tensor2D;
    const targets = tf.tensor1d([0, 10, 3, 3, 7, 1], "int32");
    const weights = tf.tensor1d([0.5, -1, 2, 0.25, 1.5, -0.75]);
    const oneHot = () => tf.oneHot(targets, V).cast("float32");
    const [ours, theirs, dOurs, dTheirs] = tf.tidy(() => {
      const f = (x: tf.Tensor) =>
        targetLogProbs(x as tf.Tensor2D, targets)
          .mul(weights)
          .sum();
      const g = (x: tf.Tensor) => tf.logSoftmax(x, -1).mul(oneHot()).sum(-1).mul(weights).sum();
      return [
        targetLogProbs(logits, targets).dataSync(),
        tf.logSoftmax(logits, -1).mul(oneHot()).sum(-1).dataSync(),
        tf.grad(f)(logits).dataSync(),
        tf.grad(g)(logits).dataSync(),
      ];
    });
    assert.ok(maxAbsDiff(ours, theirs) < 1e-5, `values differ by ${maxAbsDiff(ours, theirs)}`);
    assert.ok(maxAbsDiff(dOurs, dTheirs) < 1e-6, `gradients differ by ${maxAbsDiff(dOurs, dTheirs)}`);

    // Repeated ids must add their gradients into the same row.
    const table = tf.randomNormal([V, 4], 0, 1, "float32", 6) as tf.Tensor2D;
    const ids = tf.tensor1d([2, 5, 2, 9, 2, 0], "int32");
    const dy = tf.randomNormal([N, 4], 0, 1, "float32", 7);
    const [rows, rowsRef, dTable, dTableRef] = tf.tidy(() => [
      embedding(table, ids).dataSync(),
      tf.gather(table, ids).dataSync(),
      tf
        .grad((t: tf.Tensor) =>
          embedding(t as tf.Tensor2D, ids)
            .mul(dy)
            .sum(),
        )(table)
        .dataSync(),
      tf.matMul(tf.oneHot(ids, V).cast("float32"), dy, true, false).dataSync(),
    ]);
    assert.deepEqual(rows, rowsRef);
    assert.ok(
      maxAbsDiff(dTable, dTableRef) < 1e-6,
      `embedding gradient differs by ${maxAbsDiff(dTable, dTableRef)}`,
    );
    tf.dispose([logits, targets, weights, table, ids, dy]);
  });

  test(`${backend}: training forward equals inference forward`, async () => {
    await useBackend(backend);
    const model = tinyModel(30);
    const ids = tf.tensor2d([[1, 4, 5, 6, 7]], [1, 5], "int32");
    const [a, b] = tf.tidy(() => [
      model.forward(ids).logits.dataSync(),
      model.forward(ids, { training: true }).logits.dataSync(),
    ]);
    assert.deepEqual(a, b);
    ids.dispose();
    model.dispose();
  });

  test(`${backend}: a tiny model overfits a small SFT set (loss falls > 10x)`, async () => {
    await useBackend(backend);
    const model = tinyModel(31);
    const trainer = new Trainer(model, {
      schedule: { kind: "constant", peak: 2e-2, warmupSteps: 5 },
      seed: 1,
    });
    const first = trainer.sftStep(sftBatch).loss;
    let last = first;
    for (let i = 0; i < 80 && last > first / 20; i++) last = trainer.sftStep(sftBatch).loss;
    assert.ok(last < first / 10, `loss ${first} → ${last}`);
    trainer.dispose();
    model.dispose();
  });

  // Tied: the embedding's gradient is the sum of the lookup's and the output head's.
  for (const tied of [false, true])
    test(`${backend}: analytic gradients agree with finite differences (tied head ${tied})`, async () => {
      await useBackend(backend);
      const model = tinyModel(32, {
        num_hidden_layers: 1,
        initializer_range: 0.3,
        tie_word_embeddings: tied,
      });
      const batch = sftBatch.slice(0, 2);
      // Summed (not averaged) loss keeps float32 differences well above rounding noise.
      const loss = () => sftLoss(model, batch, { normaliser: 1 });
      const vars = [...model.params.values()];
      const { value, grads } = tf.variableGrads(loss, vars);
      value.dispose();
      const names = [...model.params.keys()];
      const rng = (seed: number) => () => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed / 2 ** 31;
      };
      const rand = rng(7);
      let checked = 0;
      for (const name of names.filter((n) => !n.endsWith("norm.weight")).concat("model.norm.weight")) {
        const v = model.params.get(name)!;
        const g = grads[v.name].dataSync();
        for (let k = 0; k < 2; k++) {
          const i = Math.floor(rand() * v.size);
          const orig = v.dataSync()[i];
          const at = (x: number) => {
            const data = v.dataSync().slice();
            data[i] = x;
            v.assign(tf.tensor(data, v.shape));
            return tf.tidy(() => loss().dataSync()[0]);
          };
          const eps = 1e-2;
          const fd = (at(orig + eps) - at(orig - eps)) / (2 * eps);
          at(orig);
          const err = Math.abs(fd - g[i]) / Math.max(1e-1, Math.abs(fd), Math.abs(g[i]));
          assert.ok(err < 1e-2, `${name}[${i}]: analytic ${g[i]} vs numeric ${fd}`);
          checked++;
        }
      }
      assert.ok(checked >= 10);
      for (const g of Object.values(grads)) g.dispose();
      model.dispose();
    });

  test(`${backend}: gradient accumulation over micro-batches equals the full batch`, async () => {
    await useBackend(backend);
    const a = tinyModel(33);
    const b = tinyModel(33);
    const opts = { schedule: { kind: "constant" as const, peak: 1e-2 }, weightDecay: 0.1 };
    const ta = new Trainer(a, opts);
    const tb = new Trainer(b, { ...opts, microBatchSize: 1 });
    const la = ta.sftStep(sftBatch);
    const lb = tb.sftStep(sftBatch);
    assert.ok(Math.abs(la.loss - lb.loss) < 1e-5);
    assert.ok(Math.abs(la.gradNorm - lb.gradNorm) < 1e-4);
    const wb = b.getWeights();
    for (const [name, w] of a.getWeights()) assert.ok(maxAbsDiff(w.data, wb.get(name)!.data) < 1e-5, name);
    ta.dispose();
    tb.dispose();
    a.dispose();
    b.dispose();
  });

  test(`${backend}: SFT, DPO and PPO steps do not grow the tensor count`, async () => {
    await useBackend(backend);
    const model = tinyModel(34);
    const trainer = new Trainer(model, { schedule: { kind: "constant", peak: 1e-3 }, microBatchSize: 2 });
    const pairs = sftBatch.map((ex, i) => ({
      prompt: ex.prompt,
      chosen: ex.response,
      rejected: sftBatch[(i + 1) % 4].response,
    }));
    const ref = { chosen: [-5, -5, -5, -5], rejected: [-5, -5, -5, -5] };
    const rollouts = sftBatch.map((ex, i) => ({
      ...ex,
      logProbs: ex.response.map(() => -2),
      refLogProbs: ex.response.map(() => -2.1),
      reward: i % 2,
    }));
    // One of each first: the optimizer's moments and the value head are created lazily.
    trainer.sftStep(sftBatch);
    trainer.dpoStep(pairs, ref);
    trainer.ppoStep(rollouts);
    const before = numTensors();
    for (let i = 0; i < 5; i++) {
      trainer.sftStep(sftBatch);
      trainer.dpoStep(pairs, ref);
      const s = trainer.ppoStep(rollouts);
      assert.ok(Number.isFinite(s.loss) && Number.isFinite(s.valueLoss) && Number.isFinite(s.approxKl));
    }
    assert.equal(numTensors(), before);
    trainer.dispose();
    model.dispose();
  });

  test(`${backend}: DPO steps widen the chosen-vs-rejected margin`, async () => {
    await useBackend(backend);
    const model = tinyModel(35);
    const pairs = sftBatch.map((ex, i) => ({
      prompt: ex.prompt,
      chosen: ex.response,
      rejected: sftBatch[(i + 1) % 4].response,
    }));
    const score = (key: "chosen" | "rejected") =>
      responseLogProbs(
        model,
        pairs.map((p) => ({ prompt: p.prompt, response: p[key] })),
      ).sum;
    const ref = { chosen: score("chosen"), rejected: score("rejected") };
    const trainer = new Trainer(model, { schedule: { kind: "constant", peak: 1e-2 }, dpoBeta: 0.5 });
    const first = trainer.dpoStep(pairs, ref);
    assert.ok(Math.abs(first.rewardMargin) < 1e-4, "policy = reference: zero margin");
    assert.ok(Math.abs(first.loss - Math.log(2)) < 1e-4);
    let last = first;
    for (let i = 0; i < 10; i++) last = trainer.dpoStep(pairs, ref);
    assert.ok(last.rewardMargin > 0.5, `margin ${last.rewardMargin}`);
    assert.equal(last.preferenceAccuracy, 1);
    assert.ok(last.loss < first.loss);
    trainer.dispose();
    model.dispose();
  });

  test(`${backend}: PPO raises the log-prob of the rewarded response`, async () => {
    await useBackend(backend);
    const model = tinyModel(36);
    const prompt = [1, ...enc("1+1=")];
    // Both answers leave the same state, so their advantages must move one logit up, the other down.
    const good = enc("2");
    const bad = enc("3");
    const lp = (response: number[]) => responseLogProbs(model, [{ prompt, response }]);
    const trainer = new Trainer(model, { schedule: { kind: "constant", peak: 1e-2 }, ppo: { klCoef: 0.01 } });
    const start = lp(good).sum[0] - lp(bad).sum[0];
    for (let i = 0; i < 8; i++) {
      const g = lp(good).perToken[0];
      const b = lp(bad).perToken[0];
      trainer.ppoStep([
        { prompt, response: good, logProbs: g, refLogProbs: g, reward: 1 },
        { prompt, response: bad, logProbs: b, refLogProbs: b, reward: 0 },
      ]);
    }
    const end = lp(good).sum[0] - lp(bad).sum[0];
    assert.ok(end > start + 1, `log p(good) − log p(bad): ${start} → ${end}`);
    trainer.dispose();
    model.dispose();
  });
}
