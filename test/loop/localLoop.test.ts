// The self-rewarding loop in one process (LocalWorkers), as probes run it: the same algorithm as
// over NATS. With a verifier judge a small random model's answers get different partial scores,
// so pairs form and DPO runs; the strict reference step may reuse the sampler's own log-probs of
// the same ids, and training on them matches training on the reference's.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import pino from "pino";
import type { Policy } from "../../actors/policy.ts";
import { LocalWorkers } from "../../actors/trainer/localWorkers.ts";
import { RunStopped, SelfRewardingLoop } from "../../actors/trainer/selfRewarding.ts";
import { loadConfig } from "../../config/load.ts";
import { presetConfig } from "../../model/config.ts";
import { Llama } from "../../model/llama.ts";
import { CharTokenizer } from "../../model/tokenizer.ts";
import { taskFromConfig } from "../../tasks/fromConfig.ts";
import { DOMAIN_CHARSET, familyByName, makeRng } from "../../tasks/index.ts";

const out = mkdtempSync(join(tmpdir(), "srlm-local-"));
after(() => rmSync(out, { recursive: true, force: true }));

async function oneIteration(referenceFromSampler: boolean) {
  const cfg = loadConfig({
    preset: "tiny",
    env: {},
    flags: {
      out,
      "data.heldOutSize": "8",
      "data.judgeEvalSize": "2",
      "selfReward.promptsPerIteration": "6",
      "selfReward.maxNewTokens": "8",
      "selfReward.iterations": "1",
      "selfReward.referenceFromSampler": String(referenceFromSampler),
      "train.dpo.steps": "3",
    },
  });
  const tokenizer = new CharTokenizer(DOMAIN_CHARSET);
  const policy: Policy = {
    version: 1,
    model: Llama.init(presetConfig("tiny", tokenizer), { seed: 3 }),
    tokenizer,
  };
  const workers = new LocalWorkers("verifier");
  // A random model writes no parsable prompt; this task hands the loop a fresh family prompt for
  // whatever it wrote, so the rest of the iteration runs on real prompts.
  const task = taskFromConfig(cfg);
  const rng = makeRng(11);
  const fresh = () => familyByName(rng.pick(cfg.data.families)).makeInstance(rng).prompt;
  const loop = new SelfRewardingLoop(
    cfg,
    { ...task, parseWrittenPrompt: () => ({ ok: true, prompt: fresh() }) },
    {
      workers,
      publish: async (version, p) => workers.publish(version, p),
      log: pino({ level: "silent" }),
      backend: "test",
      progress() {},
      gate: async () => {},
      metrics() {},
      actorStats: async () => [],
    },
  );
  await loop.start(policy);
  const iterations: Awaited<ReturnType<typeof loop.report>>["iterations"] = [];
  await loop.iterations(1, (r) => iterations.push(r));
  const report = await loop.report(iterations, 0);
  policy.model.dispose();
  return report;
}

test("in-process loop: pairs, DPO, and sampler log-probs as the strict reference", {
  timeout: 300_000,
}, async () => {
  const asked = await oneIteration(false);
  const reused = await oneIteration(true);
  assert.equal(asked.reference, "reference actor");
  assert.equal(reused.reference, "sampler log-probs (strict, M_t)");
  const [a] = asked.iterations;
  const [b] = reused.iterations;
  assert.ok(a.pairs > 0, "the verifier's partial scores formed pairs");
  assert.equal(b.pairs, a.pairs, "the same iteration up to the reference step");
  assert.ok(a.dpo && b.dpo);
  // The first DPO step's loss is log 2 from either reference; the averages differ only by rounding.
  assert.ok(Math.abs(a.dpo.loss - b.dpo.loss) < 1e-3, `${a.dpo.loss} vs ${b.dpo.loss}`);
  assert.ok(Math.abs(a.dpo.rewardMargin - b.dpo.rewardMargin) < 1e-3);
  assert.equal(a.failures.reference.failed, 0);
  assert.equal(b.failures.reference, undefined, "no reference jobs were asked for");
  assert.ok(a.heldOutAccuracy !== null && a.heldOutN === 8);
});

test("an operator's stop ends the run as stopped, with the report of what finished", {
  timeout: 300_000,
}, async () => {
  const cfg = loadConfig({
    preset: "tiny",
    env: {},
    flags: {
      out,
      "data.heldOutSize": "4",
      "data.judgeEvalSize": "2",
      "train.pretrain.steps": "3",
      "train.sft.steps": "3",
      "model.reuse": "false",
      "selfReward.maxNewTokens": "4",
    },
  });
  const workers = new LocalWorkers("verifier");
  let gates = 0;
  const loop = new SelfRewardingLoop(cfg, taskFromConfig(cfg), {
    workers,
    publish: async (version, p) => workers.publish(version, p),
    log: pino({ level: "silent" }),
    backend: "test",
    progress() {},
    // Pretraining and SFT pass their stage boundaries; the first iteration's does not.
    gate: async () => {
      if (++gates > 2) throw new RunStopped();
    },
    metrics() {},
    actorStats: async () => [],
  });
  const report = await loop.run();
  assert.equal(report.stopped, true);
  assert.deepEqual(
    report.iterations.map((it) => it.model),
    ["M1"],
  );
  assert.ok(report.iterations[0].sftLoss && report.iterations[0].sftLoss.steps === 3);
  const written = JSON.parse(readFileSync(join(out, "report.json"), "utf8"));
  assert.equal(written.stopped, true);
  assert.match(readFileSync(join(out, "summary.txt"), "utf8"), /stopped by the operator/);
});
