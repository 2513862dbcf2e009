import assert from "node:assert/strict";
import { test } from "node:test";
import { pairedGain, wilson } from "../../tasks/eval.ts";
import { evaluateInference, isCorrect, rerankAtK, rerankPick, voteAtK } from "../../tasks/inference.ts";
import { ANSWER_TRIGGER } from "../../tasks/reward.ts";

const says = (answer: string) => `3 + 4 = 7. ${ANSWER_TRIGGER} ${answer}`;
const unreadable = "3 + 4 = 7. So it is seven.";

test("a solution is correct when its extracted answer is the gold one, within the tolerance", () => {
  assert.equal(isCorrect(says("7"), 7), true);
  assert.equal(isCorrect(says("7.004"), 7), true);
  assert.equal(isCorrect(says("7.5"), 7), false);
  assert.equal(isCorrect(says("7.5"), 7, { tolerance: 0.5 }), true);
  assert.equal(isCorrect(unreadable, 7), false);
  assert.equal(isCorrect(says("seven"), 7), false);
  assert.equal(isCorrect("So: 7", 7, { trigger: "So:" }), true);
});

test("Vote@K: the majority answer, unreadable samples abstaining, a tie to the first answer seen", () => {
  assert.equal(voteAtK([says("5"), says("7"), says("7")], 7), true);
  assert.equal(voteAtK([says("5"), says("7"), says("7")], 5), false);
  // Two votes each: 5 appeared first, so it wins.
  const tied = [says("5"), says("7"), says("7"), says("5")];
  assert.equal(voteAtK(tied, 5), true);
  assert.equal(voteAtK(tied, 7), false);
  // The unreadable ones do not count as votes for anything, so one readable answer decides.
  assert.equal(voteAtK([unreadable, unreadable, says("7")], 7), true);
  assert.equal(voteAtK([unreadable, unreadable], 7), false);
  assert.equal(voteAtK([], 7), false);
  // K = 1 is that sample's own verdict.
  assert.equal(voteAtK([says("7")], 7), true);
  assert.equal(voteAtK([says("8")], 7), false);
  // Answers within the tolerance pool their votes.
  assert.equal(voteAtK([says("5"), says("7"), says("7.001")], 7), true);
});

test("Rerank@K: the best-scored readable sample, equal scores to the earliest, NaN last", () => {
  const samples = [says("5"), unreadable, says("7"), says("9")];
  assert.equal(rerankPick(samples, [0.2, 0.99, 0.6, 0.4]), 2, "the unreadable one is passed over");
  assert.equal(rerankAtK(samples, [0.2, 0.99, 0.6, 0.4], 7), true);
  assert.equal(rerankAtK(samples, [0.2, 0.99, 0.6, 0.7], 7), false);
  // All scores equal: the first readable sample, whatever the rest say.
  assert.equal(rerankPick(samples, [0.5, 0.5, 0.5, 0.5]), 0);
  assert.equal(rerankPick([unreadable, says("7"), says("9")], [0.3, 0.3, 0.3]), 1);
  // A tie at the top between later samples goes to the earlier of them.
  assert.equal(rerankPick(samples, [0.1, 0.9, 0.8, 0.8]), 2);
  assert.equal(rerankPick(samples, [Number.NaN, 0, 0.1, Number.NaN]), 2);
  assert.equal(rerankPick(samples, [Number.NaN, 0, Number.NaN, Number.NaN]), 0);
  assert.equal(rerankPick([unreadable, unreadable], [0.9, 0.8]), null);
  assert.equal(rerankAtK([unreadable, unreadable], [0.9, 0.8], 7), false);
  assert.equal(rerankPick([], []), null);
  assert.equal(rerankAtK([says("7")], [0.01], 7), true, "K = 1: the one sample, however low its score");
  assert.throws(() => rerankPick(samples, [0.1, 0.2]), /4 samples but 2 scores/);
});

test("evaluation: per-question verdicts, Wilson intervals and paired gains of the three strategies", () => {
  const questions = [
    // Greedy wrong; the vote and the reranker both right.
    { gold: 7, greedy: says("6"), samples: [says("7"), says("7"), says("6")], scores: [0.9, 0.8, 0.1] },
    // Greedy right; the vote wrong (6 twice); the reranker finds the lone 7.
    { gold: 7, greedy: says("7"), samples: [says("6"), says("7"), says("6")], scores: [0.2, 0.7, 0.3] },
    // Nothing readable in the samples: only the greedy answer can be right.
    { gold: 3, greedy: says("3"), samples: [unreadable, unreadable, unreadable], scores: [0.5, 0.5, 0.5] },
    // All wrong; the reranker prefers a wrong answer.
    { gold: 1, greedy: unreadable, samples: [says("2"), says("1"), says("2")], scores: [0.9, 0.1, 0.9] },
  ];
  const r = evaluateInference(questions);
  assert.equal(r.k, 3);
  assert.deepEqual(r.top1, [false, true, true, false]);
  assert.deepEqual(r.voteAtK, [true, false, false, false]);
  assert.deepEqual(r.rerankAtK, [true, true, false, false]);
  assert.deepEqual(r.accuracy.top1, { correct: 2, n: 4, accuracy: 0.5, ci95: wilson(2, 4) });
  assert.deepEqual(r.accuracy.voteAtK, { correct: 1, n: 4, accuracy: 0.25, ci95: wilson(1, 4) });
  assert.deepEqual(r.accuracy.rerankAtK, { correct: 2, n: 4, accuracy: 0.5, ci95: wilson(2, 4) });
  assert.deepEqual(r.gains.voteOverTop1, pairedGain(r.voteAtK, r.top1));
  assert.equal(r.gains.voteOverTop1.gain, -0.25);
  assert.equal(r.gains.rerankOverTop1?.gain, 0);
  assert.equal(r.gains.rerankOverVote?.gain, 0.25);

  // The first k samples only: with k = 1 the second question's vote and pick are its 6.
  const first = evaluateInference(questions, { k: 1 });
  assert.equal(first.k, 1);
  assert.deepEqual(first.voteAtK, [true, false, false, false]);
  assert.deepEqual(first.rerankAtK, first.voteAtK, "K = 1: reranking and voting agree");

  // Without scores there is no Rerank@K.
  const unscored = evaluateInference(questions.map(({ scores: _, ...q }) => q));
  assert.equal(unscored.rerankAtK, null);
  assert.equal(unscored.accuracy.rerankAtK, null);
  assert.equal(unscored.gains.rerankOverVote, null);
  assert.deepEqual(unscored.voteAtK, r.voteAtK);

  const empty = evaluateInference([]);
  assert.equal(empty.accuracy.top1.n, 0);
  assert.deepEqual(empty.accuracy.top1.ci95, [0, 1]);
});

test("evaluation refuses inputs whose K is not one number", () => {
  const q = { gold: 1, greedy: says("1"), samples: [says("1"), says("2")] };
  assert.throws(() => evaluateInference([q, { ...q, samples: [says("1")] }]), /question 1 has 1 samples/);
  assert.throws(() => evaluateInference([{ ...q, scores: [0.5] }]), /question 0 has 2 samples but 1 scores/);
  assert.throws(() => evaluateInference([q, { ...q, scores: [0.1, 0.2] }]), /1 of 2 questions have scores/);
  assert.throws(() => evaluateInference([q], { k: 3 }), /k = 3, but questions have 2 samples/);
  assert.throws(() => evaluateInference([q], { k: 0 }), /k = 0/);
});
