// M0/M1 reuse: a checkpoint is reused only for exactly the inputs that made it.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  forgetStage,
  m0Inputs,
  m1Inputs,
  recordStage,
  reftM0Inputs,
  stageKey,
  stageMatches,
} from "../../actors/trainer/stageCache.ts";
import { loadConfig } from "../../config/load.ts";

const config = (flags: Record<string, string> = {}) => loadConfig({ preset: "demo", env: {}, flags });

test("stage keys ignore key order and what comes after the stage", () => {
  assert.equal(stageKey({ a: 1, b: [1, { c: 2, d: 3 }] }), stageKey({ b: [1, { d: 3, c: 2 }], a: 1 }));
  const base = config();
  const laterSettings = config({ "selfReward.iterations": "5", "train.dpo.steps": "7", out: "elsewhere" });
  assert.equal(stageKey(m0Inputs(base)), stageKey(m0Inputs(laterSettings)));
  assert.equal(stageKey(m1Inputs(base)), stageKey(m1Inputs(laterSettings)));
});

test("changing what made a stage changes its key; M1 follows M0", () => {
  const base = config();
  const morePretraining = config({ "train.pretrain.steps": "10" });
  assert.notEqual(stageKey(m0Inputs(base)), stageKey(m0Inputs(morePretraining)));
  assert.notEqual(stageKey(m1Inputs(base)), stageKey(m1Inputs(morePretraining)));
  const moreSft = config({ "train.sft.steps": "10" });
  assert.equal(stageKey(m0Inputs(base)), stageKey(m0Inputs(moreSft)));
  assert.notEqual(stageKey(m1Inputs(base)), stageKey(m1Inputs(moreSft)));
  assert.notEqual(stageKey(m1Inputs(base)), stageKey(m1Inputs(config({ "model.base": "some/dir" }))));
});

test("ReFT's M0 key follows the share of terse solutions, and leaves it out at 0 as keys made before it did", () => {
  const reft = (flags: Record<string, string> = {}) =>
    loadConfig({ preset: "reft-demo", env: {}, flags: { "data.math.terseShare": "0", ...flags } });
  const worked = reftM0Inputs(reft()) as { math: Record<string, unknown> };
  assert.equal("terseShare" in worked.math, false);
  assert.notEqual(stageKey(worked), stageKey(reftM0Inputs(reft({ "data.math.terseShare": "0.6" }))));
  assert.notEqual(
    stageKey(reftM0Inputs(reft({ "data.math.terseShare": "0.5" }))),
    stageKey(reftM0Inputs(reft({ "data.math.terseShare": "0.6" }))),
  );
});

test("a checkpoint folder matches only the key recorded with it, and forgetting clears it", () => {
  const dir = mkdtempSync(join(tmpdir(), "srlm-stage-"));
  try {
    const key = stageKey(m0Inputs(config()));
    assert.equal(stageMatches(dir, key), false, "no checkpoint yet");
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, "config.json"), "{}");
    assert.equal(stageMatches(dir, key), false, "a checkpoint without a recorded key is not reused");
    recordStage(dir, key, m0Inputs(config()));
    assert.equal(stageMatches(dir, key), true);
    assert.equal(stageMatches(dir, stageKey(m0Inputs(config({ "model.seed": "1" })))), false);
    forgetStage(dir);
    assert.equal(stageMatches(dir, key), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a JSONL data file edited in place gives M1 a new key", () => {
  const dir = mkdtempSync(join(tmpdir(), "srlm-stage-files-"));
  try {
    const ift = join(dir, "ift.jsonl");
    writeFileSync(ift, '{"prompt": "a", "response": "b"}\n');
    const cfg = config({ "data.task": "jsonl", "data.jsonl.ift": ift, "model.base": dir });
    const before = stageKey(m1Inputs(cfg));
    assert.equal(stageKey(m1Inputs(cfg)), before);
    writeFileSync(ift, '{"prompt": "a", "response": "c"}\n');
    assert.notEqual(stageKey(m1Inputs(cfg)), before);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
