import assert from "node:assert/strict";
import { test } from "node:test";
import {
  allPairsFromJudged,
  EvenDraws,
  isFreshEnough,
  mayRejectGreedy,
  meanScore,
  pairFromJudged,
  stepsAllowed,
  strictDpoSteps,
  tieAnchor,
  withConfirmedGreedyRejections,
  withSureGreedyRejections,
} from "../../actors/trainer/pairs.ts";
import { makeRng } from "../../tasks/random.ts";

const c = (response: string, scores: (number | null)[], policyVersion = 1) => ({
  response,
  scores,
  policyVersion,
});

test("pairs the highest mean score against the lowest", () => {
  const out = pairFromJudged("Reverse: ab", [c("ba", [5, 4, 5]), c("ab", [2, 3, null]), c("b", [1, 1, 1])]);
  assert.equal(out.kind, "pair");
  if (out.kind !== "pair") return;
  assert.equal(out.pair.chosen, "ba");
  assert.equal(out.pair.rejected, "b");
  assert.ok(Math.abs(out.pair.chosenScore - 14 / 3) < 1e-12);
});

test("drops ties and prompts with fewer than two scorable candidates", () => {
  assert.deepEqual(pairFromJudged("p", [c("a", [3, 3]), c("b", [3, null])]), { kind: "tie", score: 3 });
  assert.deepEqual(pairFromJudged("p", [c("a", [3]), c("b", [null, null])]), {
    kind: "too-few-scores",
    scorable: 1,
  });
});

test("a pair is as old as its oldest side", () => {
  const out = pairFromJudged("p", [c("a", [5], 3), c("b", [1], 2)]);
  assert.equal(out.kind === "pair" && out.pair.policyVersion, 2);
});

test("mean ignores unparsable judgements; staleness bound", () => {
  assert.equal(meanScore([null, 4, 2]), 3);
  assert.equal(meanScore([null]), null);
  assert.ok(isFreshEnough(5, 5, 0));
  assert.ok(!isFreshEnough(4, 5, 0));
  assert.ok(isFreshEnough(4, 5, 1));
});

test("a minimum score gap drops near-ties too", () => {
  const cands = [c("a", [4, 4, 3]), c("b", [3, 3, 3])];
  assert.equal(pairFromJudged("p", cands).kind, "pair");
  assert.equal(pairFromJudged("p", cands, 1).kind, "tie");
});

test("all pairs: every two candidates far enough apart, never two of the same text", () => {
  const cands = [c("a", [5]), c("b", [4]), c("c", [2]), c("a", [1]), c("d", [null])];
  const pairs = allPairsFromJudged("p", cands, 1).map((p) => `${p.chosen}>${p.rejected}`);
  // a(5)>b(4), a>c, b>c, b>a(1), c>a(1); a(5) over a(1) is the same text; d has no score.
  assert.deepEqual(pairs.sort(), ["a>b", "a>c", "b>a", "b>c", "c>a"]);
  // The gap bound applies to each pair: at 2.5, only those 3 or more apart remain.
  assert.deepEqual(
    allPairsFromJudged("p", cands, 2.5)
      .map((p) => `${p.chosen}>${p.rejected}`)
      .sort(),
    ["a>c", "b>a"],
  );
  assert.deepEqual(allPairsFromJudged("p", [c("a", [3]), c("b", [3])]), []);
});

test("a pair rejecting the greedy answer needs the larger gap; other pairs keep theirs", () => {
  // g is the greedy answer: judged 4, it loses to a (5) by 1 and to nothing else; it beats c.
  const cands = [c("g", [4]), c("a", [5]), c("b", [3]), c("c", [2])];
  const pairs = allPairsFromJudged("p", cands, 1);
  const { kept, dropped } = withSureGreedyRejections(pairs, "g", 2);
  assert.equal(dropped, 1);
  assert.deepEqual(kept.map((p) => `${p.chosen}>${p.rejected}`).sort(), ["a>b", "a>c", "b>c", "g>b", "g>c"]);
  // Judged 2 instead, g is rejected by a (gap 3, kept) and by b (gap 1, dropped).
  const low = allPairsFromJudged("p", [c("g", [2]), c("a", [5]), c("b", [3])], 1);
  assert.deepEqual(
    withSureGreedyRejections(low, "g", 2).kept.map((p) => `${p.chosen}>${p.rejected}`),
    ["a>b", "a>g"],
  );
  // No greedy answer for the prompt (its job failed): nothing is dropped.
  assert.deepEqual(withSureGreedyRejections(pairs, undefined, 2), { kept: pairs, dropped: 0 });
});

test("streaming DPO keeps pace with the judged share of prompts", () => {
  assert.equal(stepsAllowed(40, 0, 120), 0);
  assert.equal(stepsAllowed(40, 30, 120), 10);
  assert.equal(stepsAllowed(40, 119, 120), 39);
  assert.equal(stepsAllowed(40, 120, 120), 40);
  assert.equal(stepsAllowed(40, 200, 120), 40);
  assert.equal(stepsAllowed(40, 0, 0), 40);
});

test("streaming minibatches draw every pair about equally often", () => {
  const draws = new EvenDraws<string>(makeRng(1).next);
  const pool = ["a", "b", "c"];
  const counts = new Map<string, number>();
  const tally = (batch: string[]) => {
    for (const x of batch) counts.set(x, (counts.get(x) ?? 0) + 1);
  };
  for (let i = 0; i < 5; i++) tally(draws.next(pool, 2));
  // The early pairs were drawn 10 times in all; a late arrival is drawn until it catches up.
  pool.push("d", "e");
  for (let i = 0; i < 10; i++) tally(draws.next(pool, 2));
  const n = [...counts.values()];
  assert.equal(
    n.reduce((a, b) => a + b, 0),
    30,
  );
  assert.ok(Math.max(...n) - Math.min(...n) <= 1, `uneven draws ${JSON.stringify([...counts])}`);
  assert.deepEqual(new Set(draws.next(["x", "y"], 5)), new Set(["x", "y"]));
});

test("strict DPO takes at most `epochs` passes over an iteration's pairs", () => {
  const dpo = { steps: 60, batchSize: 8 };
  assert.equal(strictDpoSteps(dpo, 10), 60, "no epochs: always `steps`");
  assert.equal(strictDpoSteps({ ...dpo, epochs: 2.5 }, 98), 31);
  assert.equal(strictDpoSteps({ ...dpo, epochs: 2.5 }, 400), 60, "never more than `steps`");
  assert.equal(strictDpoSteps({ ...dpo, epochs: 0.1 }, 1), 1, "at least one step");
});

test("a pair rejecting the greedy answer stays only if every further verdict on it leaves the gap", () => {
  // g judged 4, a 5, b 3: with gap 1, a>g is the one pair that rejects g.
  const pairs = allPairsFromJudged("p", [c("g", [4]), c("a", [5]), c("b", [3])], 1);
  const names = (ps: typeof pairs) => ps.map((p) => `${p.chosen}>${p.rejected}`).sort();
  assert.deepEqual(names(pairs), ["a>b", "a>g", "g>b"]);
  // Asked again, g is marked 4 and 3: a>g holds (gaps 1 and 2).
  assert.deepEqual(names(withConfirmedGreedyRejections(pairs, "g", [4, 3], 1).kept), ["a>b", "a>g", "g>b"]);
  // One further verdict gives it 5: the mark-down was chance, a>g goes; pairs where g is chosen stay.
  const chance = withConfirmedGreedyRejections(pairs, "g", [4, 5], 1);
  assert.deepEqual(names(chance.kept), ["a>b", "g>b"]);
  assert.equal(chance.dropped, 1);
  // An unparsable further verdict, or none (the job failed), confirms nothing.
  assert.equal(withConfirmedGreedyRejections(pairs, "g", [3, null], 1).dropped, 1);
  assert.equal(withConfirmedGreedyRejections(pairs, "g", [], 1).dropped, 1);
  // No greedy answer for the prompt: nothing to confirm, nothing dropped.
  assert.deepEqual(withConfirmedGreedyRejections(pairs, undefined, [], 1), { kept: pairs, dropped: 0 });
});

test("only a greedy answer that some candidate beats by the gap is sent to be judged again", () => {
  assert.equal(mayRejectGreedy([c("g", [4]), c("a", [5])], "g", 1), true);
  assert.equal(mayRejectGreedy([c("g", [4]), c("a", [4.5])], "g", 1), false);
  assert.equal(mayRejectGreedy([c("g", [5]), c("a", [3])], "g", 1), false);
  assert.equal(mayRejectGreedy([c("g", [null]), c("a", [5])], "g", 1), false);
  assert.equal(mayRejectGreedy([c("a", [5]), c("b", [1])], "g", 1), false);
});

test("a prompt tied at the full mark anchors its greedy answer as both sides of a pair", () => {
  const tied = [c("ab", [5]), c("ba", [5, null]), c("aa", [null])];
  const anchor = tieAnchor("p", tied, "ba", 5);
  assert.ok(anchor);
  assert.equal(anchor.chosen, "ba");
  assert.equal(anchor.rejected, "ba");
  assert.equal(anchor.chosenScore, 5);
  // Not at the full mark, not tied, no greedy answer, or the greedy answer unjudged: no anchor.
  assert.equal(tieAnchor("p", [c("ab", [4]), c("ba", [4])], "ba", 5), null);
  assert.equal(tieAnchor("p", [c("ab", [5]), c("ba", [4])], "ab", 5), null);
  assert.equal(tieAnchor("p", tied, undefined, 5), null);
  assert.equal(tieAnchor("p", tied, "aa", 5), null);
  assert.equal(tieAnchor("p", tied, "zz", 5), null);
});
