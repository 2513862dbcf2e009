// What a ReFT checkpoint gets wrong on the synthetic word problems: greedy Top-1 on dev and on
// training problems (how much of the training set it has memorised), the step where each wrong
// dev solution first leaves the gold chain of thought (arithmetic slip, copied operand, wrong
// operation, the answer line), and how often K samples at temperature 1 hold a right answer for
// the problems greedy gets wrong (the signal an RL reward can reach); and, by solution style (one
// equation per operation, or the whole story in one: tasks/math.ts), how often greedy and sampled
// solutions are written each way and how often each way is right.
//
//   node --import tsx bench/reftErrors.ts --checkpoint OUT/checkpoints/warmup [--preset reft-demo] [--set FIELD=VALUE]
//
// Prints figures, then one JSON line.
import { parseArgs } from "node:util";
import { type Policy, samplePolicy } from "../actors/policy.ts";
import { parseAssignments } from "../cli/options.ts";
import { loadConfig } from "../config/load.ts";
import { selectBackend } from "../model/backend.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import { isCorrect } from "../tasks/inference.ts";
import { countStyles, type MathProblem, type StyleCounts, solutionStyle } from "../tasks/math.ts";
import { reasoningTaskFromConfig } from "../tasks/reasoning.ts";

const { values: opt } = parseArgs({
  options: {
    checkpoint: { type: "string" },
    preset: { type: "string", default: "reft-demo" },
    samples: { type: "string", default: "8" },
    trainProblems: { type: "string", default: "200" },
    set: { type: "string", multiple: true, default: [] },
  },
});
if (!opt.checkpoint) throw new Error("reftErrors: --checkpoint DIR is required");
const overrides = { method: "reft", ...parseAssignments(opt.set ?? []) };
const cfg = loadConfig({ preset: opt.preset, env: {}, flags: overrides });
const backend = await selectBackend(cfg.model.backend, { info() {} });
const task = reasoningTaskFromConfig(cfg);
const { model, tokenizer } = loadCheckpoint(opt.checkpoint);
const policy: Policy = { version: 0, model, tokenizer };
const k = Number(opt.samples);
const maxNewTokens = cfg.reft.maxNewTokens;

const right = (text: string, p: MathProblem) => isCorrect(text, p.answer, { trigger: task.trigger });

function sample(problems: MathProblem[], n: number, temperature: number, seed: number): string[][] {
  const out: string[][] = [];
  for (let i = 0; i < problems.length; i += 32) {
    const batch = problems.slice(i, i + 32).map((p) => p.question);
    const sampling = { temperature, topP: 1, topK: 0, maxNewTokens, seed: seed + i };
    for (const r of samplePolicy(policy, batch, n, sampling, task.format))
      out.push(r.samples.map((s) => s.text));
  }
  return out;
}

/** Where a wrong solution first leaves the gold chain of thought "a op b = c. ... trigger c". */
function firstError(gold: string, got: string): string {
  const g = gold.split(". ");
  const o = got.split(". ");
  let i = 0;
  while (i < g.length && g[i] === o[i]) i++;
  if (i >= g.length - 1) return "answer line";
  const [ge] = (g[i] ?? "").split(" = ");
  const [oe] = (o[i] ?? "").split(" = ");
  if (ge === oe) return "arithmetic";
  return ge.split(" ")[1] === oe.split(" ")[1] ? "operand" : "operation";
}

const dev = task.dev;
const train = task.train.slice(0, Number(opt.trainProblems));
const greedyDev = sample(dev, 1, 0, 1).map((s) => s[0]);
const greedyTrain = sample(train, 1, 0, 1).map((s) => s[0]);
const devTop1 = greedyDev.filter((t, i) => right(t, dev[i])).length / dev.length;
const trainTop1 = greedyTrain.filter((t, i) => right(t, train[i])).length / train.length;
const wrong = dev.filter((p, i) => !right(greedyDev[i], p));
const kinds: Record<string, number> = {};
dev.forEach((p, i) => {
  if (right(greedyDev[i], p)) return;
  // Steps compare only within one style (data.math.terseShare writes some gold solutions terse).
  const kind =
    solutionStyle(greedyDev[i]) === solutionStyle(p.cot) ? firstError(p.cot, greedyDev[i]) : "other style";
  kinds[kind] = (kinds[kind] ?? 0) + 1;
});
const samples = sample(wrong, k, 1, 7);
const reached =
  samples.filter((s, i) => s.some((t) => right(t, wrong[i]))).length / Math.max(1, wrong.length);
const sampleShare =
  samples.reduce((a, s, i) => a + s.filter((t) => right(t, wrong[i])).length / k, 0) /
  Math.max(1, wrong.length);

const greedyStyles = countStyles(
  greedyDev,
  greedyDev.map((t, i) => right(t, dev[i])),
);
const devSamples = sample(dev, k, 1, 11);
const sampledStyles = countStyles(
  devSamples.flat(),
  devSamples.flatMap((s, i) => s.map((t) => right(t, dev[i]))),
);

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const styleLine = (label: string, counts: StyleCounts) =>
  `${label}: ` +
  (["worked", "terse", "none"] as const)
    .map((style) => {
      const c = counts[style];
      return `${style} ${c.n} (${c.n ? pct(c.right / c.n) : "-"} right)`;
    })
    .join(", ");
process.stdout.write(
  `greedy Top-1: dev ${pct(devTop1)} (n ${dev.length}), training problems ${pct(trainTop1)} (n ${train.length})\n` +
    `first wrong step of the ${wrong.length} dev failures: ${JSON.stringify(kinds)}\n` +
    `of those failures, ${k} samples at temperature 1 hold a right answer for ${pct(reached)}; ` +
    `${pct(sampleShare)} of the samples are right\n` +
    `${styleLine("dev greedy solutions by style", greedyStyles)}\n` +
    `${styleLine(`dev samples at temperature 1 (${k} each) by style`, sampledStyles)}\n`,
);
process.stdout.write(
  `${JSON.stringify({
    bench: "reftErrors",
    backend: backend.name,
    checkpoint: opt.checkpoint,
    devTop1,
    trainTop1,
    devFailures: wrong.length,
    firstError: kinds,
    k,
    failuresReachedAtK: reached,
    failureSampleShare: sampleShare,
    greedyStyles,
    sampledStyles,
  })}\n`,
);
