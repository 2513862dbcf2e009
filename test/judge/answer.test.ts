// ReFT's reward as a judge: the `answer` implementation checks each candidate's final answer
// against the job's gold answer, so a learned reward model can later take its place as any
// judge does.
import assert from "node:assert/strict";
import { test } from "node:test";
import { answerJudge } from "../../actors/judge/main.ts";
import type { JobOf } from "../../bus/protocol.ts";

const job = (gold: string | undefined, candidates: string[]): JobOf<"judge"> => ({
  iteration: 1,
  purpose: "train",
  task: "math",
  prompt: "Ann has 3 apples and buys 4 more. How many apples does she have?",
  candidates,
  judgePrompts: candidates,
  format: "plain",
  parser: "last-score",
  ...(gold === undefined ? {} : { gold }),
  samples: 2,
  weights: { version: 1, bucket: "b", name: "v1", digest: "d" },
  sampling: { temperature: 1, topP: 1, topK: 0, maxNewTokens: 8, seed: 0 },
});

const noPolicy = async () => {
  throw new Error("the answer judge must not load a model");
};

test("the answer judge scores ReFT's reward on the 0..5 scale: 5 right, 0.5 another number, 0 none", async () => {
  const candidates = [
    "3 + 4 = 7. Therefore, the answer is: 7",
    "3 + 4 = 8. Therefore, the answer is: 8",
    "3 + 4 = 7, so seven",
    "Therefore, the answer is: 5. Therefore, the answer is: 7.00",
  ];
  const { body, weightsVersion } = await answerJudge("answer", job("7", candidates), "a0", noPolicy);
  assert.deepEqual(body.scores, [
    [5, 5],
    [0.5, 0.5],
    [0, 0],
    [5, 5],
  ]);
  assert.equal(body.judge.impl, "answer");
  assert.equal(weightsVersion, undefined);
  assert.equal(body.parseFailures, 0);
});

test("the answer judge refuses a job without a numeric gold answer", async () => {
  await assert.rejects(answerJudge("answer", job(undefined, ["x"]), "a0", noPolicy), /numeric gold answer/);
  await assert.rejects(answerJudge("answer", job("seven", ["x"]), "a0", noPolicy), /numeric gold answer/);
});
