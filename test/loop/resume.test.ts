// Resume points (actors/trainer/resume.ts): written atomically beside the checkpoints, read back
// only for the run and the config inputs they were written for, with an error naming the field
// that changed, and refused when the checkpoint they name was replaced.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  type LoopState,
  readResumePoint,
  resumeFile,
  setAsideResumePoint,
  writeResumePoint,
} from "../../actors/trainer/resume.ts";
import { loadConfig } from "../../config/load.ts";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function setUp() {
  const out = mkdtempSync(join(tmpdir(), "srlm-resume-"));
  dirs.push(out);
  mkdirSync(join(out, "checkpoints", "M2"), { recursive: true });
  writeFileSync(join(out, "checkpoints", "M2", "model.safetensors"), "weights of M2");
  const config = (flags: Record<string, string> = {}) =>
    loadConfig({ preset: "tiny", env: {}, flags: { out, run: "exp1", ...flags } });
  const state: LoopState = {
    nextIteration: 2,
    weights: { version: 2, bucket: "srlm-exp1-weights", name: "v2", digest: `sha256:${"0".repeat(64)}` },
    checkpoint: "M2",
    seenPrompts: ["Reverse: garden", "Add 17 and 25"],
    previousAnswers: null,
    previousHeldOutScores: [5, 3],
    firstHeldOutCorrect: { model: "M1", correct: [true, false] },
    trainingSeconds: 12.5,
    elapsedSeconds: 30,
    iterations: [],
  };
  return { out, config, state };
}

test("a resume point reads back for its run and config, also with more iterations or other actors", () => {
  const { out, config, state } = setUp();
  assert.equal(readResumePoint(config()), null, "no resume point yet");
  writeResumePoint(config(), state, 41);
  assert.deepEqual(
    readdirSync(out).filter((f) => f.includes("tmp")),
    [],
    "no temporary file is left behind",
  );
  const point = readResumePoint(config());
  assert.ok(point);
  assert.deepEqual(point.loop, state);
  assert.equal(point.jobsSubmitted, 41);
  // More iterations, other actors or another backend do not change what the iterations so far computed.
  assert.ok(
    readResumePoint(
      config({ "selfReward.iterations": "5", "actors.generators": "3", "model.backend": "wasm" }),
    ),
  );
});

test("a changed config input is refused, naming the field and both values", () => {
  const { config, state } = setUp();
  writeResumePoint(config(), state, 0);
  assert.throws(
    () => readResumePoint(config({ "selfReward.beta": "0.2" })),
    /written for another config: selfReward\.beta was 0\.1, is now 0\.2; continue with the config it was written for/,
  );
  assert.throws(
    () => readResumePoint(config({ "train.sft.steps": "7", "data.heldOutSize": "9" })),
    /data\.heldOutSize was 40, is now 9; train\.sft\.steps was 250, is now 7/,
  );
  assert.throws(
    () => readResumePoint(config({ "actors.judgeImpl": "verifier" })),
    /actors\.judgeImpl was "self"/,
  );
  assert.throws(() => readResumePoint(config({ run: "exp2" })), /written by run "exp1", this is run "exp2"/);
});

test("a replaced checkpoint or a damaged file is refused; a fresh run sets the point aside", () => {
  const { out, config, state } = setUp();
  writeResumePoint(config(), state, 0);
  writeFileSync(join(out, "checkpoints", "M2", "model.safetensors"), "other weights");
  assert.throws(() => readResumePoint(config()), /model\.safetensors is not the checkpoint it recorded/);
  rmSync(join(out, "checkpoints", "M2"), { recursive: true });
  assert.throws(() => readResumePoint(config()), /its checkpoint .*M2.*model\.safetensors is missing/);
  writeFileSync(resumeFile(out), "{ not json");
  assert.throws(() => readResumePoint(config()), /resume\.json: not valid JSON/);
  const aside = setAsideResumePoint(out);
  assert.ok(aside && existsSync(aside), "the old point is kept under another name");
  assert.equal(existsSync(resumeFile(out)), false);
  assert.equal(setAsideResumePoint(out), null);
});
