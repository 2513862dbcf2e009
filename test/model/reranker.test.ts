import assert from "node:assert/strict";
import { test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { VALUE_HEAD } from "../../model/llama.ts";
import { Rng } from "../../model/random.ts";
import {
  bceWithLogits,
  type RerankerExample,
  RerankerTrainer,
  rerankerFrom,
  rerankerLogitsTensor,
  rerankerScores,
  rerankerStepCount,
  trainReranker,
} from "../../model/reranker.ts";
import { BACKENDS, numTensors, tinyModel, tokenizer, useBackend } from "./helpers.ts";

const close = (a: number, b: number, tol: number) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const sameBytes = (a: Float32Array, b: Float32Array) =>
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

for (const backend of BACKENDS) {
  test(`${backend}: BCE with logits and its gradient σ(x) − y, by hand, at 0 and far out`, async () => {
    await useBackend(backend);
    const logits = [0, 2, -3, 30, -30, 0];
    const labels = [1, 1, 0, 0, 1, 0];
    // −log σ(x) for label 1, −log(1 − σ(x)) = −log σ(−x) for label 0.
    const byHand = [
      Math.log(2),
      Math.log1p(Math.exp(-2)),
      Math.log1p(Math.exp(-3)),
      30 + Math.log1p(Math.exp(-30)),
      30 + Math.log1p(Math.exp(-30)),
      Math.log(2),
    ];
    const [loss, grad] = tf.tidy(() => {
      const x = tf.tensor1d(logits);
      const g = tf.grad((v: tf.Tensor) => bceWithLogits(v as tf.Tensor1D, labels, 1))(x);
      return [bceWithLogits(x, labels).dataSync()[0], Array.from(g.dataSync())];
    });
    close(loss, byHand.reduce((a, b) => a + b, 0) / logits.length, 1e-5);
    grad.forEach((g, i) => {
      close(g, sigmoid(logits[i]) - labels[i], 1e-6);
    });
    assert.throws(() => tf.tidy(() => bceWithLogits(tf.tensor1d([0, 1]), [1])), /2 logits but 1 labels/);
  });
}

const backend = BACKENDS[BACKENDS.length - 1];
const prompt = [tokenizer.bosId, ...tokenizer.encode("1+1=")];
const rowsOf = (responses: string[]) => responses.map((r) => ({ prompt, response: tokenizer.encode(r) }));

test(`${backend}: a score is σ(head · the last token's hidden state), whatever the padding`, async () => {
  await useBackend(backend);
  const base = tinyModel(50);
  const model = rerankerFrom(base);
  assert.equal(base.hasValueHead, false, "the base model is left as it was");
  const d = model.config.hidden_size;
  const rng = new Rng(3);
  const head = Float32Array.from({ length: d }, () => rng.normal());
  model.params.get(VALUE_HEAD)!.assign(tf.tensor2d(head, [1, d]));
  const rows = [...rowsOf(["1", "abc12", "h"]), { prompt: [tokenizer.bosId], response: [] }];
  const before = numTensors();
  const scores = rerankerScores(model, rows);
  assert.equal(numTensors(), before, "scoring leaves no tensors behind");
  rows.forEach((r, b) => {
    const seq = [...r.prompt, ...r.response];
    const last = tf.tidy(() =>
      Array.from(
        model
          .hiddenStates(tf.tensor2d([seq], [1, seq.length], "int32"))
          .dataSync()
          .slice(-d),
      ),
    );
    close(scores[b], sigmoid(last.reduce((a, h, i) => a + h * head[i], 0)), 1e-5);
  });
  // One row at a time changes the padding width, so float sums may round differently.
  rerankerScores(model, rows, 1).forEach((p, b) => {
    close(p, scores[b], 1e-6);
  });
  assert.throws(() => rerankerScores(base, rows), /no value head/);
  assert.throws(() => rerankerScores(model, [{ prompt: [], response: [] }]), /row 0 has no tokens/);
  base.dispose();
  model.dispose();
});

test(`${backend}: scoring runs without dropout; a fresh head scores ½ and costs ln 2`, async () => {
  await useBackend(backend);
  const model = rerankerFrom(tinyModel(51, { attention_dropout: 0.5 }));
  const rows = rowsOf(["12", "abc", "7h7"]);
  assert.deepEqual(rerankerScores(model, rows), [0.5, 0.5, 0.5]);
  const trainer = new RerankerTrainer(model, { schedule: { kind: "constant", peak: 1e-2 }, seed: 2 });
  const examples: RerankerExample[] = rows.map((r, i) => ({ ...r, label: i === 0 ? 1 : 0 }));
  const first = trainer.stepOn(examples, [0, 1, 2]);
  close(first.loss, Math.log(2), 1e-6);
  assert.equal(first.accuracy, 0, "a logit of 0 is on neither side of ½");
  trainer.stepOn(examples, [0, 1, 2]);
  const scores = rerankerScores(model, rows);
  assert.notDeepEqual(scores, [0.5, 0.5, 0.5], "the head moved");
  const probabilities = (training: boolean, dropoutSeed?: number) =>
    tf.tidy(() =>
      Array.from(tf.sigmoid(rerankerLogitsTensor(model, rows, { training, dropoutSeed })).dataSync()),
    );
  assert.deepEqual(scores, probabilities(false));
  assert.notDeepEqual(scores, probabilities(true, 9), "with dropout on, the scores would differ");
  trainer.dispose();
  model.dispose();
});

/** Label 1 when the response holds an "a" anywhere: the head has to read the whole response. */
function separable(n: number, seed: number): RerankerExample[] {
  const rng = new Rng(seed);
  const others = "bcdefgh0123456789";
  return Array.from({ length: n }, (_, i) => {
    const label = (i % 2) as 0 | 1;
    const length = 3 + rng.int(4);
    const chars = Array.from({ length }, () => others[rng.int(others.length)]);
    if (label === 1) chars[rng.int(length)] = "a";
    return { prompt, response: tokenizer.encode(chars.join("")), label };
  });
}

/** Probability that a label-1 row outscores a label-0 row (ties count half). */
function auc(scores: number[], examples: RerankerExample[]): number {
  const pos = scores.filter((_, i) => examples[i].label === 1);
  const neg = scores.filter((_, i) => examples[i].label === 0);
  let wins = 0;
  for (const p of pos) for (const q of neg) wins += p > q ? 1 : p === q ? 0.5 : 0;
  return wins / (pos.length * neg.length);
}

const meanOf = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

test(`${backend}: training on a separable labelling ranks held-out correct rows above wrong ones`, async () => {
  await useBackend(backend);
  const examples = separable(128, 7);
  const train = examples.slice(0, 96);
  const heldOut = examples.slice(96);
  const model = rerankerFrom(tinyModel(52));
  assert.equal(auc(rerankerScores(model, heldOut), heldOut), 0.5, "untrained, every score is ½");
  const opts = { epochs: 8, batchSize: 8, seed: 1 };
  const seen: number[] = [];
  const summary = trainReranker(model, train, {
    ...opts,
    schedule: {
      kind: "cosine",
      peak: 1e-2,
      warmupSteps: 4,
      totalSteps: rerankerStepCount(train.length, opts),
    },
    onStep: (s, done, total) => {
      seen.push(done);
      assert.equal(total, 96);
      assert.ok(Number.isFinite(s.gradNorm) && s.examples === 8);
    },
  });
  assert.deepEqual(
    seen,
    Array.from({ length: 96 }, (_, i) => i + 1),
  );
  assert.equal(summary.steps, 96);
  assert.equal(summary.skipped, 0);
  close(summary.first, Math.log(2), 0.1);
  assert.ok(summary.last < summary.first / 2, `loss ${summary.first} → ${summary.last}`);
  const scores = rerankerScores(model, heldOut);
  const gap =
    meanOf(scores.filter((_, i) => heldOut[i].label === 1)) -
    meanOf(scores.filter((_, i) => heldOut[i].label === 0));
  assert.ok(auc(scores, heldOut) >= 0.9, `held-out AUC ${auc(scores, heldOut)}`);
  assert.ok(gap >= 0.5, `held-out mean score gap ${gap}`);
  model.dispose();
});

test("an epoch visits every example once, in a seeded order", () => {
  const model = tinyModel(53);
  const opts = { schedule: { kind: "constant" as const, peak: 1e-3 }, epochs: 2, batchSize: 4, seed: 5 };
  const a = new RerankerTrainer(model, opts);
  const plan = a.plan(10);
  assert.equal(model.hasValueHead, true, "the trainer adds the head it trains");
  assert.deepEqual(
    plan.map((m) => m.length),
    [4, 4, 2, 4, 4, 2],
  );
  assert.equal(rerankerStepCount(10, opts), plan.length);
  const sorted = (xs: number[][]) => xs.flat().sort((x, y) => x - y);
  assert.deepEqual(sorted(plan.slice(0, 3)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(sorted(plan.slice(3)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.notDeepEqual(plan.slice(0, 3), plan.slice(3), "each epoch is shuffled afresh");
  assert.deepEqual(new RerankerTrainer(model, opts).plan(10), plan, "the same seed, the same order");
  assert.notDeepEqual(new RerankerTrainer(model, { ...opts, seed: 6 }).plan(10), plan);
  assert.throws(() => new RerankerTrainer(model, { ...opts, batchSize: 0 }), /batchSize must be a positive/);
  const bad = [{ prompt, response: [5], label: 2 as 0 | 1 }];
  assert.throws(() => a.stepOn(bad, [0]), /example 0 has label 2/);
  model.dispose();
});

test(`${backend}: a step whose loss is not finite is skipped, counted, and changes nothing`, async () => {
  await useBackend(backend);
  const model = rerankerFrom(tinyModel(54));
  // A token only the second example uses gets a NaN embedding: only that example's step fails.
  const poisoned = tokenizer.encode("\n")[0];
  const embed = model.params.get("model.embed_tokens.weight")!;
  const table = embed.arraySync() as number[][];
  table[poisoned] = table[poisoned].map(() => Number.NaN);
  embed.assign(tf.tensor2d(table));
  const examples: RerankerExample[] = [
    { ...rowsOf(["12"])[0], label: 1 },
    { ...rowsOf(["1\n"])[0], label: 0 },
    { ...rowsOf(["ab"])[0], label: 0 },
  ];
  const trainer = new RerankerTrainer(model, { schedule: { kind: "constant", peak: 1e-2 }, batchSize: 1 });
  const weights = model.getWeights();
  const bad = trainer.stepOn(examples, [1]);
  assert.equal(bad.skipped, true);
  assert.equal(trainer.skippedSteps, 1);
  assert.equal(trainer.step, 0);
  assert.equal(trainer.trainer.optimizer.t, 0);
  for (const [name, w] of model.getWeights()) assert.ok(sameBytes(w.data, weights.get(name)!.data), name);
  assert.equal(trainer.stepOn(examples, [0]).skipped, false);
  assert.equal(trainer.step, 1);
  trainer.dispose();

  const summary = trainReranker(model, examples, {
    schedule: { kind: "constant", peak: 1e-2 },
    batchSize: 1,
    epochs: 2,
  });
  assert.equal(summary.skipped, 2, "once per epoch");
  assert.equal(summary.steps, 4);
  assert.ok(Number.isFinite(summary.first) && Number.isFinite(summary.last));
  model.dispose();
});
