// `npm run bench:model`: the model's throughput on each tfjs backend next to PyTorch on the
// same machine and shapes. Each backend runs in its own process (bench/modelRun.ts, or
// bench/blasProbe.ts until that exists), so one backend's memory and threads never colour
// another's figures. Prints a table, then one JSON object as the last line. Never asserts on time.
//
//   npm run bench:model [-- --shapes small,bench --backends blas,wasm,cpu --runner model|probe]
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { loadBlasAddon } from "../native/index.ts";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..");

interface Figures {
  backend: string;
  shape: string;
  matmulGflops: number;
  trainTokensPerSec: number;
  /** Median step: what a long run sustains (absent from older runners). */
  trainTokensPerSecMedian?: number;
  genTokensPerSecCached: number;
  genTokensPerSecUncached: number;
  mfu?: number;
  [k: string]: unknown;
}

type Outcome = { ok: true; figures: Figures; seconds: number } | { ok: false; reason: string };

const CHILD_TIMEOUT_MS = 150_000;

/** Extra flags per backend and shape: slow backends take fewer steps so the bench stays short. */
function runnerArgs(backend: string, shape: string): string[] | { skip: string } {
  if (backend === "cpu" && shape === "bench") {
    return { skip: "tfjs cpu needs minutes per training step at this shape" };
  }
  if (backend === "blas") return [];
  return ["--steps", "1"];
}

function lastJson(stdout: string): Figures | null {
  const lines = stdout.trim().split("\n");
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i].trim();
    if (!line.startsWith("{")) continue;
    try {
      return JSON.parse(line) as Figures;
    } catch {
      return null;
    }
  }
  return null;
}

/** bench/modelRun.ts spells the generation fields out; accept both spellings. */
function normalise(f: Figures | null): Figures | null {
  if (!f) return null;
  const cached = f.genTokensPerSecCached ?? (f.generateTokensPerSecCached as number | undefined);
  const uncached = f.genTokensPerSecUncached ?? (f.generateTokensPerSecUncached as number | undefined);
  return { ...f, genTokensPerSecCached: cached, genTokensPerSecUncached: uncached };
}

function run(cmd: string, args: string[]): Outcome {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { cwd: root, encoding: "utf8", timeout: CHILD_TIMEOUT_MS });
  const seconds = (performance.now() - t0) / 1000;
  if ((r.error as NodeJS.ErrnoException | undefined)?.code === "ETIMEDOUT") {
    return { ok: false, reason: `timed out after ${CHILD_TIMEOUT_MS / 1000} s` };
  }
  if (r.error) return { ok: false, reason: `${cmd} failed to start: ${r.error.message}` };
  if (r.signal) return { ok: false, reason: `killed by ${r.signal} after ${seconds.toFixed(0)} s` };
  const figures = normalise(lastJson(r.stdout));
  if (r.status !== 0 || !figures) {
    const err = (r.stderr || r.stdout || "").trim().split("\n").slice(-3).join(" | ");
    return { ok: false, reason: `exit ${r.status}: ${err.slice(0, 300)}` };
  }
  return { ok: true, figures, seconds };
}

function backendUnavailable(name: string): string | null {
  if (name === "blas") {
    const loaded = loadBlasAddon();
    return loaded.ok ? null : loaded.reason;
  }
  return null;
}

function findTorchPython(): { python: string } | { skip: string } {
  for (const python of ["/usr/bin/python3", "python3"]) {
    const r = spawnSync(python, ["-c", "import torch"], { encoding: "utf8" });
    if (!r.error && r.status === 0) return { python };
  }
  return { skip: "no python3 with torch (Debian: apt-get install python3-torch libopenblas0-pthread)" };
}

function fmt(n: number | undefined, digits = 0): string {
  return n === undefined || !Number.isFinite(n) ? "-" : n.toFixed(digits);
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      shapes: { type: "string", default: "small,bench" },
      backends: { type: "string", default: "blas,wasm,cpu" },
      runner: { type: "string", default: "model" },
    },
  });
  const shapes = values.shapes.split(",").filter(Boolean);
  const backends = values.backends.split(",").filter(Boolean);
  // --runner probe forces bench/blasProbe.ts, whose shapes match bench/torch_ref.py exactly
  const runner =
    values.runner !== "probe" && existsSync(join(here, "modelRun.ts"))
      ? "bench/modelRun.ts"
      : "bench/blasProbe.ts";
  console.log(`runner: ${runner}`);

  const results: Record<string, Record<string, Figures>> = {};
  const skipped: { backend: string; shape: string; reason: string }[] = [];
  const torch = findTorchPython();

  for (const shape of shapes) {
    results[shape] = {};
    for (const backend of backends) {
      const extra = runnerArgs(backend, shape);
      const reason = backendUnavailable(backend) ?? (Array.isArray(extra) ? null : extra.skip);
      if (reason !== null || !Array.isArray(extra)) {
        skipped.push({ backend, shape, reason: reason ?? "not run" });
        console.log(`${backend} ${shape}: skipped (${reason})`);
        continue;
      }
      const out = run(process.execPath, [
        "--import",
        "tsx",
        runner,
        "--backend",
        backend,
        "--shape",
        shape,
        ...extra,
      ]);
      if (!out.ok) {
        skipped.push({ backend, shape, reason: out.reason });
        console.log(`${backend} ${shape}: failed (${out.reason})`);
        continue;
      }
      results[shape][backend] = out.figures;
      console.log(`${backend} ${shape}: done in ${out.seconds.toFixed(0)} s`);
    }
    if ("python" in torch) {
      const out = run(torch.python, [join("bench", "torch_ref.py"), "--shape", shape]);
      if (out.ok) results[shape].torch = out.figures;
      else skipped.push({ backend: "torch", shape, reason: out.reason });
      console.log(
        `torch ${shape}: ${out.ok ? `done in ${out.seconds.toFixed(0)} s` : `failed (${out.reason})`}`,
      );
    } else {
      skipped.push({ backend: "torch", shape, reason: torch.skip });
      console.log(`torch ${shape}: skipped (${torch.skip})`);
    }
  }

  const ratios: Record<
    string,
    Record<string, { train: number | null; trainMedian: number | null; genCached: number | null }>
  > = {};
  console.log("");
  console.log(
    [
      "shape",
      "backend",
      "matmul GF/s",
      "train tok/s",
      "gen cached",
      "gen uncached",
      "MFU",
      "train/torch",
      "(median)",
      "gen/torch",
    ]
      .map((h, i) => (i < 2 ? h.padEnd(8) : h.padStart(12)))
      .join(" "),
  );
  for (const shape of shapes) {
    const ref = results[shape].torch;
    ratios[shape] = {};
    for (const [backend, f] of Object.entries(results[shape])) {
      const train = ref && backend !== "torch" ? f.trainTokensPerSec / ref.trainTokensPerSec : null;
      const trainMedian =
        ref?.trainTokensPerSecMedian && f.trainTokensPerSecMedian && backend !== "torch"
          ? f.trainTokensPerSecMedian / ref.trainTokensPerSecMedian
          : null;
      const gen = ref && backend !== "torch" ? f.genTokensPerSecCached / ref.genTokensPerSecCached : null;
      if (backend !== "torch") ratios[shape][backend] = { train, trainMedian, genCached: gen };
      console.log(
        [
          shape.padEnd(8),
          backend.padEnd(8),
          fmt(f.matmulGflops, 1).padStart(12),
          fmt(f.trainTokensPerSec).padStart(12),
          fmt(f.genTokensPerSecCached).padStart(12),
          fmt(f.genTokensPerSecUncached).padStart(12),
          fmt(f.mfu === undefined ? undefined : f.mfu * 100, 1).padStart(11) +
            (f.mfu === undefined ? " " : "%"),
          (train === null ? "-" : `${train.toFixed(2)}x`).padStart(12),
          (trainMedian === null ? "-" : `${trainMedian.toFixed(2)}x`).padStart(12),
          (gen === null ? "-" : `${gen.toFixed(2)}x`).padStart(12),
        ].join(" "),
      );
    }
  }
  for (const s of skipped) console.log(`skipped ${s.backend} ${s.shape}: ${s.reason}`);
  console.log(JSON.stringify({ runner, results, ratios, skipped }));
}

await main();
