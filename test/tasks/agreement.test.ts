// Two judges' agreement against figures worked out by hand (the comments show the working).
import assert from "node:assert/strict";
import { test } from "node:test";
import { judgeAgreement } from "../../tasks/agreement.ts";

test("pairs within a prompt: agreements, one-sided ties, the confusion and Spearman", () => {
  // prompt 0: (0,1) primary a, secondary tie; (0,2) a, a; (1,2) tie, a. prompt 1: (0,1) b, b.
  const r = judgeAgreement(
    [
      [5, 3, 3],
      [2, 4],
    ],
    [
      [4, 4, 1],
      [1, 5],
    ],
  );
  assert.equal(r.prompts, 2);
  assert.equal(r.pairs, 4);
  assert.equal(r.unjudged, 0);
  assert.equal(r.decided, 2);
  assert.equal(r.agreed, 2);
  assert.equal(r.agreement, 1);
  assert.equal(r.oneTied, 2);
  assert.equal(r.bothTied, 0);
  assert.deepEqual(r.confusion, {
    a: { a: 1, b: 0, tie: 1 },
    b: { a: 0, b: 1, tie: 0 },
    tie: { a: 1, b: 0, tie: 0 },
  });
  // Average ranks: primary [5, 2.5, 2.5, 1, 4], secondary [3.5, 3.5, 1.5, 1.5, 5]; both have mean 3,
  // so Σdxdy = 6.5, Σdx² = 9.5, Σdy² = 9 and ρ = 6.5 / √85.5.
  assert.equal(r.spearmanN, 5);
  assert.ok(Math.abs((r.spearman ?? Number.NaN) - 6.5 / Math.sqrt(85.5)) < 1e-12, `spearman ${r.spearman}`);
});

test("a pair missing a score is unjudged, not a disagreement; opposite orders disagree", () => {
  // (0,1): primary b, secondary a; (0,2) and (1,2): the primary has no score for candidate 2.
  const r = judgeAgreement([[1, 2, null]], [[2, 1, 3]]);
  assert.equal(r.pairs, 1);
  assert.equal(r.unjudged, 2);
  assert.equal(r.decided, 1);
  assert.equal(r.agreed, 0);
  assert.equal(r.agreement, 0);
  assert.equal(r.confusion.b.a, 1);
  // Spearman over the two candidates both scored: [1, 2] against [2, 1].
  assert.equal(r.spearmanN, 2);
  assert.equal(r.spearman, -1);
  // NaN counts as missing too (how the trainer carries an unparsed mean).
  assert.equal(judgeAgreement([[1, Number.NaN]], [[2, 1]]).unjudged, 1);
});

test("ties on both sides: no agreement share, no correlation of constants", () => {
  const r = judgeAgreement([[3, 3]], [[2, 2]]);
  assert.equal(r.pairs, 1);
  assert.equal(r.bothTied, 1);
  assert.equal(r.oneTied, 0);
  assert.equal(r.agreement, null);
  assert.equal(r.spearman, null);
  assert.equal(r.spearmanN, 2);
  const none = judgeAgreement([], []);
  assert.equal(none.pairs, 0);
  assert.equal(none.spearman, null);
  assert.equal(none.spearmanN, 0);
});

test("the two sides must score the same prompts and candidates", () => {
  assert.throws(
    () => judgeAgreement([[1, 2]], []),
    /1 prompts scored by the primary judge, 0 by the secondary/,
  );
  assert.throws(
    () => judgeAgreement([[1], [1, 2]], [[1], [1]]),
    /prompt 1 has 2 candidates scored by the primary judge, 1 by the secondary/,
  );
});
