// M0 and M1 in one process, to study why M1's accuracy swings between machines and data seeds:
// pretraining (or a saved M0), then SFT with its loss and gradient-norm curve, and greedy accuracy
// on the dev split during and after SFT. Settings are chosen on dev (`data.devSize`, reserved from
// training); `--heldOut` also scores the held-out set, for reporting only.
//
//   node --import tsx bench/m1Stability.ts --set data.seed=7 --save /tmp/s7     # M0 and M1
//   node --import tsx bench/m1Stability.ts --m0 /tmp/s7/M0 --set train.sft.learningRate=1e-3
//
// Same config layers as `srlm run` (the demo preset, then --set), same training functions as the
// trainer actor (actors/trainer/loops.ts), no NATS. Prints readable lines, then one JSON object.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { quoteGuide } from "../actors/judge/main.ts";
import { completionLogProbs, type Policy, samplePolicy, trainingRow } from "../actors/policy.ts";
import { pretrain, type StepReport, sftMix, supervisedFineTune } from "../actors/trainer/loops.ts";
import { parseAssignments } from "../cli/options.ts";
import { loadConfig } from "../config/load.ts";
import { initModel } from "../model/api.ts";
import { selectBackend } from "../model/backend.ts";
import { loadCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import { sftLoss } from "../model/losses.ts";
import { CharTokenizer } from "../model/tokenizer.ts";
import {
  accuracy,
  buildSeedData,
  DOMAIN_CHARSET,
  deriveSeed,
  type HeldOutItem,
  type JudgeEvalItem,
  judgePrompt,
  makeRng,
  pairwiseAccuracy,
  summariseJudgements,
} from "../tasks/index.ts";
import { syntheticFormat } from "../tasks/synthetic.ts";

const { values: opt } = parseArgs({
  options: {
    preset: { type: "string", default: "demo" },
    set: { type: "string", multiple: true, default: [] },
    // Dev prompts when the config sets none: selection needs a split that training never sees.
    dev: { type: "string", default: "200" },
    m0: { type: "string" },
    // Evaluate this M1 (dev, judge, and held-out with --heldOut) instead of training one.
    m1: { type: "string" },
    save: { type: "string" },
    evalEvery: { type: "string", default: "500" },
    logEvery: { type: "string", default: "100" },
    heldOut: { type: "boolean", default: false },
    json: { type: "string" },
    // Minibatches on which to measure how much of the SFT gradient comes from each part of the
    // mix (IFT answers, EFT judgements, prompt writing), before SFT and after it.
    gradShare: { type: "string", default: "0" },
  },
});

const flags = parseAssignments(opt.set ?? []);
flags["data.devSize"] ??= opt.dev ?? "200";
const cfg = loadConfig({ preset: opt.preset, flags, env: {} });
const evalEvery = Number(opt.evalEvery);
const logEvery = Number(opt.logEvery);

const backend = await selectBackend(cfg.model.backend, { info() {} });
const data = buildSeedData({ ...cfg.data, fewShot: cfg.selfReward.fewShot });
const started = performance.now();
const elapsed = () => ((performance.now() - started) / 1000).toFixed(0);
console.log(
  `backend ${backend.name}, OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? "(unset)"}, ` +
    `OPENBLAS_NUM_THREADS=${process.env.OPENBLAS_NUM_THREADS ?? "(unset)"}; data.seed ${cfg.data.seed}, ` +
    `dev ${data.dev.length}; sft ${JSON.stringify(cfg.train.sft)}`,
);

/** Greedy accuracy (every constraint met), by family, and mean log p(reference answer). */
function evaluate(policy: Policy, items: HeldOutItem[]) {
  const prompts = items.map((h) => h.prompt);
  const answers = samplePolicy(policy, prompts, 1, {
    temperature: 0,
    topP: 1,
    topK: 0,
    maxNewTokens: cfg.selfReward.maxNewTokens,
    seed: 1,
  }).map((p) => p.samples[0].text);
  const rows = prompts.map((prompt, i) => ({ prompt, response: answers[i] }));
  const byFamily: Record<string, number> = {};
  for (const family of new Set(items.map((h) => h.family))) {
    byFamily[family] = accuracy(rows.filter((_, i) => items[i].family === family)).accuracy;
  }
  const lp = completionLogProbs(
    policy,
    items.map((h) => {
      const row = trainingRow(policy.tokenizer, h.prompt, h.answer);
      return { prompt: row.prompt, completion: row.response };
    }),
  );
  const acc = accuracy(rows);
  return {
    accuracy: acc.accuracy,
    ci95: acc.ci95,
    n: acc.n,
    byFamily,
    logProbAnswer: lp.reduce((a, b) => a + b, 0) / Math.max(1, lp.length),
    samples: rows.slice(0, 4),
  };
}

/** The self-judge's pairwise accuracy against the verifier, one greedy judgement per candidate
 * (the run's report samples three at T=0.7, so its figure differs). */
function evaluateJudge(policy: Policy, items: JudgeEvalItem[]) {
  const shown = items.flatMap((item) =>
    item.candidates.map((c) => ({ prompt: item.prompt, response: c.response })),
  );
  // As the loop judges: with the quotes written as given where the config says so.
  const guide = cfg.selfReward.forcedQuote ? quoteGuide(policy.tokenizer, syntheticFormat, shown) : undefined;
  const outs = samplePolicy(
    policy,
    shown.map((x) => judgePrompt(x.prompt, x.response)),
    1,
    { temperature: 0, topP: 1, topK: 0, maxNewTokens: cfg.selfReward.judgeMaxNewTokens, seed: 1 },
    "plain",
    guide?.forced,
    guide?.until,
  );
  let k = 0;
  let failures = 0;
  const judged = items.map((item) =>
    item.candidates.map(() => {
      const s = summariseJudgements([outs[k++].samples[0].text]);
      failures += s.failures.length;
      return s.scores[0] ?? Number.NaN;
    }),
  );
  const truth = items.map((item) => item.candidates.map((c) => c.trueScore));
  return { pairwiseAccuracy: pairwiseAccuracy(judged, truth).accuracy, parseFailures: failures / k };
}

/**
 * Norms of the SFT gradient restricted to each part of the mix, in minibatches drawn as SFT draws
 * them (uniformly from the concatenated examples), with both loss normalisations. With the token
 * mean, a part's share of the gradient follows its share of target tokens.
 */
function gradientShares(policy: Policy, batches: number) {
  const parts = { ift: data.ift, eft: data.eft, write: data.selfInstruct };
  const pool = Object.entries(parts).flatMap(([part, xs]) =>
    xs.map((x) => ({
      part,
      row: trainingRow(policy.tokenizer, x.prompt, x.response),
    })),
  );
  const rng = makeRng(99);
  const vars = [...policy.model.params.values()];
  const out: Record<string, Record<string, number>> = {};
  for (const per of ["token", "example"] as const) {
    const sums: Record<string, number> = {};
    for (let b = 0; b < batches; b++) {
      const batch = Array.from({ length: cfg.train.sft.batchSize }, () => rng.pick(pool));
      const normaliser =
        per === "token" ? batch.reduce((n, x) => n + x.row.response.length, 0) : batch.length;
      const norm = (rows: typeof batch) => {
        if (rows.length === 0) return 0;
        return tf.tidy(() => {
          const { grads } = tf.variableGrads(
            () =>
              sftLoss(
                policy.model,
                rows.map((x) => x.row),
                { normaliser, perExample: per === "example", training: false },
              ),
            vars,
          );
          const sq = Object.values(grads).reduce((a, g) => a + g.square().sum().dataSync()[0], 0);
          return Math.sqrt(sq);
        });
      };
      sums.all = (sums.all ?? 0) + norm(batch) / batches;
      for (const part of Object.keys(parts)) {
        sums[part] = (sums[part] ?? 0) + norm(batch.filter((x) => x.part === part)) / batches;
      }
    }
    out[per] = sums;
  }
  return out;
}

const fmt = (e: ReturnType<typeof evaluate>) =>
  `${(100 * e.accuracy).toFixed(1)}% (${(100 * e.ci95[0]).toFixed(1)}-${(100 * e.ci95[1]).toFixed(1)}; ` +
  `${Object.entries(e.byFamily)
    .map(([f, a]) => `${f} ${(100 * a).toFixed(0)}`)
    .join(", ")}), log p(answer) ${e.logProbAnswer.toFixed(2)}`;

/** Loss and gradient-norm summaries per window of steps: spikes show as max ≫ mean. */
function curveLogger(stage: string, curve: unknown[], onWindow?: (step: number) => void) {
  let window: StepReport[] = [];
  return (r: StepReport) => {
    window.push(r);
    if (r.step % logEvery === 0 || r.step === r.total) {
      const losses = window.map((w) => w.loss);
      const norms = window.map((w) => w.gradNorm ?? Number.NaN);
      const row = {
        step: r.step,
        loss: losses.reduce((a, b) => a + b, 0) / losses.length,
        maxLoss: Math.max(...losses),
        gradNorm: norms.reduce((a, b) => a + b, 0) / norms.length,
        maxGradNorm: Math.max(...norms),
        clipped: norms.filter((n) => n > 1).length / norms.length,
      };
      curve.push(row);
      console.log(
        `${stage} ${r.step}/${r.total} loss ${row.loss.toFixed(3)} (max ${row.maxLoss.toFixed(3)}) ` +
          `grad ${row.gradNorm.toFixed(2)} (max ${row.maxGradNorm.toFixed(2)}, >1 in ${(100 * row.clipped).toFixed(0)}%) [${elapsed()} s]`,
      );
      window = [];
    }
    onWindow?.(r.step);
  };
}

let policy: Policy;
const pretrainCurve: unknown[] = [];
const sftCurve: unknown[] = [];
const devCurve: { step: number; accuracy: number; logProbAnswer: number }[] = [];
const gradShares: Record<string, unknown> = {};
if (opt.m1) {
  const { model, tokenizer } = loadCheckpoint(opt.m1);
  policy = { version: 1, model, tokenizer };
  console.log(`M1 from ${opt.m1}`);
} else {
  if (opt.m0) {
    const { model, tokenizer } = loadCheckpoint(opt.m0);
    policy = { version: 0, model, tokenizer };
    console.log(`M0 from ${opt.m0}`);
  } else {
    const tokenizer = new CharTokenizer(DOMAIN_CHARSET);
    const model = initModel(cfg.model.preset, tokenizer, {
      seed: cfg.model.seed,
      tieEmbeddings: cfg.model.tieEmbeddings,
    });
    policy = { version: 0, model, tokenizer };
    await pretrain(
      policy,
      data.pretrain,
      cfg.train.pretrain,
      deriveSeed(cfg.model.seed, "pretrain"),
      curveLogger("pretrain", pretrainCurve),
    );
    if (opt.save) saveCheckpoint(join(opt.save, "M0"), policy.model, policy.tokenizer);
  }
  const trained = policy;
  const shareBatches = Number(opt.gradShare);
  if (shareBatches > 0) {
    gradShares.before = gradientShares(trained, shareBatches);
    console.log(`gradient norms by part, before SFT: ${JSON.stringify(gradShares.before)}`);
  }
  await supervisedFineTune(
    trained,
    sftMix(data, cfg.train.sft),
    cfg.train.sft,
    deriveSeed(cfg.model.seed, "sft"),
    curveLogger("sft", sftCurve, (step) => {
      if (evalEvery > 0 && step % evalEvery === 0 && step < cfg.train.sft.steps) {
        const e = evaluate(trained, data.dev);
        devCurve.push({ step, accuracy: e.accuracy, logProbAnswer: e.logProbAnswer });
        console.log(`  dev at step ${step}: ${fmt(e)}`);
      }
    }),
  );
  if (opt.save) saveCheckpoint(join(opt.save, "M1"), policy.model, policy.tokenizer);
}
if (Number(opt.gradShare) > 0) {
  gradShares.after = gradientShares(policy, Number(opt.gradShare));
  console.log(`gradient norms by part, after SFT: ${JSON.stringify(gradShares.after)}`);
}
const dev = evaluate(policy, data.dev);
console.log(`M1 dev: ${fmt(dev)}`);
console.log(`  dev samples: ${JSON.stringify(dev.samples)}`);
const judge = evaluateJudge(policy, data.judgeEval);
console.log(
  `M1 judge (greedy): pairwise ${(100 * judge.pairwiseAccuracy).toFixed(1)}%, parse failures ${(100 * judge.parseFailures).toFixed(1)}% [${elapsed()} s]`,
);
const heldOut = opt.heldOut ? evaluate(policy, data.heldOut) : null;
if (heldOut) console.log(`M1 held-out: ${fmt(heldOut)}`);
const result = {
  backend: backend.name,
  coretype: process.env.OPENBLAS_CORETYPE ?? null,
  threads: process.env.OPENBLAS_NUM_THREADS ?? null,
  data: cfg.data,
  pretrain: opt.m1 ? null : opt.m0 ? { from: opt.m0 } : cfg.train.pretrain,
  sft: opt.m1 ? { from: opt.m1 } : cfg.train.sft,
  seconds: (performance.now() - started) / 1000,
  dev: { ...dev, curve: devCurve },
  judge,
  gradShares,
  heldOut,
  pretrainCurve,
  sftCurve,
};
if (opt.json) writeFileSync(opt.json, `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify({ ...result, pretrainCurve: undefined, sftCurve: undefined }));
