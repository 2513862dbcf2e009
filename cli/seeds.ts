// `srlm seeds`: the same run for several seeds, one after another, each in its own folder, then the
// per-seed table and the mean across seeds. Seed offset k adds k to the data seed, the model's
// initialisation seed and the loop's sampling seed alike, so offset 0 is exactly `srlm run` with
// the same flags, and every other seed draws new data, a new M0 and new samples.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { ReftReport } from "../actors/trainer/reftReport.ts";
import type { RunReport } from "../actors/trainer/report.ts";
import { type SeedRun, type SeedsReport, seedsReport, seedsTable } from "../actors/trainer/seedsReport.ts";
import { type CommonFlags, configFromFlags } from "./options.ts";

export interface SeedsFlags extends CommonFlags {
  seeds: string;
}

/** `3` → three seeds from `first`; `7,8,12` → those. */
export function parseSeeds(text: string, first: number): number[] {
  const t = text.trim();
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    if (n < 1 || n > 100) throw new Error(`--seeds ${text}: a count from 1 to 100, or a list such as 7,8,9`);
    return Array.from({ length: n }, (_, i) => first + i);
  }
  const seeds = t.split(",").map((s) => s.trim());
  if (seeds.length === 0 || seeds.some((s) => !/^\d+$/.test(s)))
    throw new Error(
      `--seeds ${text}: a count (3) or a comma-separated list of non-negative integers (7,8,9)`,
    );
  const list = seeds.map(Number);
  if (new Set(list).size !== list.length) throw new Error(`--seeds ${text}: a seed is listed twice`);
  return list;
}

export async function seedsCommand(flags: SeedsFlags): Promise<number> {
  const base = configFromFlags(flags);
  const seeds = parseSeeds(flags.seeds, base.data.seed);
  const out = resolve(base.out);
  mkdirSync(out, { recursive: true });
  const loopSeed = base.method === "reft" ? "reft.seed" : "selfReward.seed";
  const loopSeed0 = base.method === "reft" ? base.reft.seed : base.selfReward.seed;
  const { runLoop } = await import("./run.ts");
  const runs: SeedRun[] = [];
  let summary: SeedsReport | null = null;
  for (const seed of seeds) {
    const k = seed - base.data.seed;
    const dir = join(out, `seed-${seed}`);
    const set = [
      ...(flags.set ?? []),
      `data.seed=${seed}`,
      `model.seed=${base.model.seed + k}`,
      `${loopSeed}=${loopSeed0 + k}`,
    ];
    const cfg = configFromFlags({ ...flags, set, out: dir, run: `${base.run}-s${seed}` });
    process.stderr.write(`srlm seeds: seed ${seed} (${runs.length + 1} of ${seeds.length}) → ${dir}\n`);
    const started = performance.now();
    let code: number;
    let error: string | undefined;
    try {
      code = await runLoop(cfg);
    } catch (err) {
      code = 1;
      error = err instanceof Error ? err.message : String(err);
    }
    const wallSeconds = (performance.now() - started) / 1000;
    if (code === 130) {
      process.stderr.write("srlm seeds: interrupted; the seeds before this one are in the table\n");
      break;
    }
    const reportFile = join(dir, "report.json");
    const report =
      code === 0 && existsSync(reportFile)
        ? (JSON.parse(readFileSync(reportFile, "utf8")) as RunReport | ReftReport)
        : null;
    runs.push({
      seed,
      out: dir,
      wallSeconds,
      report,
      ...(report ? {} : { error: error ?? `srlm run exited ${code}; logs in ${join(dir, "logs")}` }),
    });
    // Written after every seed, so a long sweep that is stopped keeps what it measured.
    summary = seedsReport(base.method, base.preset, runs);
    writeFileSync(join(out, "seeds.json"), `${JSON.stringify(summary, null, 2)}\n`);
    writeFileSync(join(out, "seeds.txt"), seedsTable(summary));
  }
  if (summary === null) return 130;
  process.stdout.write(`\n${seedsTable(summary)}seeds report: ${join(out, "seeds.json")}\n`);
  return runs.every((r) => r.report !== null) && runs.length === seeds.length ? 0 : 1;
}
