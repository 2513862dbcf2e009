import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ConfigError, envToFlags, loadConfig } from "../../config/load.ts";

test("defaults < preset < file < environment < flags", () => {
  const dir = mkdtempSync(join(tmpdir(), "srlm-config-"));
  try {
    const file = join(dir, "run.yaml");
    writeFileSync(file, "selfReward:\n  iterations: 5\n  candidates: 6\nrun: fromfile\n");
    const cfg = loadConfig({
      file,
      preset: "tiny",
      env: { SRLM_SELF_REWARD__CANDIDATES: "8", SRLM_RUN: "fromenv" },
      flags: { run: "fromflag" },
    });
    assert.equal(cfg.selfReward.iterations, 5, "file over preset");
    assert.equal(cfg.selfReward.candidates, 8, "environment over file");
    assert.equal(cfg.run, "fromflag", "flags over environment");
    assert.equal(cfg.model.preset, "tiny", "preset over defaults");
    assert.equal(cfg.selfReward.beta, 0.1, "defaults fill the rest");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a nested override keeps the section's other fields", () => {
  const cfg = loadConfig({ flags: { "train.dpo.steps": "40" } });
  assert.equal(cfg.train.dpo.steps, 40);
  assert.equal(cfg.train.dpo.batchSize, loadConfig().train.dpo.batchSize);
  assert.equal(cfg.train.dpo.epochs, undefined);
  assert.equal(loadConfig({ flags: { "train.dpo.epochs": "2.5" } }).train.dpo.epochs, 2.5);
  assert.throws(() => loadConfig({ flags: { "train.dpo.epochs": "0" } }), /train\.dpo\.epochs = 0/);
});

test("bad values name the field, the value and what is allowed", () => {
  assert.throws(
    () => loadConfig({ flags: { "selfReward.mode": "fast" } }),
    (err: Error) =>
      err instanceof ConfigError &&
      /selfReward\.mode = "fast"/.test(err.message) &&
      /"strict", "streaming"/.test(err.message),
  );
  assert.throws(
    () => loadConfig({ env: { SRLM_SELF_REWARD__CANDIDATES: "1" } }),
    /selfReward\.candidates = 1: .*>=2/,
  );
  assert.throws(
    () => loadConfig({ flags: { "data.math.terseShare": "1.5" } }),
    /data\.math\.terseShare = 1\.5/,
  );
  assert.throws(
    () => loadConfig({ flags: { "data.math.train": "gsm8k.jsonl", "data.math.terseShare": "0.5" } }),
    /data\.math\.terseShare.*with a JSONL train file it must be 0/,
  );
  assert.throws(
    () => loadConfig({ flags: { "selfReward.greedyRejectGap": "2" } }),
    /selfReward\.greedyRejectGap.*needs greedyCandidate: true/,
  );
  assert.equal(
    loadConfig({ preset: "demo", flags: { "selfReward.greedyRejectGap": "2" } }).selfReward.greedyRejectGap,
    2,
  );
  const confirm = {
    "selfReward.greedyRejectConfirm.verdicts": "3",
    "selfReward.greedyRejectConfirm.temperature": "0.7",
  };
  assert.throws(
    () => loadConfig({ flags: confirm }),
    /selfReward\.greedyRejectConfirm.*needs greedyCandidate: true/,
  );
  assert.deepEqual(loadConfig({ preset: "demo", flags: confirm }).selfReward.greedyRejectConfirm, {
    verdicts: 3,
    temperature: 0.7,
  });
  assert.throws(
    () =>
      loadConfig({ preset: "demo", flags: { ...confirm, "selfReward.greedyRejectConfirm.verdicts": "0" } }),
    /selfReward\.greedyRejectConfirm\.verdicts/,
  );
  assert.throws(
    () => loadConfig({ flags: { "selfReward.anchorTies": "true" } }),
    /selfReward\.anchorTies.*needs greedyCandidate: true/,
  );
  assert.equal(
    loadConfig({ preset: "demo", flags: { "selfReward.anchorTies": "true" } }).selfReward.anchorTies,
    true,
  );
  assert.throws(() => loadConfig({ flags: { "model.backnd": "wasm" } }), /unknown field model\.backnd/);
  assert.throws(() => loadConfig({ preset: "huge" }), /preset = "huge": one of/);
  assert.throws(
    () => loadConfig({ file: "/nonexistent/srlm.yaml" }),
    /config file \/nonexistent\/srlm\.yaml: cannot read it/,
  );
});

test("SRLM_* variables map to dotted config paths", () => {
  assert.deepEqual(envToFlags({ SRLM_NATS_URL: "nats://h:4222", SRLM_TRAIN__DPO__STEPS: "3", HOME: "/x" }), {
    "nats.url": "nats://h:4222",
    "train.dpo.steps": "3",
  });
});

test("nats.replicas is a number of 1 to 5 from flags and the environment; other nats fields stay strings", () => {
  assert.equal(loadConfig().nats.replicas, 1);
  assert.equal(loadConfig({ flags: { "nats.replicas": "3" } }).nats.replicas, 3);
  assert.equal(loadConfig({ env: { SRLM_NATS__REPLICAS: "5" } }).nats.replicas, 5);
  assert.equal(loadConfig({ flags: { "nats.pass": "1234" } }).nats.pass, "1234");
  assert.throws(() => loadConfig({ flags: { "nats.replicas": "6" } }), /nats\.replicas = 6/);
  assert.throws(() => loadConfig({ flags: { "nats.replicas": "0" } }), /nats\.replicas = 0/);
  assert.throws(() => loadConfig({ flags: { "nats.replicas": "three" } }), /nats\.replicas = "three"/);
});
