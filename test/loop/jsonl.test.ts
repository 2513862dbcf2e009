// The loop on a user's own model and data: a random-weight Llama checkpoint around the real
// Llama 3 tokenizer (chat template included) and JSONL files, through `srlm run` over a real
// nats-server. SFT on the JSONL IFT/EFT data teaches the small model the judge's `Score: N`, so
// the self-judge forms pairs with no verifier anywhere; the report says what it measured instead.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type BuiltCheckpoint, buildCheckpoint } from "../helpers/checkpoints.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";
import { runSrlm } from "../helpers/srlm.ts";

let server: NatsServerHandle;
let out: string;
let checkpoint: BuiltCheckpoint;

const TOPICS = [
  "rain",
  "tea",
  "maps",
  "bees",
  "salt",
  "kites",
  "clocks",
  "moss",
  "ink",
  "glass",
  "owls",
  "rust",
];

before(async () => {
  server = await startNatsServer();
  out = mkdtempSync(join(tmpdir(), "srlm-jsonl-run-"));
  checkpoint = buildCheckpoint({ vocab: "llama3", hiddenSize: 32, layers: 1 });
  writeFileSync(join(out, "write.jinja"), "{{ examples[0] }}");
  const lines = (rows: object[]) => rows.map((r) => JSON.stringify(r)).join("\n");
  writeFileSync(
    join(out, "ift.jsonl"),
    lines(TOPICS.map((t) => ({ prompt: `Tell me about ${t} please`, response: `${t} are nice` }))),
  );
  // Judgements of answers from good to bad, so the judge learns to give different scores and
  // pairs can form.
  const graded = (t: string) => [
    [`${t} are nice`, 5],
    [`${t} are`, 3],
    [t, 2],
    ["nice nice nice", 2],
    ["no", 1],
  ];
  writeFileSync(
    join(out, "eft.jsonl"),
    lines(
      TOPICS.flatMap((t) =>
        graded(t).map(([response, score]) => ({
          prompt: `Tell me about ${t} please`,
          response,
          judgement: `Score: ${score}`,
        })),
      ),
    ),
  );
  // The judge reads the response alone: a one-layer model attends over a short prompt.
  writeFileSync(join(out, "judge.jinja"), "{{ response }}");
});

after(async () => {
  await server?.stop();
  checkpoint?.remove();
  rmSync(out, { recursive: true, force: true });
});

test("srlm run on a Llama 3-vocabulary checkpoint and JSONL files: judged pairs, no verifier", {
  timeout: 600_000,
}, async () => {
  const sets = {
    "data.task": "jsonl",
    "data.jsonl.ift": join(out, "ift.jsonl"),
    "data.jsonl.eft": join(out, "eft.jsonl"),
    "data.heldOutSize": 2,
    "train.sft.steps": 120,
    "train.sft.batchSize": 8,
    "train.sft.learningRate": 0.01,
    "train.dpo.steps": 2,
    "train.dpo.batchSize": 2,
    "selfReward.iterations": 1,
    "selfReward.promptsPerIteration": 3,
    "selfReward.fewShot": 1,
    "selfReward.candidates": 3,
    "selfReward.judgeSamples": 2,
    "selfReward.judgeTemperature": 1,
    "selfReward.maxNewTokens": 6,
    "selfReward.judgeMaxNewTokens": 6,
    // A model this small writes a new request only when shown one seed request alone: it answers
    // it, which reads as a request of three or more words (the default template's long prompt
    // makes it write a judgement instead).
    "selfInstruct.template": join(out, "write.jinja"),
    "judge.promptTemplate": join(out, "judge.jinja"),
  };
  const args = ["run", "--base", checkpoint.dir, "--nats", server.url, "--run", "jsonl", "--out", out];
  for (const [k, v] of Object.entries(sets)) args.push("--set", `${k}=${v}`);
  const { code, stdout, stderr } = await runSrlm(args);
  assert.equal(code, 0, `srlm run failed:\n${stdout}\n${stderr}`);
  const report = JSON.parse(readFileSync(join(out, "report.json"), "utf8"));
  assert.equal(report.task, "jsonl");
  assert.equal(report.verifier, false);
  assert.deepEqual(
    report.iterations.map((it: { model: string }) => it.model),
    ["M1", "M2"],
  );
  for (const it of report.iterations) {
    assert.equal(it.heldOutAccuracy, null, "no verifier, no accuracy");
    assert.equal(it.heldOutN, 2);
    assert.ok(it.heldOutJudgeScore, `${it.model} has a judge score of its held-out answers`);
    assert.ok(it.heldOutJudgeScore.parseFailureRate >= 0 && it.heldOutJudgeScore.parseFailureRate <= 1);
    assert.equal(it.judge.pairwiseAccuracy, null);
  }
  const m1 = report.iterations[0];
  assert.ok(
    m1.sftLoss.last < m1.sftLoss.first,
    `SFT on the JSONL data lowered the loss: ${JSON.stringify(m1.sftLoss)}`,
  );
  const m2 = report.iterations[1];
  assert.ok(m2.pairs > 0, `the self-judge formed pairs (prompts ${m2.prompts}, candidates ${m2.candidates})`);
  assert.ok(m2.dpo && Number.isFinite(m2.dpo.loss), "DPO trained on them");
  assert.ok(m2.winRateVsPrevious, "M2 judged head to head against M1");
  assert.equal(m2.winRateVsPrevious.judgedBy, "self");
  assert.notDeepEqual(
    readFileSync(join(out, "checkpoints", "M1", "model.safetensors")),
    readFileSync(join(out, "checkpoints", "M2", "model.safetensors")),
  );
});
