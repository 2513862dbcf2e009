// Measures the model engine on ONE backend for one shape: matmul peak, training tokens/s,
// generation tokens/s with and without the KV cache, and MFU. Prints readable lines, then one
// JSON object as the last line (bench/model.ts collects it). Never asserts on time.
import * as tf from "@tensorflow/tfjs";
import { type BackendPreference, selectBackend } from "../model/backend.ts";
import { presetConfig } from "../model/config.ts";
import { generate } from "../model/generate.ts";
import { Llama } from "../model/llama.ts";
import { Rng } from "../model/random.ts";
import { CharTokenizer } from "../model/tokenizer.ts";
import { Trainer } from "../model/train.ts";
import { kernelTimes } from "./kernelTimes.ts";

const SHAPES = {
  small: { preset: "small", batch: 8, seq: 64 },
  small4: { preset: "small4", batch: 8, seq: 64 },
  bench: { preset: "bench", batch: 8, seq: 256 },
} as const;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const now = () => performance.now() / 1000;

async function matmulGflops(n: number, reps: number): Promise<number> {
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  const once = async () => {
    const t0 = now();
    const c = tf.matMul(a, b);
    await c.data();
    c.dispose();
    return now() - t0;
  };
  await once(); // warmup: kernel compilation, memory growth
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < reps; i++) best = Math.min(best, await once());
  a.dispose();
  b.dispose();
  return (2 * n ** 3) / best / 1e9;
}

/** Per-kernel time of one training step, to see where a step goes (--profile). */
async function profileStep(step: () => void): Promise<void> {
  const t0 = now();
  const info = await tf.profile(step);
  const wallMs = (now() - t0) * 1000;
  const rows = kernelTimes(info);
  const total = rows.reduce((a, e) => a + e.ms, 0);
  console.log(
    `profile of one training step: ${info.kernels.length} kernel calls, ${total.toFixed(1)} ms in kernels, ${wallMs.toFixed(1)} ms wall (profiling included)`,
  );
  for (const e of rows.slice(0, 25))
    console.log(
      `  ${e.name.padEnd(22)} ${e.ms.toFixed(2).padStart(8)} ms ${String(e.calls).padStart(5)} calls`,
    );
}

async function main(): Promise<void> {
  const backend = arg("backend", "auto") as BackendPreference;
  const shapeName = arg("shape", "small");
  if (!(shapeName in SHAPES)) throw new Error(`--shape must be one of ${Object.keys(SHAPES).join(", ")}`);
  const shape = SHAPES[shapeName as keyof typeof SHAPES];
  // 10 steps at the small shapes, 3 at the bench shape (bench/torch_ref.py takes as many)
  const steps = Number(arg("steps", shapeName === "bench" ? "3" : "10"));
  const choice = await selectBackend(backend, { info() {} });
  console.log(
    `backend ${choice.name}${choice.skipped.length ? ` (skipped: ${choice.skipped.map((s) => s.name).join(", ")})` : ""}`,
  );

  const matmul = await matmulGflops(1024, 5);
  console.log(`matmul 1024x1024 f32: ${matmul.toFixed(2)} GFLOP/s (best of 5)`);

  const tokenizer = new CharTokenizer();
  const config = presetConfig(shape.preset, {
    vocabSize: tokenizer.vocabSize,
    bosId: tokenizer.bosId,
    eosId: tokenizer.eosId,
    padId: tokenizer.padId,
  });
  const model = Llama.init(config, { seed: 0 });
  const params = model.numParams();
  console.log(
    `model ${shape.preset}: ${(params / 1e6).toFixed(2)}M params, batch ${shape.batch} x seq ${shape.seq}`,
  );

  const rng = new Rng(1);
  const randomIds = (n: number) => Array.from({ length: n }, () => 4 + rng.int(tokenizer.vocabSize - 4));
  const batch = Array.from({ length: shape.batch }, () => ({
    prompt: randomIds(1),
    response: randomIds(shape.seq),
  }));
  const trainer = new Trainer(model, { schedule: { kind: "constant", peak: 1e-4 } });
  trainer.sftStep(batch); // warmup
  // best step, as bench/torch_ref.py measures PyTorch: on a shared machine the minimum is what
  // the code can do, and the ratio compares like with like; the median is what a long run
  // sustains (GC, allocator and thread wake-ups included), reported beside it
  const times: number[] = [];
  for (let i = 0; i < steps; i++) {
    const t0 = now();
    trainer.sftStep(batch);
    times.push(now() - t0);
  }
  times.sort((a, b) => a - b);
  const trainTokensPerSec = (shape.batch * shape.seq) / times[0];
  const trainTokensPerSecMedian = (shape.batch * shape.seq) / times[Math.floor(times.length / 2)];
  if (process.argv.includes("--profile")) await profileStep(() => trainer.sftStep(batch));
  const mfu = (6 * params * trainTokensPerSec) / (matmul * 1e9);
  console.log(
    `train (fwd+bwd+AdamW): ${trainTokensPerSec.toFixed(0)} tokens/s (best of ${steps} steps; median ${trainTokensPerSecMedian.toFixed(0)}), MFU ${(100 * mfu).toFixed(1)}%`,
  );

  const prompts = Array.from({ length: 8 }, () => [tokenizer.bosId, ...randomIds(15)]);
  const genOpts = { maxNewTokens: 32, temperature: 0, eosIds: [] as number[] };
  const genRate = (useCache: boolean): number => {
    generate(model, tokenizer, prompts, { ...genOpts, maxNewTokens: 2, useCache });
    const g0 = now();
    const out = generate(model, tokenizer, prompts, { ...genOpts, useCache });
    return out.reduce((n, g) => n + g.ids.length, 0) / (now() - g0);
  };
  const genCached = genRate(true);
  const genUncached = genRate(false);
  console.log(
    `generate batch 8 x 32 new: ${genCached.toFixed(0)} tokens/s with KV cache, ${genUncached.toFixed(0)} without`,
  );

  trainer.dispose();
  model.dispose();
  console.log(
    JSON.stringify({
      backend: choice.name,
      shape: shapeName,
      params,
      batch: shape.batch,
      seq: shape.seq,
      matmulGflops: matmul,
      trainTokensPerSec,
      trainTokensPerSecMedian,
      generateTokensPerSecCached: genCached,
      generateTokensPerSecUncached: genUncached,
      mfu,
    }),
  );
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
