// The typed queue table: every queue has a job and a result type, and results that do not fit
// their job (lengths, non-finite numbers, scores out of range) are named as such.
import assert from "node:assert/strict";
import { test } from "node:test";
import { messageDef } from "../../bus/envelope.ts";
import { JOB_LIMITS, JudgeJob, SamplesJob } from "../../bus/messages.ts";
import { type JobOf, PROTOCOL, queueOfResult, type ResultOf, resultProblem } from "../../bus/protocol.ts";
import { QUEUES, RESULT_KINDS } from "../../bus/subjects.ts";

const weights = { version: 1, bucket: "b", name: "v1", digest: "d" };
const sampling = { temperature: 1, topP: 1, topK: 0, maxNewTokens: 4, seed: 0 };

test("each queue names registered job and result types, and each result kind one queue", () => {
  for (const q of QUEUES) {
    assert.ok(messageDef(PROTOCOL[q].job.type), q);
    assert.ok(messageDef(PROTOCOL[q].result.type), q);
  }
  assert.deepEqual(RESULT_KINDS.map(queueOfResult).sort(), [...QUEUES].sort());
});

const judgeJob: JobOf<"judge"> = {
  iteration: 1,
  purpose: "train",
  task: "synthetic",
  prompt: "p",
  candidates: ["a", "b"],
  judgePrompts: ["ja", "jb"],
  format: "plain",
  parser: "first-line",
  samples: 2,
  weights,
  sampling,
};

test("judge results must have one score list per candidate, one score per sample, in 0..5", () => {
  const job = judgeJob;
  const result = (scores: (number | null)[][]): ResultOf<"judge"> => ({
    jobId: "j",
    iteration: 1,
    purpose: "train",
    prompt: "p",
    judge: { impl: "self", instance: "x" },
    scores,
    parseFailures: 0,
    judgements: 4,
  });
  assert.equal(
    resultProblem(
      "judge",
      job,
      result([
        [1, 2],
        [null, 5],
      ]),
    ),
    null,
  );
  assert.match(resultProblem("judge", job, result([])) ?? "", /0 score lists for 2 candidates/);
  assert.match(resultProblem("judge", job, result([[1], [2, 3]])) ?? "", /candidate 0 has 1 judgements/);
  assert.match(
    resultProblem(
      "judge",
      job,
      result([
        [1, 2],
        [Number.NaN, 3],
      ]),
    ) ?? "",
    /outside 0\.\.5/,
  );
  assert.match(
    resultProblem(
      "judge",
      job,
      result([
        [1, 2],
        [7, 3],
      ]),
    ) ?? "",
    /outside 0\.\.5/,
  );
});

test("reference results must be finite, one per pair", () => {
  const pair = { prompt: Int32Array.of(1), chosen: Int32Array.of(2), rejected: Int32Array.of(3) };
  const job: JobOf<"reference"> = { iteration: 1, weights, pairs: [pair, pair] };
  const result = (chosen: number[], rejected: number[]): ResultOf<"reference"> => ({
    jobId: "j",
    iteration: 1,
    referenceVersion: 1,
    chosen: Float64Array.from(chosen),
    rejected: Float64Array.from(rejected),
  });
  assert.equal(resultProblem("reference", job, result([-1, -2], [-3, -4])), null);
  assert.match(resultProblem("reference", job, result([-1], [-3, -4])) ?? "", /1\/2 log-probs for 2 pairs/);
  assert.match(resultProblem("reference", job, result([-1, Number.NaN], [-3, -4])) ?? "", /non-finite/);
});

test("sample results answer the job's prompts, n each, with as many log-probs as tokens", () => {
  const job: JobOf<"samples"> = {
    iteration: 1,
    purpose: "train",
    prompts: ["p"],
    format: "plain",
    n: 1,
    weights,
    sampling,
  };
  const response = (tokens: number[], logProbs: number[]) => ({
    text: "x",
    tokens: Int32Array.from(tokens),
    logProbs: Float32Array.from(logProbs),
    finishReason: "stop",
  });
  const result = (prompt: string, responses: ReturnType<typeof response>[]): ResultOf<"samples"> => ({
    jobId: "j",
    iteration: 1,
    purpose: "train",
    policyVersion: 1,
    results: [{ prompt, promptTokens: Int32Array.of(1), responses }],
  });
  assert.equal(resultProblem("samples", job, result("p", [response([5], [-0.5])])), null);
  assert.match(resultProblem("samples", job, result("q", [response([5], [-0.5])])) ?? "", /another prompt/);
  assert.match(resultProblem("samples", job, result("p", [])) ?? "", /0 responses, not 1/);
  assert.match(
    resultProblem("samples", job, result("p", [response([5, 6], [-0.5])])) ?? "",
    /differ in length/,
  );
});

test("a job asking for more work than a worker takes is refused, naming the field", () => {
  const weights = { version: 1, bucket: "b", name: "v1", digest: "d" };
  const sampling = { temperature: 1, topP: 1, topK: 0, maxNewTokens: 16, seed: 1 };
  const job = (prompts: number, n: number, maxNewTokens = 16) => ({
    iteration: 1,
    purpose: "train",
    prompts: Array.from({ length: prompts }, (_, i) => `p${i}`),
    format: "plain",
    n,
    weights,
    sampling: { ...sampling, maxNewTokens },
  });
  const problem = (body: unknown) => {
    const r = SamplesJob.schema.safeParse(body);
    return r.success ? null : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
  };
  assert.equal(problem(job(16, 8)), null);
  assert.match(problem(job(300, 40)) ?? "", new RegExp(`^n: more than ${JOB_LIMITS.sequences} sequences`));
  assert.match(problem(job(JOB_LIMITS.items + 1, 1)) ?? "", /^prompts: /);
  assert.match(problem(job(1, JOB_LIMITS.samples + 1)) ?? "", /^n: /);
  assert.match(problem(job(1, 1, JOB_LIMITS.maxNewTokens + 1)) ?? "", /^sampling\.maxNewTokens: /);
});

test("a judge job's quotes have one entry per candidate, and an end only beside them", () => {
  const job = judgeJob;
  const quotes = [[{ at: 1, text: "b" }], [{ at: 1, text: "b" }]];
  const problem = (body: unknown) => {
    const r = JudgeJob.schema.safeParse(body);
    return r.success ? null : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
  };
  assert.equal(problem(job), null);
  assert.equal(problem({ ...job, quotes, quoteEnd: " " }), null);
  assert.match(
    problem({ ...job, quotes: quotes.slice(1) }) ?? "",
    /^quotes: quotes must have one entry per candidate/,
  );
  assert.match(problem({ ...job, quoteEnd: " " }) ?? "", /^quoteEnd: quoteEnd needs quotes/);
});
