// Comparing two runs' report.json: a run whose processes were killed must report what an
// undisturbed run of the same config reports. Only the fields listed in IGNORED_REPORT_FIELDS are
// left out, each for the reason given there; everything else (accuracies, win rates, pairs, DPO
// figures, per-stage job and failure counts, the bus's counts, the written samples) must be equal.

/** Report fields that legitimately differ between two runs of one config, and why. */
export const IGNORED_REPORT_FIELDS: Record<string, string> = {
  wallSeconds: "wall-clock time of the run: kills, restarts and a busy machine change it",
  trainerBusySeconds: "seconds the trainer computed: wall-clock time too",
  actors:
    "per-process stats (jobs processed, idle and up time) of the processes alive at the end: a killed " +
    "process's counts go with it, and its replacement starts from zero",
  "iterations[].wallSeconds": "wall-clock time of each iteration",
  "iterations[].stageSeconds": "wall-clock time of each stage",
  stageSeconds: "ReFT: wall-clock time of each stage over the run",
  "updates[].seconds": "ReFT: wall-clock time of each PPO update",
};

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The report with the ignored fields removed. */
export function comparableReport(report: Json): Json {
  const copy = structuredClone(report) as { [key: string]: Json };
  for (const field of Object.keys(IGNORED_REPORT_FIELDS)) {
    const [list, inner] = field.split("[].");
    if (inner !== undefined) {
      for (const it of (copy[list] ?? []) as { [key: string]: Json }[]) delete it[inner];
    } else delete copy[field];
  }
  return copy;
}

/** Dotted paths where two comparable reports differ (empty when they are equal). */
export function reportDifferences(a: Json, b: Json, path = ""): string[] {
  if (Array.isArray(a) && Array.isArray(b)) {
    const out: string[] = a.length === b.length ? [] : [`${path}: ${a.length} entries vs ${b.length}`];
    for (let i = 0; i < Math.min(a.length, b.length); i++)
      out.push(...reportDifferences(a[i], b[i], `${path}[${i}]`));
    return out;
  }
  const isObject = (x: Json): x is { [key: string]: Json } =>
    x !== null && typeof x === "object" && !Array.isArray(x);
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) =>
      k in a && k in b
        ? reportDifferences(a[k], b[k], path ? `${path}.${k}` : k)
        : [`${path ? `${path}.` : ""}${k}: only in the ${k in a ? "first" : "second"} report`],
    );
  }
  return JSON.stringify(a) === JSON.stringify(b)
    ? []
    : [`${path}: ${JSON.stringify(a)?.slice(0, 80)} vs ${JSON.stringify(b)?.slice(0, 80)}`];
}
