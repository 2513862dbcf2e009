import assert from "node:assert/strict";
import { test } from "node:test";
import {
  accuracy,
  averageRanks,
  pairedGain,
  pairwiseAccuracy,
  spearman,
  wilson,
  winRate,
} from "../../tasks/eval.ts";

const close = (a: number, b: number, eps = 1e-4) => assert.ok(Math.abs(a - b) < eps, `${a} vs ${b}`);

test("Wilson interval matches hand computation", () => {
  const [lo, hi] = wilson(8, 10);
  close(lo, 0.49016);
  close(hi, 0.94332);
  assert.deepEqual(wilson(0, 0), [0, 1]);
  assert.equal(wilson(0, 5)[0], 0);
  assert.equal(wilson(5, 5)[1], 1);
});

test("accuracy uses the verifier", () => {
  const r = accuracy([
    { prompt: "Reverse: garden", response: "nedrag" },
    { prompt: "Add 17 and 25", response: "42" },
    { prompt: "Add 17 and 25", response: "41" },
    { prompt: "Uppercase: hello", response: "" },
  ]);
  assert.equal(r.n, 4);
  assert.equal(r.correct, 2);
  assert.equal(r.accuracy, 0.5);
  assert.equal(r.meanScore, (5 + 5 + 3 + 0) / 4);
  assert.deepEqual(r.ci95, wilson(2, 4));
  assert.equal(accuracy([]).accuracy, 0);
});

test("win rate counts wins, losses and ties", () => {
  const r = winRate([5, 3, 2, 4], [4, 3, 5, 1]);
  assert.equal(r.win, 0.5);
  assert.equal(r.loss, 0.25);
  assert.equal(r.tie, 0.25);
  assert.deepEqual(r.ci95, wilson(2, 4));
  assert.throws(() => winRate([1], [1, 2]), /lengths differ/);
});

test("pairwise accuracy within prompts, judge ties half, missing judgements wrong", () => {
  const r = pairwiseAccuracy(
    [
      [4, 4, 5],
      [Number.NaN, 2],
      [1, 1],
    ],
    [
      [3, 1, 5],
      [1, 2],
      [2, 2],
    ],
  );
  // Group 0: (0,1) judge tie 0.5; (0,2) agree; (1,2) agree. Group 1: unjudged. Group 2: true tie, skipped.
  assert.equal(r.pairs, 4);
  assert.equal(r.unjudged, 1);
  close(r.accuracy, 2.5 / 4);
  assert.equal(pairwiseAccuracy([[1, 2]], [[2, 1]]).accuracy, 0);
});

test("Spearman with average ranks for ties", () => {
  assert.deepEqual(averageRanks([10, 20, 20, 30]), [1, 2.5, 2.5, 4]);
  close(spearman([1, 2, 2, 3], [1, 3, 2, 4]), 4.5 / Math.sqrt(22.5));
  close(spearman([1, 2, 3], [30, 20, 10]), -1);
  assert.ok(Number.isNaN(spearman([1, 1, 1], [1, 2, 3])));
  assert.ok(Number.isNaN(spearman([1], [1])));
});

test("paired gain: the interval of per-prompt differences, narrower than two independent ones", () => {
  // 400 prompts: B right on 240; A right on those same 240 and 24 more. Independent Wilson
  // intervals of 60% and 66% overlap; every difference is +1 or 0, so the paired gain stands clear.
  const b = Array.from({ length: 400 }, (_, i) => i < 240);
  const a = Array.from({ length: 400 }, (_, i) => i < 264);
  const g = pairedGain(a, b);
  assert.ok(Math.abs(g.gain - 0.06) < 1e-12);
  assert.ok(g.ci95[0] > 0.03 && g.ci95[1] < 0.09, JSON.stringify(g));
  assert.ok(wilson(264, 400)[0] < wilson(240, 400)[1]);
  // Wins and losses that cancel give a gain of 0 with an interval around it.
  const flip = pairedGain([true, false, true, false], [false, true, false, true]);
  assert.equal(flip.gain, 0);
  assert.ok(flip.ci95[0] < 0 && flip.ci95[1] > 0);
  assert.throws(() => pairedGain([true], [true, false]), /lengths differ/);
});
