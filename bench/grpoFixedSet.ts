// A sanity check of GRPO on a checkpoint: repeated updates on one fixed set of training questions
// must raise the share of right rollouts on exactly those questions. If it does not, the objective
// (sign, masking, advantages) is wrong; if it does while the loop's dev accuracy falls, what fails
// is transfer to other questions, not the update. With --perUpdate under --questions, each update
// takes the next questions of the set in turn, so the set is passed over several times; with
// --evalEvery, greedy accuracy on the first --evalQuestions dev problems is measured every so many
// updates, which says whether what the updates teach carries to questions they never see.
// --offset N starts the set at training question N: with data.math.trainSize raised past the
// checkpoint's (`--set`), the set is questions of the same distribution the checkpoint was never
// trained on (the training split is drawn from its own stream, so a larger one begins with the
// smaller one's questions).
//
//   node --import tsx bench/grpoFixedSet.ts --checkpoint OUT/checkpoints/warmup [--lr 1e-4]
//     [--questions 16] [--perUpdate Q] [--samples 8] [--updates 20] [--ppoEpochs 2]
//     [--evalEvery 0] [--evalQuestions 100] [--preset reft-demo] [--offset 0] [--set field=value]
//
// No KL term (there is no reference to stay near in a check of the update itself). Prints one line
// per update, then one JSON line.
import { parseArgs } from "node:util";
import { type Policy, samplePolicy } from "../actors/policy.ts";
import { parseAssignments } from "../cli/options.ts";
import { loadConfig } from "../config/load.ts";
import { selectBackend } from "../model/backend.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import type { PpoRollout } from "../model/ppoBatch.ts";
import { PpoTrainer } from "../model/ppoTrainer.ts";
import { isCorrect } from "../tasks/inference.ts";
import { reasoningTaskFromConfig } from "../tasks/reasoning.ts";
import { reftReward } from "../tasks/reward.ts";
import { greedyAccuracy } from "./greedyAccuracy.ts";

const { values: opt } = parseArgs({
  options: {
    checkpoint: { type: "string" },
    preset: { type: "string", default: "reft-demo" },
    lr: { type: "string", default: "1e-4" },
    questions: { type: "string", default: "16" },
    samples: { type: "string", default: "8" },
    updates: { type: "string", default: "20" },
    perUpdate: { type: "string" },
    ppoEpochs: { type: "string" },
    evalEvery: { type: "string", default: "0" },
    evalQuestions: { type: "string", default: "100" },
    offset: { type: "string", default: "0" },
    set: { type: "string", multiple: true, default: [] },
  },
});
if (!opt.checkpoint) throw new Error("grpoFixedSet: --checkpoint DIR is required");
const cfg = loadConfig({
  preset: opt.preset,
  env: {},
  flags: { method: "reft", ...parseAssignments(opt.set ?? []) },
});
const backend = await selectBackend(cfg.model.backend, { info() {} });
const task = reasoningTaskFromConfig(cfg);
const { model, tokenizer } = loadCheckpoint(opt.checkpoint);
const policy: Policy = { version: 0, model, tokenizer };
const offset = Number(opt.offset);
const questionSet = task.train.slice(offset, offset + Number(opt.questions));
if (questionSet.length < Number(opt.questions))
  throw new Error(
    `grpoFixedSet: --offset ${offset} --questions ${opt.questions} needs ${offset + Number(opt.questions)} training questions, ` +
      `the config has ${task.train.length} (raise data.math.trainSize with --set)`,
  );
const perUpdate = Number(opt.perUpdate ?? questionSet.length);
if (!(perUpdate >= 1 && perUpdate <= questionSet.length))
  throw new Error(`grpoFixedSet: --perUpdate must be 1..${questionSet.length} (got ${opt.perUpdate})`);
const k = Number(opt.samples);
const answerOptions = { trigger: task.trigger };
const evalEvery = Number(opt.evalEvery);
const devProblems = task.dev.slice(0, Number(opt.evalQuestions));

/** Greedy Top-1 on the dev problems. */
function devAccuracy(): number {
  const opts = { maxNewTokens: cfg.reft.maxNewTokens, trigger: task.trigger, format: task.format };
  return greedyAccuracy(policy, devProblems, opts).accuracy;
}

const ppo = new PpoTrainer(model, {
  algorithm: "grpo",
  ppoEpochs: Number(opt.ppoEpochs ?? cfg.reft.ppoEpochs),
  minibatchSize: cfg.reft.minibatchSize,
  hyper: { klCoef: 0 },
  schedule: { kind: "constant", peak: Number(opt.lr), warmupSteps: 0 },
  maxGradNorm: cfg.reft.gradClip,
  seed: 1,
});

const correctShares: number[] = [];
const devCurve: { update: number; accuracy: number }[] = [];
const measureDev = (update: number) => {
  const accuracy = devAccuracy();
  devCurve.push({ update, accuracy });
  process.stdout.write(`after ${update} updates: dev greedy ${(100 * accuracy).toFixed(1)}%\n`);
};
if (evalEvery > 0) measureDev(0);
for (let u = 0; u < Number(opt.updates); u++) {
  const start = (u * perUpdate) % questionSet.length;
  const questions = [...questionSet, ...questionSet].slice(start, start + perUpdate);
  const sampling = { temperature: 1, topP: 1, topK: 0, maxNewTokens: cfg.reft.maxNewTokens, seed: 100 + u };
  const sampled = samplePolicy(
    policy,
    questions.map((q) => q.question),
    k,
    sampling,
    task.format,
  );
  const rollouts: PpoRollout[] = [];
  let right = 0;
  sampled.forEach((p, i) => {
    for (const s of p.samples) {
      if (isCorrect(s.text, questions[i].answer, answerOptions)) right++;
      rollouts.push({
        prompt: Array.from(p.promptTokens),
        response: Array.from(s.tokens),
        // No KL term, so the reference only has to be finite: the behaviour log-probs serve.
        refLogProbs: Array.from(s.logProbs),
        reward: reftReward(s.text, questions[i].answer, answerOptions),
        group: questions[i].question,
      });
    }
  });
  const share = right / rollouts.length;
  correctShares.push(share);
  const update = ppo.train(rollouts.filter((r) => r.response.length > 0));
  const approxKl = Math.max(...update.steps.map((s) => s.approxKl));
  process.stdout.write(
    `update ${u}: right ${(100 * share).toFixed(1)}%, largest approx-KL ${approxKl.toExponential(1)}\n`,
  );
  if (evalEvery > 0 && (u + 1) % evalEvery === 0) measureDev(u + 1);
}
process.stdout.write(
  `${JSON.stringify({ bench: "grpoFixedSet", backend: backend.name, lr: Number(opt.lr), offset, questions: questionSet.length, perUpdate, k, correctShares, devCurve })}\n`,
);
