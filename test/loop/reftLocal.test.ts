// The ReFT loop in one process (LocalWorkers): the same algorithm as over NATS, in the modes the
// NATS test does not run. GRPO samples a group per question and trains without a critic;
// streaming samples the next batch while one trains, so rollouts may come from older weights
// (within maxStaleness) and carry their behaviour log-probs.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { OpenAIJudge } from "../../actors/judge/openai.ts";
import { LocalWorkers } from "../../actors/trainer/localWorkers.ts";
import { ReftLoop } from "../../actors/trainer/reft.ts";
import { loadConfig } from "../../config/load.ts";
import { selectBackend } from "../../model/backend.ts";
import { reasoningTaskFromConfig } from "../../tasks/reasoning.ts";
import { quietLoopIO } from "../helpers/loopIO.ts";

// The backend srlm's actors would pick (blas where it is built), not tfjs's pure-JS default.
before(() => selectBackend("auto", { info() {} }));

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function runReft(
  flags: Record<string, string>,
  out = mkdtempSync(join(tmpdir(), "srlm-reft-local-")),
  workers = new LocalWorkers("answer"),
) {
  dirs.push(out);
  const cfg = loadConfig({
    preset: "tiny",
    env: {},
    flags: {
      out,
      method: "reft",
      "train.pretrain.steps": "120",
      "reft.reranker.samplesPerQuestion": "0",
      ...flags,
    },
  });
  const loop = new ReftLoop(cfg, reasoningTaskFromConfig(cfg), quietLoopIO(workers));
  const report = await loop.run();
  assert.deepEqual(
    JSON.parse(readFileSync(join(out, "report.json"), "utf8")).updates.length,
    report.updates.length,
  );
  return { report, out };
}

let firstOut = "";

test("GRPO: a group of samples per question, no value loss, every update trained", async () => {
  const { report, out } = await runReft({
    "reft.algorithm": "grpo",
    "reft.samplesPerQuestion": "3",
    "reft.questionsPerUpdate": "4",
  });
  firstOut = out;
  assert.ok(
    report.sftLoss.warmup && report.sftLoss.warmup.last < report.sftLoss.warmup.first,
    "the warm-up trained",
  );
  assert.equal(report.algorithm, "grpo");
  assert.equal(report.updates.length, 2);
  for (const u of report.updates) {
    assert.equal(u.rollouts, 12, "3 samples for each of 4 questions");
    assert.equal(u.valueLoss, 0, "GRPO has no critic");
    assert.ok(Number.isNaN(u.explainedVariance));
    assert.ok(u.mixedGroupShare >= 0 && u.mixedGroupShare <= 1, `mixed groups ${u.mixedGroupShare}`);
    assert.equal(u.skippedSteps, 0);
  }
});

test("streaming: the next batch is sampled while one trains, within maxStaleness; M0, warm-up and SFT reused", async () => {
  // The same out folder and the same SFT inputs as the GRPO run: only PPO's settings differ.
  const { report } = await runReft(
    { "reft.mode": "streaming", "reft.maxStaleness": "1", "reft.updates": "3" },
    firstOut,
  );
  assert.deepEqual(
    report.sftLoss,
    { warmup: null, sft: null },
    "the warm-up and the SFT baseline were reused",
  );
  assert.equal(report.stageSeconds.pretrain, undefined, "M0 was not even loaded");
  assert.equal(report.mode, "streaming");
  assert.equal(report.updates.length, 3);
  // LocalWorkers answer a job as soon as it is submitted, so update u+1's batch is sampled from
  // the weights update u trains: one version behind when it trains.
  assert.equal(report.updates[0].staleness.max, 0);
  for (const u of report.updates.slice(1)) {
    assert.equal(u.staleness.max, 1, `update ${u.update}`);
    assert.equal(u.droppedStale, 0);
    assert.equal(u.rollouts, 8);
    assert.ok(Number.isNaN(u.mixedGroupShare), "PPO's one sample per question has no groups");
  }
});

// An HTTP judge standing in for the answer check: it gives 5 points to a solution that reaches the
// trigger and 0 to one that does not, so its reward can be told from the answer judge's.
const reachesTrigger = (async (_url: string, init: RequestInit) => {
  const body = JSON.parse(String(init.body)) as { n: number; messages: { content: string }[] };
  const solution = body.messages[0].content.split("Solution:\n")[1] ?? "";
  const content = `Score: ${solution.includes("the answer is:") ? 5 : 0}`;
  const choices = Array.from({ length: body.n }, (_, index) => ({ index, message: { content } }));
  return new Response(JSON.stringify({ choices }), { status: 200 });
}) as typeof fetch;

test("an OpenAI-compatible judge as ReFT's reward: score / 5, its model named in the report", async () => {
  const cfg = loadConfig({ preset: "tiny", env: {}, flags: {} });
  const openai = new OpenAIJudge(
    { ...cfg.judge.openai, baseUrl: "http://judge.test:8000/v1", model: "trigger-check" },
    { fetch: reachesTrigger },
  );
  const { report } = await runReft({ "reft.updates": "1" }, firstOut, new LocalWorkers("openai", { openai }));
  assert.deepEqual(report.rewardJudge, ["openai (trigger-check)"]);
  const [u] = report.updates;
  assert.equal(u.rollouts, 8);
  // Every reward is 0 or 1 (5 or 0 points), and 1 exactly where an answer can be read.
  assert.ok(Math.abs(u.meanReward - u.answeredShare) < 1e-9, `${u.meanReward} vs ${u.answeredShare}`);
});
