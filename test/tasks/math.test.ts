import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { countStyles, makeMathProblem, mathSplits, solutionStyle } from "../../tasks/math.ts";
import { parseMathJsonl, readMathJsonl } from "../../tasks/mathJsonl.ts";
import { makeRng } from "../../tasks/random.ts";
import { ANSWER_TRIGGER, extractNumber, reftReward } from "../../tasks/reward.ts";

/** Checks every equation of a chain of thought and that each step starts from the last result. */
function checkCot(cot: string): { steps: number; final: number } {
  const body = cot.slice(0, cot.lastIndexOf(ANSWER_TRIGGER));
  const eqs = [...body.matchAll(/(\d+) ([-+*]) (\d+) = (\d+)\./g)];
  assert.equal(eqs.map((m) => m[0]).join(" "), body.trim(), `only equations in ${JSON.stringify(cot)}`);
  let last: number | null = null;
  for (const m of eqs) {
    const [a, op, b, c] = [Number(m[1]), m[2], Number(m[3]), Number(m[4])];
    const want = op === "+" ? a + b : op === "-" ? a - b : a * b;
    assert.equal(c, want, m[0]);
    // A product is a side computation; the running total carries on through the sum after it.
    if (op !== "*" && last !== null) assert.ok(a === last, `${m[0]} does not continue from ${last}`);
    if (op !== "*") last = c;
  }
  return { steps: eqs.length, final: last! };
}

test("synthetic problems: 2-4 steps of small integers, a correct chain of thought, the answer last", () => {
  const rng = makeRng(11);
  const steps = new Set<number>();
  for (let i = 0; i < 300; i++) {
    const p = makeMathProblem(rng);
    const { steps: n, final } = checkCot(p.cot);
    steps.add(n);
    assert.ok(n >= 2 && n <= 4, p.cot);
    assert.equal(final, p.answer);
    assert.ok(Number.isInteger(p.answer) && p.answer > 0, p.cot);
    assert.equal(extractNumber(p.cot), p.answer);
    assert.equal(reftReward(p.cot, p.answer), 1);
    assert.match(p.question, /^[A-Z][a-z]+ has \d+ [a-z]+\. .*How many [a-z]+ does [A-Z][a-z]+ have now\?$/);
    assert.ok(p.question.length < 200 && p.cot.length < 120, `${p.question} / ${p.cot}`);
  }
  assert.deepEqual([...steps].sort(), [2, 3, 4]);
  const one = makeMathProblem(makeRng(1), { minOps: 1, maxOps: 1 });
  assert.equal(checkCot(one.cot).steps, 1);
  assert.throws(() => makeMathProblem(makeRng(1), { minOps: 3, maxOps: 2 }), /bad step range/);
});

test("splits are deterministic for a seed, disjoint, and stable when the training set grows", () => {
  const a = mathSplits({ seed: 5, train: 200, dev: 30, heldOut: 40 });
  const b = mathSplits({ seed: 5, train: 200, dev: 30, heldOut: 40 });
  assert.deepEqual(a, b);
  assert.equal(a.train.length, 200);
  assert.equal(a.dev.length, 30);
  assert.equal(a.heldOut.length, 40);
  const questions = [...a.train, ...a.dev, ...a.heldOut].map((p) => p.question);
  assert.equal(new Set(questions).size, questions.length, "no question in two splits, nor twice in one");
  const bigger = mathSplits({ seed: 5, train: 400, dev: 30, heldOut: 40 });
  assert.deepEqual(bigger.heldOut, a.heldOut);
  assert.deepEqual(bigger.dev, a.dev);
  assert.notDeepEqual(mathSplits({ seed: 6, train: 5, dev: 5, heldOut: 5 }).heldOut, a.heldOut.slice(0, 5));
  assert.throws(
    () => mathSplits({ seed: 1, train: 3000, dev: 0, heldOut: 0, minOps: 1, maxOps: 1, maxOperand: 2 }),
    /found only \d+ of 3000 distinct train problems/,
  );
});

test("terse solutions: the same problems, the whole story as one equation that evaluates to the answer", () => {
  const worked = mathSplits({ seed: 3, train: 400, dev: 20, heldOut: 20 });
  const mixed = mathSplits({ seed: 3, train: 400, dev: 20, heldOut: 20, terseShare: 0.6 });
  assert.deepEqual(
    mixed.train.map((p) => [p.question, p.answer]),
    worked.train.map((p) => [p.question, p.answer]),
    "the share changes how solutions are written, not which problems are drawn",
  );
  let terse = 0;
  for (const [i, p] of mixed.train.entries()) {
    if (solutionStyle(p.cot) === "worked") {
      assert.equal(p.cot, worked.train[i].cot);
      continue;
    }
    terse++;
    const m = p.cot.match(/^(\d+(?: [-+*] \d+)+) = (\d+)\. Therefore, the answer is: (\d+)$/);
    assert.ok(m, p.cot);
    // Left to right with * first, as the equation is read: the terms are the story's events.
    const value = m[1].split(/ (?=[-+] )/).reduce((sum, term, j) => {
      const [sign, ...rest] = j === 0 ? ["+", term] : [term[0], term.slice(2)];
      const v = rest
        .join("")
        .split(" * ")
        .map(Number)
        .reduce((a, b) => a * b);
      return sign === "-" ? sum - v : sum + v;
    }, 0);
    assert.equal(value, p.answer, p.cot);
    assert.equal(Number(m[2]), p.answer);
    assert.equal(Number(m[3]), p.answer);
    assert.equal(extractNumber(p.cot), p.answer);
  }
  assert.ok(terse > 0.5 * 400 && terse < 0.7 * 400, `${terse} of 400 terse at a share of 0.6`);
  assert.ok(worked.train.every((p) => solutionStyle(p.cot) === "worked"));
  assert.equal(solutionStyle(`7 + 1 = 8. 8 - 1 = 7. ${ANSWER_TRIGGER} 7`), "worked");
  assert.equal(
    solutionStyle(`7 + 1 = 8. ${ANSWER_TRIGGER} 8`),
    "worked",
    "one operation is both styles at once",
  );
  assert.equal(solutionStyle(`7 + 1 - 1 = 7. ${ANSWER_TRIGGER} 7`), "terse");
  assert.equal(solutionStyle(`${ANSWER_TRIGGER} 7`), null, "no equation: neither style");
  assert.deepEqual(
    countStyles(
      [
        `7 + 1 - 1 = 7. ${ANSWER_TRIGGER} 7`,
        `7 + 1 = 8. 8 - 1 = 7. ${ANSWER_TRIGGER} 7`,
        "7",
        `9 - 2 + 1 = 9.`,
      ],
      [true, true, false, false],
    ),
    { worked: { n: 1, right: 1 }, terse: { n: 2, right: 1 }, none: { n: 1, right: 0 } },
  );
  assert.throws(
    () => mathSplits({ seed: 3, train: 1, dev: 0, heldOut: 0, terseShare: 1.5 }),
    /terseShare 1.5/,
  );
});

test("JSONL import: GSM8K's #### answers and the ReFT shape become chains of thought ending on the trigger", () => {
  const gsm = JSON.stringify({
    question: "Tom has 48 cards and gives half away. How many are left?",
    answer: "Half of 48 is 48/2 = <<48/2=24>>24.\nSo he has 24 left.\n#### 1,024",
  });
  const paper = JSON.stringify({ question: "Q2?", answer_cot: "2 - 7 = -5.", answer_value: "-5" });
  const stated = JSON.stringify({
    question: "Q3?",
    answer_cot: `1.5 * 2 = 3. ${ANSWER_TRIGGER} 3`,
    answer_value: 3,
  });
  const rows = parseMathJsonl([gsm, "", paper, stated, ""].join("\n"), "mwp.jsonl");
  assert.deepEqual(rows, [
    {
      question: "Tom has 48 cards and gives half away. How many are left?",
      cot: `Half of 48 is 48/2 = 24.\nSo he has 24 left.\n${ANSWER_TRIGGER} 1024`,
      answer: 1024,
    },
    { question: "Q2?", cot: `2 - 7 = -5. ${ANSWER_TRIGGER} -5`, answer: -5 },
    { question: "Q3?", cot: `1.5 * 2 = 3. ${ANSWER_TRIGGER} 3`, answer: 3 },
  ]);
  assert.equal(reftReward(rows[0].cot, rows[0].answer), 1);
  const custom = parseMathJsonl(paper, "f", { trigger: "The answer is" });
  assert.equal(custom[0].cot, "2 - 7 = -5. The answer is -5");
});

test("JSONL import errors name the file, the line and the field", () => {
  const bad: [string, RegExp][] = [
    ['{"question": "q"}', /^JsonlError: m\.jsonl:2: missing field "answer" \(GSM8K/],
    [
      '{"question": "q", "answer": "no final line"}',
      /^JsonlError: m\.jsonl:2: field "answer" has no final answer line/,
    ],
    [
      '{"question": "q", "answer": "x\\n#### twelve"}',
      /^JsonlError: m\.jsonl:2: field "answer": "#### twelve" is not a number/,
    ],
    ['{"question": "q", "answer": "#### 4"}', /^JsonlError: m\.jsonl:2: field "answer" has no reasoning/],
    ['{"answer": "x #### 4"}', /^JsonlError: m\.jsonl:2: missing field "question"/],
    [
      '{"question": 3, "answer": "x #### 4"}',
      /^JsonlError: m\.jsonl:2: field "question" must be a string, got a number/,
    ],
    ['{"question": " ", "answer": "x #### 4"}', /^JsonlError: m\.jsonl:2: field "question" is empty/],
    ['{"question": "q", "answer_cot": "c"}', /^JsonlError: m\.jsonl:2: missing field "answer_value"/],
    [
      '{"question": "q", "answer_cot": "c", "answer_value": "n/a"}',
      /^JsonlError: m\.jsonl:2: field "answer_value" must be a number or a numeric string, got "n\/a"/,
    ],
    [
      '{"question": "q", "answer_cot": "c", "answer_value": null}',
      /^JsonlError: m\.jsonl:2: field "answer_value" .* got null/,
    ],
    [
      '{"question": "q", "answer_cot": 5, "answer_value": 1}',
      /^JsonlError: m\.jsonl:2: field "answer_cot" must be a string/,
    ],
    ["[1, 2]", /^JsonlError: m\.jsonl:2: expected a JSON object, got an array/],
    ["{oops", /^JsonlError: m\.jsonl:2: bad JSON/],
  ];
  const good = '{"question": "q", "answer": "1 + 1 = 2. #### 2"}';
  for (const [line, want] of bad)
    assert.throws(() => parseMathJsonl(`${good}\n${line}\n`, "m.jsonl"), want, line);
  assert.throws(() => parseMathJsonl("\n\n", "m.jsonl"), /^JsonlError: m\.jsonl: empty file/);
});

test("readMathJsonl reads a file and names it in errors", async () => {
  const dir = mkdtempSync(join(tmpdir(), "srlm-math-"));
  try {
    const file = join(dir, "train.jsonl");
    writeFileSync(file, '{"question": "q", "answer_cot": "1 + 1 = 2.", "answer_value": 2}\n');
    assert.deepEqual(await readMathJsonl(file), [
      { question: "q", cot: `1 + 1 = 2. ${ANSWER_TRIGGER} 2`, answer: 2 },
    ]);
    await assert.rejects(readMathJsonl(join(dir, "missing.jsonl")), /missing\.jsonl: cannot read/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
