// ReFT's report: report.json (machine-readable) and summary.txt (the table `srlm run` prints), in
// the shape of the paper's results: Top-1, Vote@K and Rerank@K for SFT and ReFT, with intervals.
import type { PairedGain } from "../../tasks/eval.ts";
import type { StrategyAccuracy } from "../../tasks/inference.ts";
import type { LossSummary } from "./loops.ts";
import type { ActorUsage, BusCounts, StageFailures } from "./report.ts";

export interface ReftModelEval {
  model: string;
  version: number;
  /** Greedy decoding, one answer. */
  top1: StrategyAccuracy;
  /** The most common answer of K samples. */
  voteAtK: StrategyAccuracy;
  /** The reranker's best-scored of K samples; null without a reranker. */
  rerankAtK: StrategyAccuracy | null;
  /** Greedy answers with a readable number after the trigger. */
  answeredShare: number;
  /** A few held-out answers, to read what the model writes. */
  samples: { question: string; response: string; gold: number }[];
}

export interface PpoUpdateReport {
  update: number;
  /** The version these weights were published as after the update. */
  version: number;
  rollouts: number;
  tokens: number;
  meanReward: number;
  /** Rollouts whose answer was right (reward 1). */
  correctShare: number;
  /** Rollouts with a readable answer at all. */
  answeredShare: number;
  /** GRPO: questions whose samples were not all rewarded alike, the only ones with a non-zero
   * advantage (all right or all wrong teaches nothing). NaN with one sample per question. */
  mixedGroupShare: number;
  /** Mean over rollouts of Σ_t (log π_old − log π_ref) when the batch was prepared. */
  refKl: number;
  /** Means over the update's optimizer steps. */
  policyLoss: number;
  valueLoss: number;
  clipFraction: number;
  approxKl: number;
  entropy: number;
  /** Of the value head's old values against the returns (NaN in GRPO). */
  explainedVariance: number;
  steps: number;
  skippedSteps: number;
  /** Versions between the weights that sampled a rollout and the ones it trained (streaming). */
  staleness: { max: number; mean: number };
  droppedStale: number;
  /** Rollouts whose reward could not be read (a judge's judgement that did not parse). */
  unscored: number;
  failures: StageFailures;
  seconds: number;
}

export interface ReftReport {
  method: "reft";
  preset: string;
  task: string;
  algorithm: string;
  mode: string;
  backend: string;
  run: string;
  /** Set when an operator stopped the run: the updates that finished, evaluated as they were. */
  stopped?: boolean;
  /** Which split every accuracy below is measured on. */
  split: "heldOut" | "dev";
  k: number;
  trainQuestions: number;
  sftLoss: { warmup: LossSummary | null; sft: LossSummary | null };
  /** What the reward judge was (impl, and an HTTP judge's model). */
  rewardJudge: string[];
  reranker: { examples: number; positiveShare: number; loss: LossSummary; skippedSteps: number } | null;
  models: ReftModelEval[];
  /** ReFT minus SFT, paired by question. */
  gainOverSft: { top1: PairedGain; voteAtK: PairedGain; rerankAtK: PairedGain | null } | null;
  updates: PpoUpdateReport[];
  wallSeconds: number;
  trainerBusySeconds: number;
  stageSeconds: Record<string, number>;
  failures: StageFailures;
  actors: ActorUsage[];
  bus: BusCounts | null;
}

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "–");
const pts = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}`;
const cell = (s: StrategyAccuracy | null) =>
  s ? `${pct(s.accuracy)} (${(100 * s.ci95[0]).toFixed(1)}–${(100 * s.ci95[1]).toFixed(1)})` : "–";
const gain = (g: PairedGain | null) => (g ? `${pts(g.gain)} (${pts(g.ci95[0])} to ${pts(g.ci95[1])})` : "–");

function tenths(updates: PpoUpdateReport[], f: (u: PpoUpdateReport) => number): [number, number] {
  const n = Math.max(1, Math.floor(updates.length / 10));
  const m = (xs: PpoUpdateReport[]) => xs.reduce((a, u) => a + f(u), 0) / Math.max(1, xs.length);
  return [m(updates.slice(0, n)), m(updates.slice(-n))];
}

export function reftSummaryTable(r: ReftReport): string {
  const n = r.models[0]?.top1.n ?? 0;
  const lines = [
    `ReFT (${r.algorithm}, ${r.mode}) on ${r.task}: ${r.split === "dev" ? "dev" : "held-out"} accuracy, n = ${n}, K = ${r.k}${r.stopped ? " (stopped by the operator)" : ""}`,
    "",
    `| model | Top-1 (95% CI) | Vote@${r.k} | Rerank@${r.k} | answered |`,
    "| --- | --- | --- | --- | --- |",
    ...r.models.map(
      (m) =>
        `| ${m.model} | ${cell(m.top1)} | ${cell(m.voteAtK)} | ${cell(m.rerankAtK)} | ${pct(m.answeredShare)} |`,
    ),
  ];
  if (r.gainOverSft)
    lines.push(
      "",
      `ReFT − SFT, paired by question (points, 95% CI): Top-1 ${gain(r.gainOverSft.top1)}; ` +
        `Vote@${r.k} ${gain(r.gainOverSft.voteAtK)}; Rerank@${r.k} ${gain(r.gainOverSft.rerankAtK)}`,
    );
  if (r.updates.length) {
    const [r0, r1] = tenths(r.updates, (u) => u.meanReward);
    const [c0, c1] = tenths(r.updates, (u) => u.correctShare);
    const [g0, g1] = tenths(r.updates, (u) => u.mixedGroupShare);
    const [, kl] = tenths(r.updates, (u) => u.refKl);
    const [, clip] = tenths(r.updates, (u) => u.clipFraction);
    lines.push(
      "",
      `PPO: ${r.updates.length} updates; mean reward ${r0.toFixed(3)} → ${r1.toFixed(3)}, correct rollouts ` +
        `${pct(c0)} → ${pct(c1)}${Number.isNaN(g0) ? "" : `, questions with mixed rewards ${pct(g0)} → ${pct(g1)}`} (first → last tenth); KL to the warm-up ${kl.toFixed(3)}, clip fraction ${clip.toFixed(3)}`,
    );
  }
  lines.push(
    `Wall time ${(r.wallSeconds / 60).toFixed(1)} min; reward from ${r.rewardJudge.join(", ") || "–"}.`,
  );
  return `${lines.join("\n")}\n`;
}
