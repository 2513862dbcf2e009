// Where ReFT's SFT baseline ends up, and how it gets there: the loop's own SFT stage (the same
// examples, optimizer, schedule and seed as actors/trainer/reft.ts) from a given M0, with greedy
// Top-1 on dev problems every few steps, and beside it the same for an exponential moving average
// of the weights. A baseline that swings between machines may do so at the end of training (the
// curve wobbles from one evaluation to the next, and an average of the weights steadies it) or
// along the whole way (the curves of two machines part early and stay apart); this tells which.
//
//   node --import tsx bench/sftCurve.ts --m0 OUT/checkpoints/M0 [--preset reft-demo] [--set k=v]
//     [--epochs E] [--evalEvery 125] [--evalQuestions 200] [--ema 0.99] [--save DIR]
//
// --epochs defaults to reft.sftEpochs. --save writes the last weights to DIR/last and the average
// to DIR/ema. Prints one line per evaluation, then one JSON line.
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Policy } from "../actors/policy.ts";
import { supervisedFineTune } from "../actors/trainer/loops.ts";
import { parseAssignments } from "../cli/options.ts";
import { loadConfig } from "../config/load.ts";
import { selectBackend } from "../model/backend.ts";
import { loadCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import type { HostTensor } from "../model/llama.ts";
import { deriveSeed } from "../tasks/random.ts";
import { reasoningTaskFromConfig } from "../tasks/reasoning.ts";
import { greedyAccuracy } from "./greedyAccuracy.ts";

const { values: opt } = parseArgs({
  options: {
    m0: { type: "string" },
    preset: { type: "string", default: "reft-demo" },
    set: { type: "string", multiple: true, default: [] },
    epochs: { type: "string" },
    evalEvery: { type: "string", default: "125" },
    evalQuestions: { type: "string", default: "200" },
    ema: { type: "string", default: "0" },
    save: { type: "string" },
  },
});
if (!opt.m0) throw new Error("sftCurve: --m0 DIR (a checkpoint, e.g. OUT/checkpoints/M0) is required");
const cfg = loadConfig({
  preset: opt.preset,
  env: {},
  flags: { method: "reft", ...parseAssignments(opt.set ?? []) },
});
const backend = await selectBackend(cfg.model.backend, { info() {} });
const task = reasoningTaskFromConfig(cfg);
const epochs = Number(opt.epochs ?? cfg.reft.sftEpochs);
const evalEvery = Number(opt.evalEvery);
const decay = Number(opt.ema);
if (!(epochs > 0)) throw new Error(`sftCurve: --epochs must be positive (got ${opt.epochs})`);
if (!(evalEvery >= 1)) throw new Error(`sftCurve: --evalEvery must be at least 1 (got ${opt.evalEvery})`);
if (!(decay >= 0 && decay < 1)) throw new Error(`sftCurve: --ema must be in [0, 1) (got ${opt.ema})`);

const { model, tokenizer } = loadCheckpoint(opt.m0);
const policy: Policy = { version: 0, model, tokenizer };
const problems = task.dev.slice(0, Number(opt.evalQuestions));
const greedy = { maxNewTokens: cfg.reft.maxNewTokens, trigger: task.trigger, format: task.format };
const { sft } = cfg.reft;
const steps = Math.ceil((epochs * task.train.length) / sft.batchSize);

// The average lives on the host: the model is small, and the weights are read back once a step.
let average: Map<string, HostTensor> | null = null;
function updateAverage(): void {
  const now = model.getWeights();
  if (!average) {
    average = new Map(
      [...now].map(([name, w]) => [name, { shape: w.shape, data: Float32Array.from(w.data) }]),
    );
    return;
  }
  for (const [name, w] of now) {
    const a = average.get(name)?.data;
    if (!a) throw new Error(`sftCurve: the model gained a weight "${name}" during SFT`);
    for (let i = 0; i < a.length; i++) a[i] = decay * a[i] + (1 - decay) * w.data[i];
  }
}
/** Greedy accuracy of the averaged weights, the trained ones put back afterwards. */
function averageAccuracy(): number {
  if (!average) return Number.NaN;
  const trained = model.getWeights();
  const kept = new Map(
    [...trained].map(([name, w]) => [name, { shape: w.shape, data: Float32Array.from(w.data) }]),
  );
  model.setWeights(average);
  const { accuracy } = greedyAccuracy(policy, problems, greedy);
  model.setWeights(kept);
  return accuracy;
}

interface Point {
  step: number;
  loss: number;
  top1: number;
  emaTop1: number | null;
}
const curve: Point[] = [];
const started = performance.now();
let lossSum = 0;
let lossCount = 0;
const loss = await supervisedFineTune(
  policy,
  task.train.map((p) => ({ prompt: p.question, response: p.cot })),
  { ...sft, steps },
  deriveSeed(cfg.model.seed, `reft.sft.${epochs}`),
  (r) => {
    if (decay > 0) updateAverage();
    lossSum += r.loss;
    lossCount++;
    if (r.step % evalEvery !== 0 && r.step !== r.total) return;
    const point: Point = {
      step: r.step,
      loss: lossSum / lossCount,
      top1: greedyAccuracy(policy, problems, greedy).accuracy,
      emaTop1: decay > 0 ? averageAccuracy() : null,
    };
    lossSum = 0;
    lossCount = 0;
    curve.push(point);
    const t = ((performance.now() - started) / 1000).toFixed(0);
    const ema = point.emaTop1 === null ? "" : `, average ${(100 * point.emaTop1).toFixed(1)}%`;
    process.stdout.write(
      `${t}s step ${r.step}/${r.total}: loss ${point.loss.toFixed(4)}, dev greedy ${(100 * point.top1).toFixed(1)}%${ema}\n`,
    );
  },
  task.format,
);
if (opt.save) {
  saveCheckpoint(join(opt.save, "last"), model, tokenizer);
  if (average) {
    model.setWeights(average);
    saveCheckpoint(join(opt.save, "ema"), model, tokenizer);
  }
}
process.stdout.write(
  `${JSON.stringify({
    bench: "sftCurve",
    preset: opt.preset,
    backend: backend.name,
    openblasCoretype: process.env.OPENBLAS_CORETYPE ?? null,
    m0: opt.m0,
    epochs,
    steps,
    learningRate: sft.learningRate,
    ema: decay,
    n: problems.length,
    loss,
    curve,
    wallSeconds: (performance.now() - started) / 1000,
  })}\n`,
);
