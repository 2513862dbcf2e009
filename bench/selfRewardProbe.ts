// Self-rewarding iterations in a single process, to study the loop in seconds rather than
// minutes: from an M1 checkpoint, the trainer's own loop (actors/trainer/selfRewarding.ts) runs
// with in-process workers (localWorkers.ts) instead of NATS, so the probe measures exactly what a
// run does: held-out accuracy, the pairs' true score gap, the judge's agreement, DPO figures.
//
//   node --import tsx bench/selfRewardProbe.ts --m1 runs/demo/checkpoints/M1 --judge self
//
// Any config field can be set as in `srlm run` (--set selfReward.minScoreGap=1); `--save DIR`
// writes each iteration's model to DIR/M2, DIR/M3 (for bench/greedyFlips.ts --against). Prints the
// summary table, each iteration's pairs split by their judged scores, then one JSON object as the
// last line.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import pino from "pino";
import { isJudgeImpl } from "../actors/judge/main.ts";
import type { Policy } from "../actors/policy.ts";
import { LocalWorkers } from "../actors/trainer/localWorkers.ts";
import { type IterationReport, summaryTable } from "../actors/trainer/report.ts";
import { SelfRewardingLoop } from "../actors/trainer/selfRewarding.ts";
import { parseAssignments } from "../cli/options.ts";
import { loadConfig } from "../config/load.ts";
import { selectBackend } from "../model/backend.ts";
import { loadCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import { taskFromConfig } from "../tasks/fromConfig.ts";

const { values: opt } = parseArgs({
  options: {
    m1: { type: "string" },
    preset: { type: "string", default: "demo" },
    // self: the policy judges itself (the paper); verifier: the true rubric score.
    judge: { type: "string", default: "self" },
    set: { type: "string", multiple: true, default: [] },
    // A folder to save each iteration's model in (M2, M3, ...), for benches that compare them.
    save: { type: "string" },
  },
});
if (!opt.m1) throw new Error("selfRewardProbe: --m1 DIR (an M1 checkpoint folder) is required");
const judge = opt.judge ?? "self";
if (!isJudgeImpl(judge))
  throw new Error(`selfRewardProbe: --judge must be self, verifier or ab, got ${judge}`);

const backend = await selectBackend("auto", { info() {} });
const overrides = parseAssignments(opt.set ?? []);
const cfg = loadConfig({ preset: opt.preset, env: {}, flags: overrides });
cfg.out = mkdtempSync(join(tmpdir(), "srlm-probe-"));
const { model, tokenizer } = loadCheckpoint(opt.m1);
const policy: Policy = { version: 1, model, tokenizer };
const workers = new LocalWorkers(judge);
const loop = new SelfRewardingLoop(cfg, taskFromConfig(cfg), {
  workers,
  publish: async (version, p) => workers.publish(version, p),
  log: pino({ level: "warn" }),
  backend: backend.name,
  progress() {},
  gate: async () => {},
  metrics() {},
  actorStats: async () => [],
});
const started = performance.now();
const m1 = await loop.start(policy);
const iterations: IterationReport[] = [
  {
    model: "M1",
    ...m1,
    pairs: 0,
    prompts: 0,
    candidates: 0,
    dpo: null,
    staleness: null,
    failures: {},
    wallSeconds: 0,
    stageSeconds: {},
  },
];
await loop.iterations(cfg.selfReward.iterations, (r) => {
  iterations.push(r);
  // The loop trains the policy in place, so after an iteration's report it holds that model.
  if (opt.save) saveCheckpoint(join(opt.save, r.model), model, tokenizer);
});
const report = await loop.report(iterations, (performance.now() - started) / 1000);
console.log(summaryTable(report));
for (const it of iterations.slice(1))
  console.log(
    `${it.model}: pairs' true gap ${it.pairsTrueScoreGap?.toFixed(2) ?? "–"}, chosen truly better/same/worse ${JSON.stringify(it.pairsTrueOrder)}, by family ${JSON.stringify(it.heldOutByFamily)}`,
  );
for (const it of iterations.slice(1))
  for (const [scores, o] of Object.entries(it.pairsTrueOrderByScores ?? {}))
    console.log(
      `${it.model} pairs judged ${scores}: ${o.pairs}, truly better/same/worse ${[o.better, o.same, o.worse].map((x) => (100 * x).toFixed(0)).join("/")}%`,
    );
console.log(JSON.stringify({ bench: "selfRewardProbe", backend: backend.name, judge, overrides, report }));
