// ReFT's task from the config: srlm's synthetic problems or the user's JSONL, with splits that
// never share a question, the configured trigger, and errors that name the file and line.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadConfig } from "../../config/load.ts";
import { MATH_CHARSET, reasoningTaskFromConfig } from "../../tasks/reasoning.ts";
import { extractNumber } from "../../tasks/reward.ts";

const dir = mkdtempSync(join(tmpdir(), "srlm-reasoning-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const config = (flags: Record<string, unknown>) =>
  loadConfig({ env: {}, flags: { method: "reft", ...flags } });

test("synthetic problems: disjoint splits, solutions ending on the trigger, every character in the charset", () => {
  const task = reasoningTaskFromConfig(
    config({ "data.math.trainSize": 300, "data.math.devSize": 40, "data.math.heldOutSize": 50 }),
  );
  assert.equal(task.name, "math");
  assert.deepEqual([task.train.length, task.dev.length, task.heldOut.length], [300, 40, 50]);
  const questions = [...task.train, ...task.dev, ...task.heldOut].map((p) => p.question);
  assert.equal(new Set(questions).size, questions.length, "no question is in two splits");
  for (const p of task.train) {
    assert.equal(extractNumber(p.cot, task.trigger), p.answer);
    for (const ch of p.question + p.cot)
      assert.ok(MATH_CHARSET.includes(ch), `${JSON.stringify(ch)} in ${p.question}`);
  }
  assert.equal(task.pretrain.length, 300);
  assert.match(task.judgePrompt("Q?", "S"), /Score: <points>/);
});

test("a configured trigger is the one the solutions end on", () => {
  const task = reasoningTaskFromConfig(config({ "data.math.trainSize": 20, "data.math.trigger": "####" }));
  assert.equal(task.trigger, "####");
  for (const p of task.train) {
    assert.ok(p.cot.endsWith(`#### ${p.answer}`), p.cot);
    assert.equal(extractNumber(p.cot, "####"), p.answer);
  }
});

test("JSONL problems: held-out and dev set aside from the training file unless given", () => {
  const file = join(dir, "train.jsonl");
  const rows = Array.from({ length: 30 }, (_, i) =>
    JSON.stringify({ question: `What is ${i} plus 1?`, answer: `${i} + 1 = ${i + 1}\n#### ${i + 1}` }),
  );
  writeFileSync(file, `${rows.join("\n")}\n`);
  const task = reasoningTaskFromConfig(
    config({ "data.math.train": file, "data.math.heldOutSize": 5, "data.math.devSize": 3 }),
  );
  assert.equal(task.name, "math-jsonl");
  assert.deepEqual([task.train.length, task.dev.length, task.heldOut.length], [22, 3, 5]);
  const questions = [...task.train, ...task.dev, ...task.heldOut].map((p) => p.question);
  assert.equal(new Set(questions).size, 30);
  for (const p of task.heldOut) assert.equal(extractNumber(p.cot, task.trigger), p.answer);

  assert.throws(
    () => reasoningTaskFromConfig(config({ "data.math.train": file, "data.math.heldOutSize": 30 })),
    /heldOutSize \+ devSize \(130\) leave no training problems of 30/,
  );
});

test("a bad JSONL line is an error naming the file, the line and the field", () => {
  const file = join(dir, "bad.jsonl");
  writeFileSync(
    file,
    `${JSON.stringify({ question: "Q?", answer: "1 + 2 = 3\n#### 3" })}\n{"question": "R?"}\n`,
  );
  assert.throws(
    () => reasoningTaskFromConfig(config({ "data.math.train": file })),
    (err: Error) =>
      err.message.includes("bad.jsonl") && /:2\b/.test(err.message) && /"answer"/.test(err.message),
  );
  assert.throws(
    () => reasoningTaskFromConfig(config({ "data.math.train": join(dir, "missing.jsonl") })),
    /data\.math\.train: cannot read .*missing\.jsonl/,
  );
});
