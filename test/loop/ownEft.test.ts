// `train.ownEft`: a second SFT phase in which the model learns to judge its own answers, graded by
// the task's verifier. It runs after SFT, writes the SFT phase's checkpoint apart, so that a
// change to the second phase alone trains only that phase again, and M1 is the phase's output.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { LocalWorkers } from "../../actors/trainer/localWorkers.ts";
import { SelfRewardingLoop } from "../../actors/trainer/selfRewarding.ts";
import { loadConfig } from "../../config/load.ts";
import { taskFromConfig } from "../../tasks/fromConfig.ts";
import { quietLoopIO } from "../helpers/loopIO.ts";

const out = mkdtempSync(join(tmpdir(), "srlm-owneft-"));
after(() => rmSync(out, { recursive: true, force: true }));

function config(ownEftSteps: number) {
  return loadConfig({
    preset: "tiny",
    env: {},
    flags: {
      out,
      "data.heldOutSize": "4",
      "data.judgeEvalSize": "2",
      "train.pretrain.steps": "3",
      "train.sft.steps": "3",
      "train.ownEft": { prompts: 8, samples: 2, steps: ownEftSteps, batchSize: 4, learningRate: 1e-3 },
      "selfReward.iterations": "0",
      "selfReward.maxNewTokens": "6",
    },
  });
}

async function run(cfg: ReturnType<typeof config>, task = taskFromConfig(cfg)) {
  const workers = new LocalWorkers("verifier");
  const stages: string[] = [];
  const loop = new SelfRewardingLoop(
    cfg,
    task,
    quietLoopIO(workers, {
      progress(stage) {
        if (!stages.includes(stage)) stages.push(stage);
      },
    }),
  );
  const report = await loop.run();
  return { m1: report.iterations[0], stages };
}

const weights = (label: string) => readFileSync(join(out, "checkpoints", label, "model.safetensors"));

test("own EFT trains M1 on its graded answers after SFT, and each phase is reused on its own", {
  timeout: 300_000,
}, async () => {
  const first = await run(config(3));
  assert.ok(first.m1.sftLoss && first.m1.sftLoss.steps === 3, "SFT ran");
  assert.ok(first.m1.ownEft, "the second phase ran");
  assert.equal(first.m1.ownEft.answers, 16, "8 prompts × 2 answers, each graded");
  assert.equal(first.m1.ownEft.loss.steps, 3);
  assert.ok(first.m1.ownEft.rightShare >= 0 && first.m1.ownEft.rightShare <= 1);
  assert.ok(first.stages.includes("own answers → EFT") && first.stages.includes("own EFT → M1"));
  assert.ok(existsSync(join(out, "checkpoints", "SFT", "srlm_stage.json")));
  assert.notDeepEqual(weights("SFT"), weights("M1"), "the second phase changed the weights");

  // Only the second phase's settings change: SFT is reused, the second phase runs again.
  const sftBefore = weights("SFT");
  const second = await run(config(4));
  assert.equal(second.m1.sftLoss, undefined, "SFT was reused");
  assert.equal(second.m1.ownEft?.loss.steps, 4);
  assert.ok(second.stages.includes("reuse SFT") && !second.stages.includes("pretrain M0"));
  assert.deepEqual(weights("SFT"), sftBefore);

  // Nothing changes: M1 itself is reused.
  const third = await run(config(4));
  assert.equal(third.m1.sftLoss, undefined);
  assert.equal(third.m1.ownEft, undefined);
  assert.ok(third.stages.includes("reuse M1"));

  // Turned off: the SFT phase's checkpoint is M1.
  const off = config(4);
  off.train.ownEft = undefined;
  const fourth = await run(off);
  assert.equal(fourth.m1.sftLoss, undefined);
  assert.equal(fourth.m1.ownEft, undefined);
  assert.ok(fourth.stages.includes("reuse SFT"));
  assert.deepEqual(weights("M1"), sftBefore);
});

test("own EFT on a task without a verifier is refused, naming the field", async () => {
  const cfg = config(3);
  const { gradedJudgement: _, ...task } = taskFromConfig(cfg);
  await assert.rejects(run(cfg, task), /train\.ownEft: task synthetic has no verifier/);
});
