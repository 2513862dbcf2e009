// The trainer's training loops beyond a plain schedule: a moving average of the weights that
// replaces them at the end of a stage (`averageDecay`), and SFT that goes on past its schedule while
// a dev score rises, keeping the best-scored weights (`train.sft.untilDevPlateau`).
import assert from "node:assert/strict";
import { test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import type { Policy } from "../../actors/policy.ts";
import { directPreference, supervisedFineTune } from "../../actors/trainer/loops.ts";
import type { Llama } from "../../model/llama.ts";
import { WeightAverage } from "../../model/optim.ts";
import { maxAbsDiff, numTensors, tinyModel, tokenizer, useBackend } from "../model/helpers.ts";

const examples = [
  { prompt: "1+2=", response: "3" },
  { prompt: "2+2=", response: "4" },
  { prompt: "ab", response: "cdef" },
  { prompt: "hg", response: "fedc" },
];
const optim = { steps: 6, batchSize: 2, learningRate: 1e-2, warmupSteps: 0, weightDecay: 0, gradClip: 1 };

const flat = (model: Llama) => [...model.getWeights().values()].flatMap((w) => Array.from(w.data));
const policyOf = (seed: number): Policy => ({ version: 0, model: tinyModel(seed), tokenizer });

/** The exponential moving average of a trajectory of flattened weights, as the class defines it. */
function emaOf(trajectory: number[][], decay: number): number[] {
  let a = trajectory[0];
  for (const w of trajectory.slice(1)) a = a.map((x, i) => decay * x + (1 - decay) * w[i]);
  return a;
}

test("WeightAverage: the parameters become the moving average of their trajectory, and nothing leaks", async () => {
  await useBackend("cpu");
  const p = tf.variable(tf.tensor1d([1, 2]), true);
  const params = new Map([["w", p]]);
  const before = numTensors();
  const average = new WeightAverage(params, 0.5);
  for (const values of [
    [3, 2],
    [5, 6],
  ]) {
    tf.tidy(() => p.assign(tf.tensor1d(values)));
    average.update();
  }
  average.apply();
  // a = 0.5·(0.5·[1,2] + 0.5·[3,2]) + 0.5·[5,6] = [3.5, 4]
  assert.deepEqual(Array.from(p.dataSync()), [3.5, 4]);
  assert.equal(numTensors(), before);
  assert.throws(() => new WeightAverage(params, 1), /decay must be in \(0, 1\)/);
  p.dispose();
});

test("SFT with averageDecay ends on the moving average of its steps' weights", async () => {
  await useBackend("cpu");
  const decay = 0.7;
  const policy = policyOf(3);
  const trajectory = [flat(policy.model)];
  await supervisedFineTune(policy, examples, { ...optim, averageDecay: decay }, 11, () => {
    trajectory.push(flat(policy.model));
  });
  const last = trajectory[trajectory.length - 1];
  const averaged = flat(policy.model);
  assert.ok(maxAbsDiff(averaged, emaOf(trajectory, decay)) < 1e-5);
  assert.ok(maxAbsDiff(averaged, last) > 1e-4, "the average is not the last step's weights");
  policy.model.dispose();
});

test("DPO with averageDecay ends on the moving average of its steps' weights", async () => {
  await useBackend("cpu");
  const decay = 0.6;
  const policy = policyOf(4);
  const enc = (s: string) => tokenizer.encode(s);
  const pairs = [
    {
      prompt: [1, ...enc("1+2=")],
      chosen: [...enc("3"), 2],
      rejected: [...enc("4"), 2],
      refChosen: -3,
      refRejected: -3,
    },
    {
      prompt: [1, ...enc("ab")],
      chosen: [...enc("cd"), 2],
      rejected: [...enc("dc"), 2],
      refChosen: -5,
      refRejected: -5,
    },
  ];
  const trajectory = [flat(policy.model)];
  await directPreference(policy, pairs, { ...optim, steps: 5, averageDecay: decay }, 0.1, 5, () => {
    trajectory.push(flat(policy.model));
  });
  assert.ok(maxAbsDiff(flat(policy.model), emaOf(trajectory, decay)) < 1e-5);
  policy.model.dispose();
});

test("untilDevPlateau: SFT goes on past its schedule while the dev score rises and keeps the best weights", async () => {
  await useBackend("cpu");
  const policy = policyOf(5);
  const scripted = [0.5, 0.6, 0.8, 0.7, 0.9];
  const seen: number[][] = [];
  const summary = await supervisedFineTune(policy, examples, optim, 11, () => {}, "plain", {
    every: 2,
    maxSteps: 8,
    score: (p) => {
      seen.push(flat(p.model));
      return scripted[seen.length - 1];
    },
  });
  // Scored at steps 6, 8, 10, 12: 0.5, 0.6, 0.8, then 0.7 stops it; the step-10 weights are kept.
  assert.deepEqual(summary.devCurve, [
    { step: 6, score: 0.5 },
    { step: 8, score: 0.6 },
    { step: 10, score: 0.8 },
    { step: 12, score: 0.7 },
  ]);
  assert.equal(summary.keptStep, 10);
  assert.equal(summary.steps, 12);
  assert.ok(maxAbsDiff(flat(policy.model), seen[2]) === 0);
  assert.ok(maxAbsDiff(seen[3], seen[2]) > 1e-4, "training went on after the best point");
  policy.model.dispose();
});

test("untilDevPlateau stops at maxSteps while the score still rises, keeping the last weights", async () => {
  await useBackend("cpu");
  const policy = policyOf(6);
  let calls = 0;
  const summary = await supervisedFineTune(policy, examples, optim, 11, () => {}, "plain", {
    every: 3,
    maxSteps: 4,
    score: () => ++calls / 10,
  });
  // Steps 6, then 3 more (9), then the 1 left of maxSteps (10).
  assert.deepEqual(
    summary.devCurve?.map((p) => p.step),
    [6, 9, 10],
  );
  assert.equal(summary.keptStep, 10);
  policy.model.dispose();
});
