// A whole ReFT run in a single process: the trainer's own loop (actors/trainer/reft.ts) with
// in-process workers (localWorkers.ts) instead of NATS, so settings can be studied without
// starting actors, and the figures are exactly what `srlm run --method reft` reports.
//
//   node --import tsx bench/reftProbe.ts --preset reft-demo --set reft.evalSplit=dev --out /tmp/p
//
// Choose settings with reft.evalSplit=dev; quote results from held-out. Any config field can be
// set as in `srlm run`. Prints progress on stderr, the summary table, then one JSON line.
// `--evalEvery N` also scores the policy's greedy Top-1 on the evaluation split at the start of
// PPO and after every N updates (the curve goes into the JSON line), to see whether more
// updates would help without running each count separately.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import pino from "pino";
import { LocalWorkers } from "../actors/trainer/localWorkers.ts";
import { ReftLoop } from "../actors/trainer/reft.ts";
import { reftSummaryTable } from "../actors/trainer/reftReport.ts";
import { parseAssignments } from "../cli/options.ts";
import { loadConfig } from "../config/load.ts";
import { judgeImplOf } from "../config/schema.ts";
import { selectBackend } from "../model/backend.ts";
import { pairedGain } from "../tasks/eval.ts";
import { countStyles } from "../tasks/math.ts";
import { reasoningTaskFromConfig } from "../tasks/reasoning.ts";
import { greedyAccuracy } from "./greedyAccuracy.ts";

const { values: opt } = parseArgs({
  options: {
    preset: { type: "string", default: "reft-demo" },
    out: { type: "string" },
    set: { type: "string", multiple: true, default: [] },
    evalEvery: { type: "string", default: "0" },
  },
});
const overrides = { method: "reft", ...parseAssignments(opt.set ?? []) };
const cfg = loadConfig({ preset: opt.preset, env: {}, flags: overrides });
cfg.out = opt.out ?? mkdtempSync(join(tmpdir(), "srlm-reft-probe-"));
const backend = await selectBackend(cfg.model.backend, { info() {} });
const workers = new LocalWorkers(judgeImplOf(cfg));
const started = performance.now();
const evalEvery = Number(opt.evalEvery);
if (!(Number.isInteger(evalEvery) && evalEvery >= 0))
  throw new Error(`reftProbe: --evalEvery must be a whole number of updates (got ${opt.evalEvery})`);
const task = reasoningTaskFromConfig(cfg);
const curveProblems = cfg.reft.evalSplit === "dev" ? task.dev : task.heldOut;
const greedy = { maxNewTokens: cfg.reft.maxNewTokens, trigger: task.trigger, format: task.format };
// greedyTerseShare: how many greedy solutions are written as one equation (tasks/math.ts), to see
// whether PPO changes how the policy works, not only what it answers.
const curve: {
  update: number;
  top1: number;
  gain: number;
  ci95: [number, number];
  greedyTerseShare: number;
}[] = [];
let startRight: boolean[] | null = null;
// The loop publishes the PPO policy first as version 3, then once per update.
const FIRST_PPO_VERSION = 3;
const lastLine = new Map<string, number>();
const loop = new ReftLoop(cfg, task, {
  workers,
  publish: async (version, policy) => {
    const update = version - FIRST_PPO_VERSION;
    if (evalEvery > 0 && update >= 0 && (update % evalEvery === 0 || update === cfg.reft.updates)) {
      const { accuracy, right, texts } = greedyAccuracy(policy, curveProblems, greedy);
      startRight ??= right;
      const { gain, ci95 } = pairedGain(right, startRight);
      const greedyTerseShare = countStyles(texts, right).terse.n / texts.length;
      curve.push({ update, top1: accuracy, gain, ci95, greedyTerseShare });
      const t = ((performance.now() - started) / 1000).toFixed(0);
      const pts = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}`;
      process.stderr.write(
        `${t}s after update ${update}: ${cfg.reft.evalSplit} greedy ${(100 * accuracy).toFixed(1)}%, ` +
          `${pts(gain)} (${pts(ci95[0])} to ${pts(ci95[1])}) paired against the start of PPO, ` +
          `${(100 * greedyTerseShare).toFixed(0)}% written terse\n`,
      );
    }
    return workers.publish(version, policy);
  },
  log: pino({ level: "warn" }),
  backend: backend.name,
  progress(stage, iteration, done, total, detail) {
    // A line per stage every 30 s, and its last one.
    const now = performance.now();
    if (done < total && now - (lastLine.get(stage) ?? 0) < 30_000) return;
    lastLine.set(stage, now);
    const t = ((now - started) / 1000).toFixed(0);
    process.stderr.write(`${t}s ${stage} ${iteration} ${done}/${total} ${detail ?? ""}\n`);
  },
  gate: async () => {},
  metrics(update, values) {
    process.stderr.write(
      `update ${update}: reward ${values.meanReward.toFixed(3)}, correct ${values.correctShare.toFixed(3)}, ` +
        `KL ${values.refKl.toFixed(4)}, clip ${values.clipFraction.toFixed(4)}, approx-KL ${values.approxKl.toExponential(2)}\n`,
    );
  },
  actorStats: async () => [],
});
const report = await loop.run();
process.stdout.write(reftSummaryTable(report));
const strategies = Object.fromEntries(
  report.models.map((m) => [
    m.model,
    { top1: m.top1.accuracy, voteAtK: m.voteAtK.accuracy, rerankAtK: m.rerankAtK?.accuracy ?? null },
  ]),
);
process.stdout.write(
  `${JSON.stringify({
    bench: "reftProbe",
    preset: opt.preset,
    split: report.split,
    backend: backend.name,
    n: report.models[0]?.top1.n ?? 0,
    k: report.k,
    strategies,
    gainOverSft: report.gainOverSft,
    wallSeconds: report.wallSeconds,
    stageSeconds: report.stageSeconds,
    curve,
    out: cfg.out,
  })}\n`,
);
