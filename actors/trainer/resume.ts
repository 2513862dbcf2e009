// Durable trainer progress. After M1 and after each finished self-rewarding iteration the trainer
// writes a resume point, <out>/resume.json: which checkpoint holds the current policy (the
// checkpoint folder the loop writes anyway, named by its weights' digest), the loop's own state
// (seen prompts, the previous model's held-out answers and scores, M1's correctness, the
// iteration reports so far, the trainer's busy seconds) and how many jobs it had submitted. A
// trainer that starts and finds one for its run and config loads that checkpoint and goes on with
// the next iteration.
//
// Nothing else is needed to replay an iteration exactly: every job seed and every random draw of
// the loop is derived from the config and the iteration's labels (SelfRewardingLoop.loopSeed), and
// each iteration trains with a fresh optimizer, so there is no optimizer state or RNG position to
// keep. The file is written to a temporary name and renamed over the old one, so a kill mid-write
// leaves the previous resume point whole.
//
// The same JSON also goes to the run's weights bucket (object `resume`), where the weights it
// names are already published: a trainer started on another host, with an --out of its own,
// goes on from there when its --out holds no resume point.
//
// ReFT (reft.ts) records a resume point of its own method after the reranker is trained and
// after each PPO update. PPO's optimizer and minibatch order carry over from update to update,
// so its point names more than the policy: the policy with its value head and the PpoTrainer's
// state in one checkpoint folder (ReFT-update-<u>), and the warm-up, SFT and reranker checkpoints
// the rest of the run reads. Every one of those files is recorded by digest. Those files live
// only in the out folder, so a ReFT point is never read from the bus.
import { createHash } from "node:crypto";
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { WeightRef } from "../../bus/messages.ts";
import { getBlob, getNamedBlob } from "../../bus/objects.ts";
import { weightsBucket } from "../../bus/permissions.ts";
import type { Config } from "../../config/schema.ts";
import {
  loadCheckpoint,
  TRAINER_STATE_FILE,
  TRAINER_TENSORS_FILE,
  WEIGHTS_FILE,
} from "../../model/checkpoint.ts";
import { type Policy, policyFromBlob } from "../policy.ts";
import type { LossSummary } from "./loops.ts";
import type { PpoUpdateReport, ReftReport } from "./reftReport.ts";
import type { IterationReport } from "./report.ts";
import { m1Inputs, mathInputs, stageKey, tied } from "./stageCache.ts";

export const RESUME_FILE = "resume.json";
/** The resume point's name in the run's weights bucket. */
export const RESUME_OBJECT = "resume";

// Bumped when the loop's state or the meaning of a field in the file changes.
const RESUME_FORMAT = 1;

/** What the self-rewarding loop needs to go on from the start of iteration `nextIteration`. */
export interface LoopState {
  /** The next iteration t (M_t → M_{t+1}); the report of iteration t-1 is the last in `iterations`. */
  nextIteration: number;
  /** The policy M_t as it was published. */
  weights: WeightRef;
  /** Its checkpoint folder under <out>/checkpoints/ (M1, M2…). */
  checkpoint: string;
  seenPrompts: string[];
  previousAnswers: string[] | null;
  previousHeldOutScores: number[] | null;
  firstHeldOutCorrect: { model: string; correct: boolean[] } | null;
  trainingSeconds: number;
  /** Wall seconds of the run before this point, over all trainer lives. */
  elapsedSeconds: number;
  iterations: IterationReport[];
}

/** What the ReFT loop needs to go on after the last report in `updates` (update 0: none yet). */
export interface ReftLoopState {
  /** The policy after the last update, with its value head, as it was published. */
  weights: WeightRef;
  /** Its checkpoint folder under <out>/checkpoints/, which holds the PpoTrainer's state too. */
  checkpoint: string;
  /** The warm-up (the KL reference) and the SFT baseline as they were published; the SFT is the
   * warm-up's ref when the two are one model. */
  referenceWeights: WeightRef;
  sftWeights: WeightRef;
  /** Checkpoint folders of the warm-up, the SFT baseline (null: it is the warm-up) and the
   * reranker (null: none was trained). */
  warmupCheckpoint: string;
  sftCheckpoint: string | null;
  rerankerCheckpoint: string | null;
  /** The training questions still to come in the current epoch's order, and epochs drawn. */
  questionOrder: number[];
  questionEpoch: number;
  rewardJudges: string[];
  sftLoss: { warmup: LossSummary | null; sft: LossSummary | null };
  reranker: ReftReport["reranker"];
  updates: PpoUpdateReport[];
  stageSeconds: Record<string, number>;
  trainingSeconds: number;
  /** Wall seconds of the run before this point, over all trainer lives. */
  elapsedSeconds: number;
}

export type ResumeMethod = Config["method"];

/** A method's state, tagged with the method, so one method's point is never read as another's. */
export type MethodResume =
  | { method: "self-rewarding"; loop: LoopState }
  | { method: "reft"; loop: ReftLoopState };

export type ResumePoint = {
  format: number;
  run: string;
  /** stageKey of `inputs`: the config fields that decide what the run computes. */
  key: string;
  inputs: unknown;
  /** sha256 of the checkpoint's model.safetensors, so a replaced folder is refused. */
  weightsDigest: string;
  /** sha256 of every further file the state reads, by path under the out folder (ReFT). */
  files?: Record<string, string>;
  /** Jobs submitted before this point: a resumed trainer numbers its jobs on from here (jobs.ts). */
  jobsSubmitted: number;
} & MethodResume;

const METHOD_NAMES: Record<ResumeMethod, string> = { "self-rewarding": "self-rewarding", reft: "ReFT" };

/**
 * The config fields a run's results depend on, shaped like the config so that a difference names
 * the field. Left out, because they change how the run is carried out and not what it computes:
 * `out`, `nats`, `log`, `model.backend` (a resumed run may move to another host), `model.reuse`,
 * every `actors.*` but `judgeImpl`, and `selfReward.iterations`, so that a finished run can be
 * continued for more iterations. ReFT's are its own (reftResumeInputs).
 */
export function resumeInputs(cfg: Config, method: ResumeMethod = cfg.method): unknown {
  if (method === "reft") return reftResumeInputs(cfg);
  const { iterations: _iterations, ...selfReward } = cfg.selfReward;
  const { files } = m1Inputs(cfg) as { files?: Record<string, string> };
  return {
    model: { preset: cfg.model.preset, base: cfg.model.base, seed: cfg.model.seed, ...tied(cfg) },
    data: cfg.data,
    train: cfg.train,
    selfReward,
    judge: cfg.judge,
    selfInstruct: cfg.selfInstruct,
    actors: { judgeImpl: cfg.actors.judgeImpl },
    // The contents of the files the config names (JSONL data, templates), not only their paths.
    ...(files ? { fileContents: files } : {}),
  };
}

/**
 * ReFT's: what its stages read. `reft.updates` is left out so that a finished run can be extended
 * (nothing an update computes depends on how many follow it); `actors.batchSize` is kept, because
 * a rollout job's seed is its index among the update's jobs of that many questions.
 */
function reftResumeInputs(cfg: Config): unknown {
  const { updates: _updates, ...reft } = cfg.reft;
  const m = cfg.data.math;
  const fileContents = Object.fromEntries(
    Object.entries({ train: m.train, heldOut: m.heldOut })
      .filter(([, path]) => path)
      .map(([k, path]) => [k, existsSync(path) ? fileDigest(path) : "unreadable"]),
  );
  return {
    model: { preset: cfg.model.preset, base: cfg.model.base, seed: cfg.model.seed, ...tied(cfg) },
    data: { seed: cfg.data.seed, format: cfg.data.format, math: mathInputs(m) },
    train: { pretrain: cfg.train.pretrain },
    reft,
    judge: cfg.judge,
    actors: { judgeImpl: cfg.actors.judgeImpl, batchSize: cfg.actors.batchSize },
    ...(Object.keys(fileContents).length > 0 ? { fileContents } : {}),
  };
}

/** Files under the out folder a state reads besides its checkpoint's model.safetensors. */
function furtherFiles(resume: MethodResume): string[] {
  if (resume.method === "self-rewarding") return [];
  const s = resume.loop;
  const weights = (folder: string | null) => (folder ? [join("checkpoints", folder, WEIGHTS_FILE)] : []);
  return [
    join("checkpoints", s.checkpoint, TRAINER_STATE_FILE),
    join("checkpoints", s.checkpoint, TRAINER_TENSORS_FILE),
    ...weights(s.warmupCheckpoint),
    ...weights(s.sftCheckpoint),
    ...weights(s.rerankerCheckpoint),
  ];
}

/** Dotted paths whose values differ between two JSON values, with both values. */
function differences(
  before: unknown,
  now: unknown,
  path = "",
): { path: string; before: unknown; now: unknown }[] {
  const isObject = (x: unknown): x is Record<string, unknown> =>
    x !== null && typeof x === "object" && !Array.isArray(x);
  if (isObject(before) && isObject(now)) {
    const keys = [...new Set([...Object.keys(before), ...Object.keys(now)])].sort();
    return keys.flatMap((k) => differences(before[k], now[k], path ? `${path}.${k}` : k));
  }
  return JSON.stringify(before) === JSON.stringify(now) ? [] : [{ path, before, now }];
}

const shown = (x: unknown) => (x === undefined ? "(unset)" : JSON.stringify(x));

function fileDigest(path: string): string {
  return `sha256:${createHash("sha256").update(readFileSync(path)).digest("hex")}`;
}

/** Writes `text` to `file` so that a reader sees the old content or the new, never a part. */
function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = openSync(tmp, "w", 0o644);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

export function resumeFile(out: string): string {
  return join(out, RESUME_FILE);
}

/** Writes the resume point to `<out>/resume.json` and returns its text (for the bus copy). */
export function writeResumePoint(cfg: Config, resume: MethodResume, jobsSubmitted: number): string {
  const inputs = resumeInputs(cfg, resume.method);
  const files = furtherFiles(resume);
  const point: ResumePoint = {
    format: RESUME_FORMAT,
    run: cfg.run,
    key: stageKey(inputs),
    inputs,
    weightsDigest: fileDigest(join(cfg.out, "checkpoints", resume.loop.checkpoint, WEIGHTS_FILE)),
    ...(files.length > 0
      ? { files: Object.fromEntries(files.map((f) => [f, fileDigest(join(cfg.out, f))])) }
      : {}),
    jobsSubmitted,
    ...resume,
  };
  const text = `${JSON.stringify(point)}\n`;
  writeAtomically(resumeFile(cfg.out), text);
  return text;
}

const REMEDY_TAIL =
  "continue with the config it was written for (`srlm run --resume --out DIR` reads DIR/config.json), " +
  "or start the run over: `srlm run` without --resume sets it aside";

/**
 * The resume point in `cfg.out`, or null when there is none. One that cannot be used for this
 * config (another run, other inputs, a replaced checkpoint, a damaged file) is an error naming
 * why: going on from it would mix two runs, and starting over silently would throw it away.
 */
export function readResumePoint(cfg: Config, method: ResumeMethod = cfg.method): ResumePoint | null {
  const file = resumeFile(cfg.out);
  if (!existsSync(file)) return null;
  const remedy = `${REMEDY_TAIL}, or remove ${file}`;
  const point = checkedPoint(readFileSync(file, "utf8"), file, cfg, method, remedy);
  const recorded = {
    [join("checkpoints", point.loop.checkpoint, WEIGHTS_FILE)]: point.weightsDigest,
    ...point.files,
  };
  for (const [path, digest] of Object.entries(recorded)) {
    const onDisk = join(cfg.out, path);
    if (!existsSync(onDisk))
      throw new Error(`resume point ${file}: its checkpoint ${onDisk} is missing; ${remedy}`);
    if (fileDigest(onDisk) !== digest)
      throw new Error(
        `resume point ${file}: ${onDisk} is not the checkpoint it recorded (digest ${fileDigest(onDisk)}, ` +
          `recorded ${digest}); ${remedy}`,
      );
  }
  return point;
}

/** The run's resume point in its weights bucket with the policy it names (fetched and verified
 * by digest), or null when the bucket holds none. Refused as readResumePoint refuses. */
export async function readBusResumePoint(
  nc: Parameters<typeof getNamedBlob>[0],
  cfg: Config,
): Promise<{ point: ResumePoint; policy: Policy } | null> {
  const bucket = weightsBucket(cfg.run);
  const bytes = await getNamedBlob(nc, bucket, RESUME_OBJECT);
  if (!bytes) return null;
  const where = `${bucket}/${RESUME_OBJECT}`;
  const point = checkedPoint(new TextDecoder().decode(bytes), where, cfg, cfg.method, REMEDY_TAIL);
  if (point.method === "reft")
    throw new Error(
      `resume point ${where}: a ReFT run resumes from the out folder that holds its optimizer state and ` +
        `its warm-up, SFT and reranker checkpoints, not from the bus; start the trainer with that --out`,
    );
  const policy = policyFromBlob(await getBlob(nc, point.loop.weights));
  if (policy.version !== point.loop.weights.version)
    throw new Error(
      `resume point ${where}: the weights it names hold version ${policy.version}, not ${point.loop.weights.version}`,
    );
  return { point, policy };
}

/** A resume point's text parsed and checked against this run, method and config (not its weights). */
function checkedPoint(
  text: string,
  where: string,
  cfg: Config,
  method: ResumeMethod,
  remedy: string,
): ResumePoint {
  const file = where;
  let point: ResumePoint;
  try {
    point = JSON.parse(text) as ResumePoint;
  } catch (err) {
    throw new Error(`resume point ${file}: not valid JSON (${(err as Error).message}); ${remedy}`);
  }
  if (point === null || typeof point !== "object" || Array.isArray(point))
    throw new Error(`resume point ${file}: not a JSON object; ${remedy}`);
  // Points written before ReFT could resume carry no method: only the self-rewarding loop wrote them.
  point.method ??= "self-rewarding";
  if (!(point.method in METHOD_NAMES))
    throw new Error(`resume point ${file}: unknown method ${shown(point.method)}; ${remedy}`);
  if (point.format !== RESUME_FORMAT)
    throw new Error(
      `resume point ${file}: format ${shown(point.format)}, this srlm reads format ${RESUME_FORMAT}; ${remedy}`,
    );
  if (point.run !== cfg.run)
    throw new Error(
      `resume point ${file}: written by run ${shown(point.run)}, this is run ${shown(cfg.run)}; ${remedy}`,
    );
  if (point.method !== method)
    throw new Error(
      `resume point ${file}: written by a ${METHOD_NAMES[point.method]} run, this run's method is ` +
        `${METHOD_NAMES[method]} (method=${method}); ${remedy}`,
    );
  const inputs = resumeInputs(cfg, method);
  if (point.key !== stageKey(inputs)) {
    const diff = differences(point.inputs, JSON.parse(JSON.stringify(inputs)));
    const listed = diff
      .slice(0, 3)
      .map((d) => `${d.path} was ${shown(d.before)}, is now ${shown(d.now)}`)
      .join("; ");
    const more = diff.length > 3 ? ` (and ${diff.length - 3} more)` : "";
    throw new Error(
      `resume point ${file} was written for another config: ${listed || "the recorded inputs differ"}${more}; ${remedy}`,
    );
  }
  return point;
}

/** The policy a resume point goes on from, as version `weights.version`. */
export function resumePolicy(cfg: Config, point: ResumePoint): Policy {
  const { model, tokenizer } = loadCheckpoint(join(cfg.out, "checkpoints", point.loop.checkpoint));
  return { version: point.loop.weights.version, model, tokenizer };
}

/**
 * A fresh `srlm run` in an out folder that holds a resume point: the point is renamed aside (not
 * deleted, a mistyped command must not cost a run) and the path it went to returned.
 */
export function setAsideResumePoint(out: string): string | null {
  const file = resumeFile(out);
  if (!existsSync(file)) return null;
  const aside = join(out, `resume.set-aside-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  renameSync(file, aside);
  return aside;
}
