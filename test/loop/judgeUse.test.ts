// The report's record of who judged: results counted per judge identity and stage, and the A/B
// results' two sides turned into agreement figures, as the summary prints them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { JudgeTally } from "../../actors/trainer/judgeUse.ts";
import { type IterationReport, type RunReport, summaryTable } from "../../actors/trainer/report.ts";
import type { ScoresResultBody } from "../../bus/messages.ts";
import { judgeAgreement } from "../../tasks/agreement.ts";

function result(judge: ScoresResultBody["judge"], scores: (number | null)[][], secondary?: number[]) {
  return {
    jobId: "j",
    iteration: 1,
    purpose: "train",
    prompt: "p",
    judge,
    scores,
    parseFailures: scores.flat().filter((s) => s === null).length,
    judgements: scores.flat().length,
    ...(secondary ? { secondary: { impl: "openai", means: secondary } } : {}),
  } satisfies ScoresResultBody;
}

const ab = { impl: "ab:self+openai", instance: "j1", weightsVersion: 2, model: "m", endpoint: "h:1" };

test("results are counted per judge identity and stage; A/B sides become agreement figures", () => {
  const tally = new JudgeTally();
  tally.record("judge", [
    result({ impl: "self", instance: "j0", weightsVersion: 1 }, [[4], [2]]),
    result(
      ab,
      [
        [5, 3],
        [1, null],
        [null, null],
      ],
      [4, 1, 2],
    ),
  ]);
  tally.record("eval M2", [result(ab, [[3], [3]], [5, 2])]);
  const use = tally.take();
  assert.deepEqual(use.identities, [
    {
      impl: "self",
      instances: ["j0"],
      results: 1,
      byStage: { judge: 1 },
      judgements: 2,
      parseFailures: 0,
    },
    {
      impl: "ab:self+openai",
      model: "m",
      endpoint: "h:1",
      instances: ["j1"],
      results: 2,
      byStage: { judge: 1, "eval M2": 1 },
      judgements: 8,
      parseFailures: 3,
    },
  ]);
  assert.equal(use.ab.length, 1);
  assert.equal(use.ab[0].primary, "self");
  assert.equal(use.ab[0].secondary, "openai");
  // The primary's means per candidate: 4, 1 and none (every judgement failed to parse).
  assert.deepEqual(use.ab[0].byStage.judge, judgeAgreement([[4, 1, null]], [[4, 1, 2]]));
  assert.equal(use.ab[0].byStage.judge.agreed, 1);
  assert.equal(use.ab[0].byStage.judge.unjudged, 2);
  assert.equal(use.ab[0].byStage["eval M2"].confusion.tie.a, 1);
  // Taken once: the next report row starts from nothing.
  assert.deepEqual(tally.take(), { identities: [], ab: [] });

  const row = {
    model: "M2",
    heldOutAccuracy: null,
    heldOutAccuracyCi95: null,
    heldOutJudgeScore: null,
    gainOverFirst: null,
    winRateVsPrevious: null,
    judge: { impl: "self", pairwiseAccuracy: null, spearman: null, parseFailureRate: null },
    pairs: 0,
    dpo: null,
    failures: {},
    wallSeconds: 1,
    judges: use,
  } as unknown as IterationReport;
  const report = {
    run: "r",
    task: "t",
    preset: "tiny",
    backend: "cpu",
    mode: "strict",
    wallSeconds: 1,
    trainerBusySeconds: 0,
    actors: [],
    bus: null,
    iterations: [row],
  } as unknown as RunReport;
  const text = summaryTable(report);
  assert.match(text, /judges M2: self 1 jobs \(j0\); ab:self\+openai m at h:1 2 jobs \(j1\)/);
  assert.match(
    text,
    /A\/B self vs openai, M2 judge: 1 of 1 ordered pairs agree \(100\.0%\), one tied 0, both tied 0, unjudged 2; spearman 1\.00 \(n 2\); primary a\/b\/tie × secondary a\/b\/tie 1 0 0 \| 0 0 0 \| 0 0 0/,
  );
  assert.match(text, /A\/B self vs openai, M2 eval M2: 0 of 0 ordered pairs agree \(–\), one tied 1/);
});
