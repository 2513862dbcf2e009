// M0 and M1 take most of a run's time and depend only on config, not on the iterations after
// them. Each checkpoint folder records the key of the inputs that made it; a later run with the
// same --out and the same inputs loads it instead of training again, and any change to those
// inputs (or `model.reuse=false`) trains afresh.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../../config/schema.ts";
import { loadCheckpoint } from "../../model/checkpoint.ts";
import type { Policy } from "../policy.ts";

export const STAGE_FILE = "srlm_stage.json";

// Bumped when the code that builds seed data or trains a stage changes what it produces.
const STAGE_FORMAT = 4;

/** Canonical JSON (sorted keys), so equal inputs give equal keys whatever their key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export function stageKey(inputs: unknown): string {
  return createHash("sha256")
    .update(canonical({ format: STAGE_FORMAT, inputs }))
    .digest("hex");
}

/** The tied head, in the inputs only when set, so that keys made before the field existed hold. */
export function tied(cfg: Config): { tieEmbeddings?: true } {
  return cfg.model.tieEmbeddings ? { tieEmbeddings: true } : {};
}

/** `data.math`, with terseShare only when set, so that records made before the field existed hold. */
export function mathInputs(m: Config["data"]["math"]): Partial<Config["data"]["math"]> {
  const { terseShare, ...rest } = m;
  return terseShare > 0 ? m : rest;
}

/** What M0 depends on: the model shape and seed, the seed data, the pretraining settings. */
export function m0Inputs(cfg: Config): unknown {
  return {
    preset: cfg.model.preset,
    seed: cfg.model.seed,
    ...tied(cfg),
    data: selfRewardingData(cfg),
    pretrain: cfg.train.pretrain,
  };
}

/** The data fields the self-rewarding loop reads (ReFT's math problems are not among them). */
function selfRewardingData(cfg: Config): unknown {
  const { math: _math, ...data } = cfg.data;
  return data;
}

/** A file's content digest: a user's data file edited in place must not reuse an old M1. */
function fileDigest(path: string): string | undefined {
  if (!path) return undefined;
  try {
    return createHash("sha256").update(readFileSync(path)).digest("hex");
  } catch {
    return "unreadable";
  }
}

/** What M1 depends on: M0 (srlm's own, or the --base folder), the seed data (the JSONL files' and
 * templates' contents too), the SFT settings. */
export function m1Inputs(cfg: Config): unknown {
  const base = cfg.model.base ? { base: cfg.model.base } : { m0: m0Inputs(cfg) };
  const files = Object.fromEntries(
    Object.entries({
      ...cfg.data.jsonl,
      judge: cfg.judge.promptTemplate,
      selfInstruct: cfg.selfInstruct.template,
    })
      .map(([k, path]) => [k, fileDigest(path)])
      .filter(([, d]) => d !== undefined),
  );
  const contents = Object.keys(files).length > 0 ? { files } : {};
  return {
    ...base,
    data: selfRewardingData(cfg),
    ...contents,
    fewShot: cfg.selfReward.fewShot,
    sft: cfg.train.sft,
  };
}

/** What M1 depends on with `train.ownEft`: the SFT phase's inputs, the second phase's settings,
 * and the sampling settings its answers are drawn with. */
export function ownEftInputs(cfg: Config): unknown {
  const s = cfg.selfReward;
  return {
    sft: m1Inputs(cfg),
    ownEft: cfg.train.ownEft,
    sampling: { temperature: s.temperature, topP: s.topP, topK: s.topK, maxNewTokens: s.maxNewTokens },
  };
}

/** What ReFT's M0 depends on: the model shape and seed (or the --base folder), the math problems
 * (the JSONL files' contents too), the pretraining settings. */
export function reftM0Inputs(cfg: Config): unknown {
  const m = cfg.data.math;
  const files = m.train ? { files: { train: fileDigest(m.train), heldOut: fileDigest(m.heldOut) } } : {};
  const model = cfg.model.base
    ? { base: cfg.model.base }
    : { preset: cfg.model.preset, seed: cfg.model.seed, ...tied(cfg) };
  return {
    method: "reft",
    ...model,
    dataSeed: cfg.data.seed,
    math: mathInputs(m),
    ...files,
    pretrain: cfg.train.pretrain,
  };
}

/** What a ReFT SFT stage (the warm-up, the SFT baseline) depends on: M0, its settings, its epochs. */
export function reftSftInputs(cfg: Config, epochs: number): unknown {
  return { m0: reftM0Inputs(cfg), format: cfg.data.format, sft: cfg.reft.sft, epochs };
}

/** True when `dir` holds a checkpoint written for exactly these inputs. */
export function stageMatches(dir: string, key: string): boolean {
  const file = join(dir, STAGE_FILE);
  if (!existsSync(join(dir, "config.json")) || !existsSync(file)) return false;
  try {
    return (JSON.parse(readFileSync(file, "utf8")) as { key?: string }).key === key;
  } catch {
    return false;
  }
}

export function recordStage(dir: string, key: string, inputs: unknown): void {
  writeFileSync(join(dir, STAGE_FILE), `${JSON.stringify({ key, inputs }, null, 2)}\n`);
}

/** Called before a stage is trained again, so a crash mid-save never leaves a stale key behind. */
export function forgetStage(dir: string): void {
  rmSync(join(dir, STAGE_FILE), { force: true });
}

/**
 * The checkpoint in `dir` an earlier run wrote from the inputs of `key`, as version 0, or null
 * (then the folder's record is cleared, since the stage is about to be trained again). `say`
 * hears of a reuse, to log it and show it as progress.
 */
export function reusedStage(
  dir: string,
  key: string,
  reuse: boolean,
  say: (dir: string) => void,
): Policy | null {
  if (!reuse || !stageMatches(dir, key)) {
    forgetStage(dir);
    return null;
  }
  const { model, tokenizer } = loadCheckpoint(dir);
  say(dir);
  return { version: 0, model, tokenizer };
}
