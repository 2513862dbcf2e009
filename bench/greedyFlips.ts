// How fragile are a model's greedy answers? Each iteration of the self-rewarding demo changes a
// tenth or more of the held-out greedy answers, both ways, and that churn sets the floor of each
// seed's paired interval. This bench asks how much of it any change of the weights would cause:
// it perturbs every weight by relative Gaussian noise of a few sizes (w · (1 + ε·z)), far smaller
// than a DPO iteration's change, and counts the greedy answers that change, right to wrong and
// wrong to right. Answers that flip under noise sit on a near-tie between two tokens; no learner
// can hold them, so a gain must be larger than the churn they cause.
//
//   node --import tsx bench/greedyFlips.ts --m1 runs/demo/checkpoints/M1 [--prompts 1000]
//     [--eps 1e-4,1e-3,1e-2] [--against runs/demo/checkpoints/M2] [--set data.seed=8 ...]
//
// `--against` adds the same counts between the model and another checkpoint (an M2, say), on
// more prompts than the dev split holds. Prompts are fresh draws from the task families, the
// config's held-out prompts left out (pass the run's data settings with --set). Prints a table,
// then one JSON line.
import { parseArgs } from "node:util";
import { type Policy, samplePolicy } from "../actors/policy.ts";
import { parseAssignments } from "../cli/options.ts";
import { loadConfig } from "../config/load.ts";
import { selectBackend } from "../model/backend.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import type { HostTensor } from "../model/llama.ts";
import { freshPrompts } from "../tasks/fromConfig.ts";
import { makeRng, trueScore, wilson } from "../tasks/index.ts";

const { values: opt } = parseArgs({
  options: {
    m1: { type: "string" },
    against: { type: "string" },
    prompts: { type: "string", default: "1000" },
    eps: { type: "string", default: "1e-4,1e-3,1e-2" },
    seed: { type: "string", default: "202" },
    preset: { type: "string", default: "demo" },
    set: { type: "string", multiple: true, default: [] },
  },
});
if (!opt.m1) throw new Error("greedyFlips: --m1 DIR (a checkpoint folder) is required");
const epsilons = (opt.eps ?? "").split(",").map((s) => {
  const e = Number(s);
  if (!Number.isFinite(e) || e < 0)
    throw new Error(`greedyFlips: --eps must be non-negative numbers, got "${s}"`);
  return e;
});
await selectBackend("auto", { info() {} });
const cfg = loadConfig({ preset: opt.preset, env: {}, flags: parseAssignments(opt.set ?? []) });
const started = performance.now();

const prompts = freshPrompts(cfg, Number(opt.prompts), Number(opt.seed));
const greedy = (policy: Policy): string[] =>
  samplePolicy(policy, prompts, 1, {
    temperature: 0,
    topP: 1,
    topK: 0,
    maxNewTokens: cfg.selfReward.maxNewTokens,
    seed: 0,
  }).map((p) => p.samples[0].text);
const rightOf = (answers: string[]) => answers.map((a, i) => trueScore(prompts[i], a).score === 5);

const { model, tokenizer } = loadCheckpoint(opt.m1);
const policy: Policy = { version: 1, model, tokenizer };
const base = greedy(policy);
const baseRight = rightOf(base);

interface Flips {
  label: string;
  changed: number;
  rightToWrong: number;
  wrongToRight: number;
  accuracy: number;
}
function compare(label: string, answers: string[]): Flips {
  const right = rightOf(answers);
  let changed = 0;
  let rightToWrong = 0;
  let wrongToRight = 0;
  answers.forEach((a, i) => {
    if (a !== base[i]) changed++;
    if (baseRight[i] && !right[i]) rightToWrong++;
    if (!baseRight[i] && right[i]) wrongToRight++;
  });
  return {
    label,
    changed,
    rightToWrong,
    wrongToRight,
    accuracy: right.filter(Boolean).length / prompts.length,
  };
}

const original = model.getWeights();
const copy = new Map<string, HostTensor>();
for (const [name, w] of original) copy.set(name, { shape: w.shape, data: Float32Array.from(w.data) });
const rows: Flips[] = [];
for (const eps of epsilons) {
  const noise = makeRng(Number(opt.seed) + 1);
  // Box-Muller: a standard normal from two uniforms.
  const normal = () => Math.sqrt(-2 * Math.log(1 - noise.next())) * Math.cos(2 * Math.PI * noise.next());
  const perturbed = new Map<string, HostTensor>();
  for (const [name, w] of copy) {
    const data = new Float32Array(w.data.length);
    for (let i = 0; i < data.length; i++) data[i] = w.data[i] * (1 + eps * normal());
    perturbed.set(name, { shape: w.shape, data });
  }
  model.setWeights(perturbed);
  rows.push(compare(`noise ε ${eps}`, greedy(policy)));
}
model.setWeights(copy);
if (opt.against) {
  const other = loadCheckpoint(opt.against);
  // The other model's distance from this one, in the units of the noise above: ‖W' − W‖ / ‖W‖.
  let diff = 0;
  let norm = 0;
  for (const [name, w] of other.model.getWeights()) {
    const mine = copy.get(name);
    if (!mine) throw new Error(`greedyFlips: ${opt.against} has a weight "${name}" that ${opt.m1} lacks`);
    for (let i = 0; i < w.data.length; i++) {
      diff += (w.data[i] - mine.data[i]) ** 2;
      norm += mine.data[i] ** 2;
    }
  }
  rows.push(
    compare(
      `${opt.against} (relative change ${Math.sqrt(diff / norm).toExponential(1)})`,
      greedy({ version: 2, ...other }),
    ),
  );
}

const n = prompts.length;
const pct = (k: number) => {
  const [lo, hi] = wilson(k, n);
  return `${((100 * k) / n).toFixed(1)}% (${(100 * lo).toFixed(1)}-${(100 * hi).toFixed(1)})`;
};
console.log(
  `${n} fresh prompts; the model's greedy accuracy ${((100 * baseRight.filter(Boolean).length) / n).toFixed(1)}%`,
);
// The accuracy change, paired by prompt: each prompt's difference is −1, 0 or +1.
const gain = (r: Flips) => {
  const d = (r.wrongToRight - r.rightToWrong) / n;
  const half = 1.96 * Math.sqrt(Math.max(0, (r.wrongToRight + r.rightToWrong) / n - d * d) / n);
  const f = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}`;
  return `${f(d)} (${f(d - half)} to ${f(d + half)})`;
};
console.log("| change | answers changed | right → wrong | wrong → right | accuracy | gain (paired 95% CI) |");
console.log("| --- | --- | --- | --- | --- | --- |");
for (const r of rows)
  console.log(
    `| ${r.label} | ${pct(r.changed)} | ${pct(r.rightToWrong)} | ${pct(r.wrongToRight)} | ${(100 * r.accuracy).toFixed(1)}% | ${gain(r)} |`,
  );
console.log(`${((performance.now() - started) / 1000).toFixed(0)} s`);
console.log(JSON.stringify({ bench: "greedyFlips", m1: opt.m1, prompts: n, rows }));
