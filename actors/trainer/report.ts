// The run's report: report.json (machine-readable) and summary.txt (the table `srlm run` prints).
import type { DpoSummary } from "./loops.ts";

export interface ModelEval {
  heldOutAccuracy: number;
  heldOutAccuracyCi95: [number, number];
  heldOutMeanScore: number;
  heldOutN: number;
  /** Exact-match accuracy per task family. */
  heldOutByFamily: Record<string, number>;
  winRateVsPrevious: { win: number; loss: number; tie: number; ci95: [number, number]; n: number } | null;
  /** Held-out accuracy minus the first evaluated model's (M1), paired by prompt; null for M1. */
  gainOverFirst: { model: string; gain: number; ci95: [number, number]; n: number } | null;
  judge: {
    impl: string;
    pairwiseAccuracy: number;
    spearman: number;
    parseFailureRate: number;
    ab?: { secondary: string; pairwiseAgreement: number };
  };
  /** A few held-out answers, to read what the model writes. */
  samples: { prompt: string; response: string }[];
}

export interface IterationReport extends ModelEval {
  model: string;
  prompts: number;
  candidates: number;
  pairs: number;
  droppedTies?: number;
  droppedTooFewScores?: number;
  /** Mean true (verifier) score gap between chosen and rejected: how right the self-judge's pairs are. */
  pairsTrueScoreGap?: number;
  dpo: DpoSummary | null;
  staleness: { max: number; mean: number } | null;
  wallSeconds: number;
  stageSeconds: Record<string, number>;
}

export interface ActorUsage {
  actor: string;
  impl: string;
  instance: string;
  processed: number;
  failed: number;
  idleSeconds: number;
  uptimeSeconds: number;
}

export interface RunReport {
  method: "self-rewarding";
  preset: string;
  backend: string;
  run: string;
  mode: string;
  wallSeconds: number;
  /** Seconds the trainer computed; wallSeconds minus this is the time it waited on the other actors. */
  trainerBusySeconds: number;
  actors: ActorUsage[];
  iterations: IterationReport[];
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const signedPts = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}`;
const num = (x: number | undefined | null, digits = 3) =>
  x === undefined || x === null || !Number.isFinite(x) ? "–" : x.toFixed(digits);

export function summaryTable(report: RunReport): string {
  const header = [
    "model",
    "held-out acc (95% CI)",
    "gain vs M1 (95% CI)",
    "win/loss/tie vs prev",
    "judge pairwise",
    "spearman",
    "parse fail",
    "pairs",
    "dpo loss",
    "pref acc",
    "wall s",
  ];
  const rows = report.iterations.map((it) => [
    it.model,
    `${pct(it.heldOutAccuracy)} (${pct(it.heldOutAccuracyCi95[0])}–${pct(it.heldOutAccuracyCi95[1])})`,
    it.gainOverFirst
      ? `${signedPts(it.gainOverFirst.gain)} (${signedPts(it.gainOverFirst.ci95[0])} to ${signedPts(it.gainOverFirst.ci95[1])})`
      : "–",
    it.winRateVsPrevious
      ? `${pct(it.winRateVsPrevious.win)}/${pct(it.winRateVsPrevious.loss)}/${pct(it.winRateVsPrevious.tie)}`
      : "–",
    pct(it.judge.pairwiseAccuracy),
    num(it.judge.spearman, 2),
    pct(it.judge.parseFailureRate),
    String(it.pairs),
    num(it.dpo?.loss),
    it.dpo ? pct(it.dpo.preferenceAccuracy) : "–",
    it.wallSeconds.toFixed(0),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join("  ");
  return [
    `srlm self-rewarding run ${report.run} (preset ${report.preset}, backend ${report.backend}, ${report.mode}): ${report.wallSeconds.toFixed(0)} s`,
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    "",
    `trainer busy ${report.trainerBusySeconds.toFixed(0)} s of ${report.wallSeconds.toFixed(0)} s; ` +
      report.actors
        .map(
          (a) =>
            `${a.actor}/${a.instance} idle ${a.idleSeconds.toFixed(0)} of ${a.uptimeSeconds.toFixed(0)} s (${a.processed} jobs)`,
        )
        .join("; "),
    "",
  ].join("\n");
}
