import assert from "node:assert/strict";
import { test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import {
  approxKl,
  approxKlTensor,
  clipBinds,
  clipBindsTensor,
  entropy,
  explainedVariance,
  gae,
  groupAdvantages,
  mixedGroupShare,
  policyLoss,
  policyLossTensor,
  refKlK3,
  refKlK3Tensor,
  tokenRewards,
  valueLoss,
  valueLossTensor,
  whiten,
} from "../../model/ppo.ts";
import { preparePpoBatch } from "../../model/ppoBatch.ts";
import { PpoTrainer } from "../../model/ppoTrainer.ts";
import { responseLogProbs } from "../../model/score.ts";
import { BACKENDS, maxAbsDiff, numTensors, tinyModel, tokenizer, useBackend } from "./helpers.ts";

const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} vs ${b}`);
const closeAll = (a: readonly number[], b: readonly number[], tol = 1e-9) => {
  assert.equal(a.length, b.length);
  a.forEach((x, i) => {
    close(x, b[i], tol);
  });
};

test("per-token rewards: the KL penalty at every token, the sequence reward on the last", () => {
  closeAll(tokenRewards(1, [-1, -2, -0.5], [-1.5, -2, -1], 0.1), [-0.05, 0, 0.95]);
  closeAll(tokenRewards(0.1, [-3], [-1], 0.5), [1.1]);
  assert.throws(() => tokenRewards(1, [-1, -2], [-1], 0.1), /2 log-probs but 1 reference/);
  assert.throws(() => tokenRewards(1, [], [], 0.1), /empty/);
});

test("GAE on a three-token trajectory matches the recursion worked by hand", () => {
  const rewards = [0, 0, 1];
  const values = [0.5, 0.4, 0.8];
  // γ = 1, λ = 0.95: δ = [−0.1, 0.4, 0.2]; A2 = 0.2, A1 = 0.4 + 0.95·0.2, A0 = −0.1 + 0.95·0.59.
  const a = gae(rewards, values, 1, 0.95);
  closeAll(a.advantages, [0.4605, 0.59, 0.2], 1e-12);
  closeAll(a.returns, [0.9605, 0.99, 1.0], 1e-12);
  // γ = 0.9, λ = 0.5: δ = [0.9·0.4 − 0.5, 0.9·0.8 − 0.4, 0.2], γλ = 0.45.
  closeAll(gae(rewards, values, 0.9, 0.5).advantages, [-0.14 + 0.45 * 0.41, 0.41, 0.2], 1e-12);
  // λ = 1, γ = 1: Monte Carlo return minus the baseline.
  closeAll(gae(rewards, values, 1, 1).advantages, [0.5, 0.6, 0.2], 1e-12);
  // λ = 0: one-step TD errors.
  closeAll(gae(rewards, values, 1, 0).advantages, [-0.1, 0.4, 0.2], 1e-12);
});

test("whitening: zero mean, unit variance over all tokens of the batch", () => {
  const w = whiten([[1, 2], [3]]);
  const s = Math.sqrt(2 / 3);
  closeAll(w[0], [-1 / s, 0], 1e-6);
  closeAll(w[1], [1 / s], 1e-6);
  const flat = whiten([
    [5, -1, 2],
    [0.5, 7],
  ]).flat();
  close(
    flat.reduce((a, b) => a + b, 0),
    0,
    1e-9,
  );
  close(flat.reduce((a, b) => a + b * b, 0) / flat.length, 1, 1e-6);
  assert.deepEqual(whiten([[3]]), [[3]]);
});

test("GRPO advantages: (r − group mean) / group std; flat or single-response groups give 0", () => {
  const adv = groupAdvantages([1, 0, 0.1, 1, 1, 1, 0.1], ["a", "a", "b", "b", "c", "c", "d"]);
  closeAll(adv, [1, -1, -1, 1, 0, 0, 0], 1e-5);
  // Three members: mean 0.4, population std √0.18.
  const three = groupAdvantages([1, 0.1, 0.1], ["q", "q", "q"]);
  const s = Math.sqrt(0.18);
  closeAll(three, [0.6 / s, -0.3 / s, -0.3 / s], 1e-5);
  assert.throws(() => groupAdvantages([1, 0], ["a"]), /2 rewards but 1 group/);
});

test("mixed groups: the share of groups whose rewards differ, the ones with a GRPO signal", () => {
  // a: mixed; b: mixed (0.1 against 1); c: all right; d: a single response, not counted.
  const share = mixedGroupShare([1, 0, 0.1, 1, 1, 1, 0.1], ["a", "a", "b", "b", "c", "c", "d"]);
  close(share, 2 / 3, 1e-12);
  // The same rewards grouped so that no group differs within itself.
  assert.equal(mixedGroupShare([1, 1, 0, 0], ["a", "a", "b", "b"]), 0);
  // One sample per question (PPO): no group to be mixed, so no figure rather than a zero.
  assert.ok(Number.isNaN(mixedGroupShare([1, 0, 1], ["a", "b", "c"])));
  assert.throws(() => mixedGroupShare([1, 0], ["a"]), /2 rewards but 1 group/);
});

test("clipped policy objective on both sides of the trust region, and where its gradient stops", () => {
  const clip = 0.2;
  const cases = [
    // [ratio, advantage, loss, clip binds]
    [1.5, 1, -1.2, true], // pushed up past 1 + ε: capped
    [0.5, 1, -0.5, false], // below the region with A > 0: the unclipped term still trains
    [0.5, -1, 0.8, true], // pushed down past 1 − ε: capped
    [1.5, -1, 1.5, false], // above the region with A < 0: pessimistic, still trains
    [1.1, 2, -2.2, false],
    [0.9, -2, 1.8, false],
  ] as const;
  for (const [ratio, adv, loss, binds] of cases) {
    close(policyLoss(Math.log(ratio), adv, clip), loss, 1e-12);
    assert.equal(clipBinds(Math.log(ratio), adv, clip), binds, `ratio ${ratio}, A ${adv}`);
  }
  const logRatio = cases.map((c) => Math.log(c[0]));
  const advantages = cases.map((c) => c[1]);
  const [losses, bindsT, grads] = tf.tidy(() => {
    const lr = tf.tensor1d(logRatio);
    const adv = tf.tensor1d(advantages);
    const g = tf.grad((x: tf.Tensor) => policyLossTensor(x, adv, clip).sum())(lr);
    return [
      policyLossTensor(lr, adv, clip).dataSync(),
      clipBindsTensor(lr, adv, clip).dataSync(),
      g.dataSync(),
    ];
  });
  closeAll(
    Array.from(losses),
    cases.map((c) => c[2]),
    1e-6,
  );
  assert.deepEqual(
    Array.from(bindsT),
    cases.map((c) => (c[3] ? 1 : 0)),
  );
  // d/d log ρ of −ρA is −ρA where the unclipped branch is taken, 0 where the clip binds.
  cases.forEach(([ratio, adv, , binds], i) => {
    close(grads[i], binds ? 0 : -ratio * adv, 1e-5);
  });
});

test("clipped value loss: a large move earns nothing, a move away is paid in full", () => {
  const c = 0.2;
  close(valueLoss(0.6, 0.5, 1, c), 0.08, 1e-12); // inside the clip: plain ½(V − R)²
  close(valueLoss(1, 0.5, 1, c), 0.045, 1e-12); // jumped onto the target: charged as if at 0.7
  close(valueLoss(-0.2, 0.5, 1, c), 0.72, 1e-12); // moved away: the unclipped error is larger
  close(valueLoss(0.5, 0.5, 0.5, c), 0, 1e-12);
  const values = [0.6, 1, -0.2];
  const [loss, grad] = tf.tidy(() => {
    const v = tf.tensor1d(values);
    const old = tf.tensor1d([0.5, 0.5, 0.5]);
    const ret = tf.tensor1d([1, 1, 1]);
    const g = tf.grad((x: tf.Tensor) => valueLossTensor(x, old, ret, c).sum())(v);
    return [valueLossTensor(v, old, ret, c).dataSync(), g.dataSync()];
  });
  closeAll(Array.from(loss), [0.08, 0.045, 0.72], 1e-6);
  // The clipped branch is constant in V, so the value head gets no gradient from it.
  closeAll(Array.from(grad), [0.6 - 1, 0, -0.2 - 1], 1e-6);
});

test("approx-KL, reference KL, entropy and explained variance", () => {
  close(approxKl(0), 0);
  close(approxKl(Math.log(2)), 1 - Math.log(2), 1e-12);
  close(approxKl(Math.log(0.5)), -0.5 + Math.log(2), 1e-12);
  for (const x of [-3, -0.1, 0.2, 2]) assert.ok(approxKl(x) > 0 && refKlK3(-1, -1 + x) > 0);
  close(refKlK3(-1, -1), 0);
  const kl = tf.tidy(() => ({
    approx: approxKlTensor(tf.tensor1d([Math.log(2), -0.3])).dataSync(),
    ref: refKlK3Tensor(tf.tensor1d([-1, -2]), tf.tensor1d([-1.5, -0.5])).dataSync(),
  }));
  closeAll(Array.from(kl.approx), [approxKl(Math.log(2)), approxKl(-0.3)], 1e-6);
  closeAll(Array.from(kl.ref), [refKlK3(-1, -1.5), refKlK3(-2, -0.5)], 1e-6);

  close(entropy([0, 0, 0, 0]), Math.log(4), 1e-12);
  close(entropy([1000, 0, 0]), 0, 1e-12);
  const p = [0.7, 0.2, 0.1];
  close(entropy(p.map(Math.log)), -p.reduce((a, x) => a + x * Math.log(x), 0), 1e-12);

  close(explainedVariance([1, 2, 3], [1, 2, 3]), 1, 1e-12);
  close(explainedVariance([5, 5, 5], [1, 2, 3]), 0, 1e-12);
  // Residuals [0.5, −0.5, 0.5, −0.5]: variance 0.25 against the returns' 1.25.
  close(explainedVariance([0.5, 2.5, 2.5, 4.5], [1, 2, 3, 4]), 1 - 0.25 / 1.25, 1e-12);
  assert.ok(Number.isNaN(explainedVariance([0, 1], [2, 2])));
});

const backend = BACKENDS[BACKENDS.length - 1];
const enc = (s: string) => tokenizer.encode(s);
const prompt = [1, ...enc("1+1=")];
const responses = [enc("2"), enc("3"), enc("22"), enc("4 ")];
const rewards = [1, 0, 0.1, 0];

/** Rollouts whose reference is the model as it is (so the KL penalty starts at 0). */
function rolloutsFor(model: ReturnType<typeof tinyModel>) {
  const ref = responseLogProbs(
    model,
    responses.map((response) => ({ prompt, response })),
  ).perToken;
  return responses.map((response, i) => ({ prompt, response, refLogProbs: ref[i], reward: rewards[i] }));
}

test(`${backend}: the entropy statistic is the next-token distribution's entropy`, async () => {
  await useBackend(backend);
  const model = tinyModel(40);
  const response = enc("12");
  const scored = responseLogProbs(model, [{ prompt, response }], 16, { entropy: true }).entropy?.[0] ?? [];
  const logits = tf.tidy(() =>
    model
      .forward(tf.tensor2d([[...prompt, response[0]]], [1, prompt.length + 1], "int32"))
      .logits.arraySync(),
  );
  // Response token i is drawn at position prompt.length − 1 + i.
  close(scored[0], entropy(logits[0][prompt.length - 1]), 1e-4);
  close(scored[1], entropy(logits[0][prompt.length]), 1e-4);
  model.dispose();
});

test(`${backend}: PPO epochs over one fixed batch move the ratio off 1 until the clip acts`, async () => {
  await useBackend(backend);
  // Attention dropout on in the config: the PPO passes must still run without it.
  const model = tinyModel(41, { attention_dropout: 0.5 });
  const trainer = new PpoTrainer(model, {
    schedule: { kind: "constant", peak: 2e-2 },
    ppoEpochs: 4,
    seed: 3,
  });
  assert.ok(model.hasValueHead);
  const batch = trainer.prepare(rolloutsFor(model));
  const again = preparePpoBatch(model, rolloutsFor(model));
  assert.deepEqual(again.oldLogProbs, batch.oldLogProbs, "preparing is deterministic: no dropout");
  const oldLogProbs = structuredClone(batch.oldLogProbs);
  const advantages = structuredClone(batch.advantages);
  assert.equal(batch.stats.rollouts, 4);
  close(batch.stats.meanReward, 0.275, 1e-12);
  close(batch.stats.refKl, 0, 1e-4);

  const update = trainer.update(batch);
  assert.equal(update.steps.length, 4);
  assert.equal(update.skipped, 0);
  const [first, ...later] = update.steps;
  // Step 1 runs on the weights the batch was prepared with: ratio 1 at every token.
  assert.ok(first.approxKl < 1e-6, `first approx-KL ${first.approxKl}`);
  assert.equal(first.clipFraction, 0);
  assert.ok(Math.abs(first.policyLoss) < 1e-5, "whitened advantages average to 0 at ratio 1");
  assert.ok(
    later.every((s) => s.approxKl > 1e-4),
    `later approx-KL ${later.map((s) => s.approxKl)}`,
  );
  assert.ok(
    later.some((s) => s.clipFraction > 0),
    `clip fractions ${later.map((s) => s.clipFraction)}`,
  );
  for (const s of update.steps) {
    assert.equal(s.skipped, false);
    assert.ok(Number.isFinite(s.valueLoss) && s.valueLoss >= 0);
    assert.ok(s.entropy > 0 && s.entropy <= Math.log(tokenizer.vocabSize) + 1e-4);
    close(s.meanReward, 0.275, 1e-12);
    assert.equal(s.tokens, 6);
  }
  assert.ok(Number.isFinite(later[2].explainedVariance));
  assert.deepEqual(batch.oldLogProbs, oldLogProbs, "the batch stays fixed through its epochs");
  assert.deepEqual(batch.advantages, advantages);
  const now = responseLogProbs(
    model,
    responses.map((response) => ({ prompt, response })),
  ).perToken;
  assert.ok(maxAbsDiff(now.flat(), oldLogProbs.flat()) > 1e-2, "the weights moved");
  // The rewarded answer gained against the unrewarded one it shares the prompt with.
  assert.ok(now[0][0] - now[1][0] > oldLogProbs[0][0] - oldLogProbs[1][0]);

  const before = numTensors();
  trainer.train(rolloutsFor(model));
  assert.equal(numTensors(), before, "a whole update leaves no tensors behind");
  trainer.dispose();
  model.dispose();
});

test(`${backend}: a step whose gradient is not finite is skipped, counted, and changes nothing`, async () => {
  await useBackend(backend);
  const model = tinyModel(42);
  const trainer = new PpoTrainer(model, {
    schedule: { kind: "constant", peak: 1e-2 },
    ppoEpochs: 1,
    minibatchSize: 1,
  });
  const batch = trainer.prepare(rolloutsFor(model));
  batch.advantages[1][0] = Number.NaN;
  const weights = model.getWeights();
  const bad = trainer.stepOn(batch, [1]);
  assert.equal(bad.skipped, true);
  assert.equal(trainer.skippedSteps, 1);
  assert.equal(trainer.step, 0);
  assert.equal(trainer.trainer.optimizer.t, 0);
  for (const [name, w] of model.getWeights()) assert.deepEqual(w.data, weights.get(name)!.data, name);
  const good = trainer.stepOn(batch, [0]);
  assert.equal(good.skipped, false);
  assert.equal(trainer.step, 1);
  // A whole update: only the minibatch holding the bad rollout is skipped.
  const update = trainer.update(batch);
  assert.equal(update.steps.length, 4);
  assert.equal(update.skipped, 1);
  assert.equal(trainer.skippedSteps, 2);
  assert.equal(trainer.step, 4);
  trainer.dispose();
  model.dispose();
});

test(`${backend}: GRPO trains without a critic on group-normalised rewards`, async () => {
  await useBackend(backend);
  const model = tinyModel(43);
  const trainer = new PpoTrainer(model, {
    schedule: { kind: "constant", peak: 2e-2 },
    algorithm: "grpo",
    ppoEpochs: 3,
  });
  assert.equal(model.hasValueHead, false);
  const rollouts = rolloutsFor(model);
  // Two questions of two samples each: the group key, not the prompt ids, decides.
  const grouped = rollouts.map((r, i) => ({ ...r, group: i < 2 ? "q1" : "q2" }));
  const batch = trainer.prepare(grouped);
  assert.equal(batch.oldValues, null);
  closeAll(
    batch.advantages.map((a) => a[0]),
    [1, -1, 1, -1],
    1e-4,
  );
  assert.deepEqual(batch.advantages[2], [batch.advantages[2][0], batch.advantages[2][0]]);
  const update = trainer.update(batch);
  for (const s of update.steps) {
    assert.equal(s.valueLoss, 0);
    assert.ok(Number.isNaN(s.explainedVariance));
  }
  assert.ok(update.steps[2].approxKl > 0);
  assert.ok(update.steps[2].refKl !== 0, "the policy has left the reference");
  assert.equal(model.hasValueHead, false);
  const now = responseLogProbs(
    model,
    responses.map((response) => ({ prompt, response })),
  ).perToken;
  assert.ok(now[0][0] - now[1][0] > batch.oldLogProbs[0][0] - batch.oldLogProbs[1][0]);
  trainer.dispose();
  model.dispose();
});

test(`${backend}: micro-batches give the minibatch's step, statistics included`, async () => {
  await useBackend(backend);
  const run = (microBatchSize: number) => {
    const model = tinyModel(45);
    const trainer = new PpoTrainer(model, {
      schedule: { kind: "constant", peak: 1e-2 },
      microBatchSize,
      seed: 9,
    });
    const update = trainer.train(rolloutsFor(model));
    const weights = model.getWeights();
    trainer.dispose();
    model.dispose();
    return { update, weights };
  };
  const whole = run(0);
  const micro = run(1);
  assert.equal(micro.update.steps.length, 2);
  whole.update.steps.forEach((w, k) => {
    const m = micro.update.steps[k];
    for (const key of [
      "loss",
      "policyLoss",
      "valueLoss",
      "clipFraction",
      "approxKl",
      "entropy",
      "refKl",
    ] as const)
      close(m[key], w[key], 1e-5);
    close(m.explainedVariance, w.explainedVariance, 1e-3);
  });
  // Float32 sums in another order, scaled up by Adam where a gradient is near 0; a real
  // difference would be of the order of the learning rate.
  for (const [name, w] of whole.weights)
    assert.ok(maxAbsDiff(w.data, micro.weights.get(name)!.data) < 1e-4, name);
});

test("PpoTrainer state resumes the minibatch order and the skip count", () => {
  const model = tinyModel(46);
  const opts = { schedule: { kind: "constant" as const, peak: 1e-3 }, minibatchSize: 2, seed: 4 };
  const a = new PpoTrainer(model, opts);
  const batch = preparePpoBatch(model, rolloutsFor(model));
  a.plan(batch);
  a.skippedSteps = 3;
  const saved = a.state();
  const next = a.plan(batch);
  const b = new PpoTrainer(model, opts);
  assert.notDeepEqual(b.plan(batch), next, "a fresh trainer starts the order over");
  b.loadState(saved);
  assert.deepEqual(b.plan(batch), next);
  assert.equal(b.skippedSteps, 3);
  assert.equal(next.length, 4);
  assert.deepEqual(next.slice(0, 2).flat().sort(), [0, 1, 2, 3], "an epoch covers every rollout once");
  a.dispose();
  b.dispose();
  model.dispose();
});

test("negativeAdvantageScale scales only the advantages below zero, in GRPO and PPO", () => {
  const model = tinyModel(47);
  const grouped = rolloutsFor(model).map((r, i) => ({ ...r, group: i < 2 ? "q1" : "q2" }));
  const plain = preparePpoBatch(model, grouped, { algorithm: "grpo" });
  const half = preparePpoBatch(model, grouped, { algorithm: "grpo", hyper: { negativeAdvantageScale: 0.5 } });
  const none = preparePpoBatch(model, grouped, { algorithm: "grpo", hyper: { negativeAdvantageScale: 0 } });
  closeAll(
    plain.advantages.map((a) => a[0]),
    [1, -1, 1, -1],
    1e-4,
  );
  closeAll(
    half.advantages.flat(),
    plain.advantages.flat().map((a) => (a < 0 ? a / 2 : a)),
    1e-12,
  );
  closeAll(
    none.advantages.flat(),
    plain.advantages.flat().map((a) => Math.max(0, a)),
    1e-12,
  );
  // PPO: after whitening, so the scale acts on the advantages the step sees.
  const ppo = preparePpoBatch(model, rolloutsFor(model));
  const ppoNone = preparePpoBatch(model, rolloutsFor(model), { hyper: { negativeAdvantageScale: 0 } });
  assert.ok(ppo.advantages.flat().some((a) => a < 0));
  closeAll(
    ppoNone.advantages.flat(),
    ppo.advantages.flat().map((a) => Math.max(0, a)),
    1e-12,
  );
  model.dispose();
});

test("preparePpoBatch names the rollout that is malformed", () => {
  const model = tinyModel(44);
  const ok = { prompt, response: enc("2"), refLogProbs: [-1], reward: 1 };
  assert.throws(() => preparePpoBatch(model, []), /no rollouts/);
  assert.throws(
    () => preparePpoBatch(model, [ok, { ...ok, response: [] }]),
    /rollout 1 has an empty response/,
  );
  assert.throws(
    () => preparePpoBatch(model, [{ ...ok, refLogProbs: [-1, -2] }]),
    /rollout 0 has 1 response tokens but 2 reference/,
  );
  assert.throws(
    () => preparePpoBatch(model, [ok, ok, { ...ok, reward: Number.NaN }]),
    /rollout 2 has reward NaN/,
  );
  model.dispose();
});

test(`${backend}: GRPO with no KL and no entropy term trains (the loss is then the policy-loss stat itself)`, async () => {
  await useBackend(backend);
  const model = tinyModel(44);
  const trainer = new PpoTrainer(model, {
    schedule: { kind: "constant", peak: 2e-2 },
    algorithm: "grpo",
    hyper: { klCoef: 0, entropyCoef: 0 },
  });
  const rollouts = rolloutsFor(model).map((r, i) => ({ ...r, group: i < 2 ? "q1" : "q2" }));
  const update = trainer.train(rollouts);
  assert.equal(update.skipped, 0);
  for (const s of update.steps) {
    assert.ok(Number.isFinite(s.policyLoss));
    assert.equal(s.loss, s.policyLoss, "no other term in the loss");
  }
  assert.ok(update.steps[1].approxKl > 0, "the second step sees the first one's change");
  trainer.dispose();
  model.dispose();
});
