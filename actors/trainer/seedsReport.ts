// The seeds command's report: one run per seed, its figures side by side, and for each figure the
// mean across seeds with a t interval, so that a claimed gain is the method's and not one draw's.
import type { PairedGain } from "../../tasks/eval.ts";
import type { StrategyAccuracy } from "../../tasks/inference.ts";
import type { ReftReport } from "./reftReport.ts";
import type { RunReport } from "./report.ts";

export interface SeedRun {
  seed: number;
  out: string;
  wallSeconds: number;
  /** Null when the run failed; `error` says why. */
  report: RunReport | ReftReport | null;
  error?: string;
}

/** One figure of every run: a value per seed (null where that run has none) and, for a paired gain,
 * its own 95% interval. */
export interface SeedFigure {
  name: string;
  kind: "accuracy" | "gain";
  perSeed: (number | null)[];
  perSeedCi95: ([number, number] | null)[];
  /** Across the seeds that have the figure: mean and a 95% t interval (null under 2 seeds). */
  mean: number | null;
  ci95: [number, number] | null;
  /** Gains: seeds whose paired interval lies wholly above zero. */
  seedsAboveZero?: number;
}

export interface SeedsReport {
  method: "self-rewarding" | "reft";
  preset: string;
  /** The split every accuracy and gain was measured on. */
  split: "heldOut" | "dev";
  seeds: number[];
  runs: { seed: number; out: string; wallSeconds: number; ok: boolean; error?: string; backend?: string }[];
  figures: SeedFigure[];
}

// Two-sided 95% quantiles of Student's t for 1..10 degrees of freedom; beyond, the normal's.
const T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228];

/** Mean and 95% t interval of a few values (null interval for fewer than two). */
export function meanInterval(values: readonly number[]): {
  mean: number | null;
  ci95: [number, number] | null;
} {
  const n = values.length;
  if (n === 0) return { mean: null, ci95: null };
  const mean = values.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, ci95: null };
  const sd = Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1));
  const half = (T975[n - 2] ?? 1.96) * (sd / Math.sqrt(n));
  return { mean, ci95: [mean - half, mean + half] };
}

type Cell = { value: number; ci95: [number, number] | null } | null;

function figure(name: string, kind: SeedFigure["kind"], cells: Cell[]): SeedFigure {
  const present = cells.filter((c): c is NonNullable<Cell> => c !== null);
  const { mean, ci95: t } = meanInterval(present.map((c) => c.value));
  // With two or three seeds the t interval is wide enough to leave the range a share (or a
  // difference of two shares) can take; what lies outside it is no value the figure can have.
  const [lo, hi] = kind === "gain" ? [-1, 1] : [0, 1];
  const ci95: [number, number] | null = t && [Math.max(lo, t[0]), Math.min(hi, t[1])];
  return {
    name,
    kind,
    perSeed: cells.map((c) => c?.value ?? null),
    perSeedCi95: cells.map((c) => c?.ci95 ?? null),
    mean,
    ci95,
    ...(kind === "gain"
      ? { seedsAboveZero: present.filter((c) => c.ci95 !== null && c.ci95[0] > 0).length }
      : {}),
  };
}

const fromGain = (g: PairedGain | null | undefined): Cell => (g ? { value: g.gain, ci95: g.ci95 } : null);
const fromStrategy = (s: StrategyAccuracy | null | undefined): Cell =>
  s ? { value: s.accuracy, ci95: s.ci95 } : null;

function selfRewardingFigures(reports: (RunReport | null)[]): SeedFigure[] {
  const models = [...new Set(reports.flatMap((r) => r?.iterations.map((it) => it.model) ?? []))];
  const at = (r: RunReport | null, model: string) => r?.iterations.find((it) => it.model === model) ?? null;
  const figures: SeedFigure[] = [];
  for (const model of models)
    figures.push(
      figure(
        `${model} accuracy`,
        "accuracy",
        reports.map((r) => {
          const it = at(r, model);
          return it?.heldOutAccuracy != null
            ? { value: it.heldOutAccuracy, ci95: it.heldOutAccuracyCi95 }
            : null;
        }),
      ),
    );
  for (const model of models.slice(1))
    figures.push(
      figure(
        `${model} − ${models[0]}`,
        "gain",
        reports.map((r) => fromGain(at(r, model)?.gainOverFirst)),
      ),
    );
  for (const model of models)
    figures.push(
      figure(
        `${model} judge pairwise`,
        "accuracy",
        reports.map((r) => {
          const p = at(r, model)?.judge.pairwiseAccuracy;
          return p != null ? { value: p, ci95: null } : null;
        }),
      ),
    );
  return figures;
}

function reftFigures(reports: (ReftReport | null)[]): SeedFigure[] {
  const k = reports.find((r) => r !== null)?.k ?? 0;
  const models = [...new Set(reports.flatMap((r) => r?.models.map((m) => m.model) ?? []))];
  const at = (r: ReftReport | null, model: string) => r?.models.find((m) => m.model === model) ?? null;
  const figures: SeedFigure[] = [];
  for (const model of models) {
    figures.push(
      figure(
        `${model} Top-1`,
        "accuracy",
        reports.map((r) => fromStrategy(at(r, model)?.top1)),
      ),
    );
    figures.push(
      figure(
        `${model} Vote@${k}`,
        "accuracy",
        reports.map((r) => fromStrategy(at(r, model)?.voteAtK)),
      ),
    );
    figures.push(
      figure(
        `${model} Rerank@${k}`,
        "accuracy",
        reports.map((r) => fromStrategy(at(r, model)?.rerankAtK)),
      ),
    );
  }
  figures.push(
    figure(
      "ReFT − SFT Top-1",
      "gain",
      reports.map((r) => fromGain(r?.gainOverSft?.top1)),
    ),
  );
  figures.push(
    figure(
      `ReFT − SFT Vote@${k}`,
      "gain",
      reports.map((r) => fromGain(r?.gainOverSft?.voteAtK)),
    ),
  );
  figures.push(
    figure(
      `ReFT − SFT Rerank@${k}`,
      "gain",
      reports.map((r) => fromGain(r?.gainOverSft?.rerankAtK)),
    ),
  );
  return figures.filter((f) => f.perSeed.some((v) => v !== null));
}

export function seedsReport(method: SeedsReport["method"], preset: string, runs: SeedRun[]): SeedsReport {
  const reports = runs.map((r) => r.report);
  const first = reports.find((r) => r !== null) ?? null;
  const split: SeedsReport["split"] =
    first === null ? "heldOut" : first.method === "reft" ? first.split : (first.evalSplit ?? "heldOut");
  const figures =
    method === "reft"
      ? reftFigures(reports.map((r) => (r?.method === "reft" ? r : null)))
      : selfRewardingFigures(reports.map((r) => (r?.method === "self-rewarding" ? r : null)));
  return {
    method,
    preset,
    split,
    seeds: runs.map((r) => r.seed),
    runs: runs.map((r) => ({
      seed: r.seed,
      out: r.out,
      wallSeconds: r.wallSeconds,
      ok: r.report !== null,
      ...(r.error ? { error: r.error } : {}),
      ...(r.report ? { backend: r.report.backend } : {}),
    })),
    figures,
  };
}

const pct = (x: number | null) => (x === null ? "–" : `${(100 * x).toFixed(1)}%`);
const pts = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(1)}`;

function seedCell(f: SeedFigure, i: number): string {
  const v = f.perSeed[i];
  if (v === null) return "–";
  const ci = f.perSeedCi95[i];
  if (f.kind === "gain") return ci ? `${pts(v)} (${pts(ci[0])} to ${pts(ci[1])})` : pts(v);
  return ci ? `${pct(v)} (${(100 * ci[0]).toFixed(1)}–${(100 * ci[1]).toFixed(1)})` : pct(v);
}

function meanCell(f: SeedFigure): string {
  if (f.mean === null) return "–";
  const value = f.kind === "gain" ? pts(f.mean) : pct(f.mean);
  if (!f.ci95) return value;
  return f.kind === "gain"
    ? `${value} (${pts(f.ci95[0])} to ${pts(f.ci95[1])})`
    : `${value} (${(100 * f.ci95[0]).toFixed(1)}–${(100 * f.ci95[1]).toFixed(1)})`;
}

/** The per-seed table `srlm seeds` prints and writes to seeds.txt. */
export function seedsTable(r: SeedsReport): string {
  const header = [
    "figure",
    ...r.seeds.map((s) => `seed ${s}`),
    `mean over ${r.runs.filter((x) => x.ok).length} seeds (95% t CI)`,
    "seeds CI > 0",
  ];
  const rows = r.figures.map((f) => [
    f.name,
    ...r.seeds.map((_, i) => seedCell(f, i)),
    meanCell(f),
    f.seedsAboveZero === undefined
      ? ""
      : `${f.seedsAboveZero} of ${f.perSeed.filter((v) => v !== null).length}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join("  ")
      .trimEnd();
  const split = r.split === "dev" ? "dev" : "held-out";
  return [
    `srlm seeds: ${r.method}, preset ${r.preset}, ${r.seeds.length} seeds; accuracies and gains on the ${split} prompts, ` +
      "each seed's own interval in brackets (gains paired by prompt), then the mean across seeds",
    line(header),
    line(widths.map((w) => "-".repeat(w))),
    ...rows.map(line),
    ...r.runs.map(
      (x) =>
        `seed ${x.seed}: ${x.ok ? `${x.wallSeconds.toFixed(0)} s, backend ${x.backend}` : `failed: ${x.error}`} (${x.out})`,
    ),
    "",
  ].join("\n");
}
