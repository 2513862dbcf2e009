// The seeds command's arithmetic and table: the t interval across seeds against hand-computed
// values, gains whose own interval clears zero counted per seed, a failed seed left out of the
// means (not counted as zero), and the seed list parsed with clear errors.
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ReftReport } from "../../actors/trainer/reftReport.ts";
import type { IterationReport, RunReport } from "../../actors/trainer/report.ts";
import { meanInterval, type SeedRun, seedsReport, seedsTable } from "../../actors/trainer/seedsReport.ts";
import { parseSeeds } from "../../cli/seeds.ts";

test("mean and 95% t interval of a few values", () => {
  // mean 0.04, sd 0.02, t(2) 4.303: half width 4.303 × 0.02 / √3 = 0.0496868.
  const r = meanInterval([0.02, 0.04, 0.06]);
  assert.ok(Math.abs((r.mean ?? 0) - 0.04) < 1e-12);
  assert.ok(r.ci95);
  assert.ok(Math.abs(r.ci95[0] - (0.04 - 0.0496868)) < 1e-6);
  assert.ok(Math.abs(r.ci95[1] - (0.04 + 0.0496868)) < 1e-6);
  assert.deepEqual(meanInterval([0.5]), { mean: 0.5, ci95: null });
  assert.deepEqual(meanInterval([]), { mean: null, ci95: null });
});

function row(
  model: string,
  acc: number,
  gain: [number, number, number] | null,
  judge: number,
): IterationReport {
  return {
    model,
    heldOutAccuracy: acc,
    heldOutAccuracyCi95: [acc - 0.05, acc + 0.05],
    gainOverFirst: gain ? { model: "M1", gain: gain[0], ci95: [gain[1], gain[2]], n: 400 } : null,
    judge: { impl: "self", pairwiseAccuracy: judge, spearman: null, parseFailureRate: 0 },
  } as unknown as IterationReport;
}

function report(rows: IterationReport[]): RunReport {
  return {
    method: "self-rewarding",
    backend: "blas",
    evalSplit: "heldOut",
    iterations: rows,
  } as unknown as RunReport;
}

test("per-seed figures, the mean across seeds, and seeds whose gain clears zero", () => {
  const runs: SeedRun[] = [
    {
      seed: 7,
      out: "o/seed-7",
      wallSeconds: 600,
      report: report([row("M1", 0.8, null, 0.7), row("M2", 0.86, [0.06, 0.03, 0.09], 0.72)]),
    },
    {
      seed: 8,
      out: "o/seed-8",
      wallSeconds: 610,
      report: report([row("M1", 0.7, null, 0.6), row("M2", 0.72, [0.02, -0.01, 0.05], 0.66)]),
    },
    { seed: 9, out: "o/seed-9", wallSeconds: 30, report: null, error: "srlm run exited 1" },
  ];
  const r = seedsReport("self-rewarding", "demo", runs);
  assert.deepEqual(r.seeds, [7, 8, 9]);
  assert.equal(r.split, "heldOut");
  const gain = r.figures.find((f) => f.name === "M2 − M1");
  assert.ok(gain);
  assert.deepEqual(gain.perSeed, [0.06, 0.02, null]);
  // Seed 9 failed: left out of the mean, not counted as a zero gain.
  assert.ok(Math.abs((gain.mean ?? 0) - 0.04) < 1e-12);
  assert.equal(gain.seedsAboveZero, 1);
  const m1 = r.figures.find((f) => f.name === "M1 accuracy");
  assert.deepEqual(m1?.perSeed, [0.8, 0.7, null]);
  // Two seeds' t interval (0.75 ± 0.635) runs past 100%: the mean's interval stops there.
  assert.ok(m1?.ci95 && Math.abs(m1.ci95[0] - (0.75 - 12.706 * 0.05)) < 1e-9);
  assert.equal(m1.ci95[1], 1);
  assert.deepEqual(r.figures.find((f) => f.name === "M2 judge pairwise")?.perSeed, [0.72, 0.66, null]);
  assert.deepEqual(
    r.runs.map((x) => x.ok),
    [true, true, false],
  );
  const text = seedsTable(r);
  assert.match(text, /M2 − M1\s+\+6\.0 \(\+3\.0 to \+9\.0\)\s+\+2\.0 \(-1\.0 to \+5\.0\)\s+–\s+\+4\.0 \(/);
  assert.match(text, /1 of 2/);
  assert.match(text, /seed 9: failed: srlm run exited 1 \(o\/seed-9\)/);
  assert.match(text, /on the held-out prompts/);
});

test("ReFT runs give Top-1, Vote@K and Rerank@K per model and ReFT − SFT", () => {
  const strat = (a: number) => ({ accuracy: a, ci95: [a - 0.05, a + 0.05] as [number, number], n: 200 });
  const gain = (g: number) => ({ gain: g, ci95: [g - 0.02, g + 0.02] as [number, number], n: 200 });
  const reft = (sft: number, ft: number) =>
    ({
      method: "reft",
      split: "dev",
      k: 4,
      backend: "blas",
      models: [
        { model: "SFT", top1: strat(sft), voteAtK: strat(sft + 0.02), rerankAtK: strat(sft + 0.03) },
        { model: "ReFT", top1: strat(ft), voteAtK: strat(ft + 0.02), rerankAtK: null },
      ],
      gainOverSft: { top1: gain(ft - sft), voteAtK: gain(0.01), rerankAtK: null },
    }) as unknown as ReftReport;
  const r = seedsReport("reft", "reft-demo", [
    { seed: 1, out: "a", wallSeconds: 1, report: reft(0.4, 0.45) },
    { seed: 2, out: "b", wallSeconds: 1, report: reft(0.3, 0.38) },
  ]);
  assert.equal(r.split, "dev");
  const names = r.figures.map((f) => f.name);
  assert.deepEqual(names, [
    "SFT Top-1",
    "SFT Vote@4",
    "SFT Rerank@4",
    "ReFT Top-1",
    "ReFT Vote@4",
    "ReFT − SFT Top-1",
    "ReFT − SFT Vote@4",
  ]);
  const top1 = r.figures.find((f) => f.name === "ReFT − SFT Top-1");
  assert.equal(top1?.seedsAboveZero, 2);
  assert.match(seedsTable(r), /on the dev prompts/);
});

test("seeds: a count from the config's data seed, or a list", () => {
  assert.deepEqual(parseSeeds("3", 7), [7, 8, 9]);
  assert.deepEqual(parseSeeds("1, 5,9", 7), [1, 5, 9]);
  assert.throws(() => parseSeeds("0", 7), /a count from 1 to 100/);
  assert.throws(() => parseSeeds("7,x", 7), /--seeds 7,x: a count \(3\) or a comma-separated list/);
  assert.throws(() => parseSeeds("7,7", 7), /listed twice/);
});
