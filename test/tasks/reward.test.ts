import assert from "node:assert/strict";
import { test } from "node:test";
import {
  ANSWER_TRIGGER,
  extractAnswer,
  extractNumber,
  majorityVote,
  parseNumber,
  reftReward,
} from "../../tasks/reward.ts";

const T = ANSWER_TRIGGER;

test("the answer is the text after the last trigger, on its line", () => {
  assert.equal(extractAnswer("3 + 4 = 7. 7 - 2 = 5. Therefore, the answer is: 5"), "5");
  assert.equal(extractAnswer("no trigger here, the answer is 5"), null);
  assert.equal(extractAnswer(`${T} 3. Wait. ${T} 4`), "4");
  assert.equal(extractAnswer(`${T} 12\nQuestion: Ann has 3 pens.`), "12");
  assert.equal(extractAnswer(`${T}\n 7 \n`), "7", "the answer may start on the next line");
  assert.equal(extractAnswer(`${T}`), "");
  assert.equal(extractAnswer("So: 9", "So:"), "9");
});

test("numbers as answers are written: commas, signs, decimals, currency; anything else is null", () => {
  const cases: [string, number | null][] = [
    ["5", 5],
    ["1,234", 1234],
    ["1,234,567.5", 1234567.5],
    ["-5", -5],
    ["\u22125", -5],
    ["+3", 3],
    ["3.50", 3.5],
    [".5", 0.5],
    ["-0.25", -0.25],
    ["42.", 42],
    ["$12", 12],
    ["-$3", -3],
    ["45%", 45],
    ["1,23", null],
    ["12,3456", null],
    ["5 apples", null],
    ["five", null],
    ["3 + 4", null],
    ["", null],
    ["-", null],
    [".", null],
    ["1e5", null],
  ];
  for (const [s, want] of cases) assert.equal(parseNumber(s), want, JSON.stringify(s));
  assert.equal(extractNumber(`${T} 1,000.`), 1000);
  assert.equal(extractNumber(`${T} 8 ${T} -2.5`), -2.5);
  assert.equal(extractNumber("the answer is 4"), null);
});

test("ReFT reward: 1 within 1e-2, 0.1 for a wrong number, 0 when none is extracted", () => {
  assert.equal(reftReward(`7 - 2 = 5. ${T} 5`, 5), 1);
  assert.equal(reftReward(`${T} 5.004`, 5), 1);
  assert.equal(reftReward(`${T} 5.02`, 5), 0.1);
  assert.equal(reftReward(`${T} 6`, 5), 0.1);
  assert.equal(reftReward(`${T} five`, 5), 0);
  assert.equal(reftReward("7 - 2 = 5.", 5), 0);
  assert.equal(reftReward(`${T} -1,500`, -1500), 1);
  assert.equal(reftReward("Answer: 5", 5, { trigger: "Answer:" }), 1);
  assert.equal(reftReward(`${T} 6`, 5, { partial: 0, tolerance: 1 }), 1);
  assert.equal(reftReward(`${T} 7`, 5, { partial: 0 }), 0);
});

test("majority voting: most votes win, ties go to the first answer given, nulls abstain", () => {
  assert.deepEqual(majorityVote([3, 5, 5, null, 3, 5]), { answer: 5, votes: 3, answered: 5, tied: [5] });
  assert.deepEqual(majorityVote([4, 7, 7, 4]), { answer: 4, votes: 2, answered: 4, tied: [4, 7] });
  assert.deepEqual(majorityVote([7, 4, 4, 7]).answer, 7);
  assert.deepEqual(majorityVote([null, null]), { answer: null, votes: 0, answered: 0, tied: [] });
  assert.deepEqual(majorityVote([]), { answer: null, votes: 0, answered: 0, tied: [] });
  // Answers within the tolerance are one answer.
  const v = majorityVote([2.5, 2.501, 3, 3.2]);
  assert.equal(v.answer, 2.5);
  assert.equal(v.votes, 2);
  assert.deepEqual(majorityVote([1, 1.5, 1.5], 1).votes, 3);
});
