import assert from "node:assert/strict";
import { test } from "node:test";
import { buildSeedData, corruptResponse, type SeedDataOptions } from "../../tasks/data.ts";
import { families, parsePrompt } from "../../tasks/families.ts";
import { cutAtEnd, DOMAIN_CHARSET } from "../../tasks/format.ts";
import { makeRng } from "../../tasks/random.ts";
import { parseJudgement, trueScore } from "../../tasks/rubric.ts";
import { parseWrittenPrompt } from "../../tasks/selfinstruct.ts";

const small: SeedDataOptions = {
  seed: 11,
  iftSize: 120,
  eftSize: 120,
  heldOutSize: 80,
  judgeEvalSize: 16,
  pretrainSize: 300,
};

/** Every task prompt inside a sample: the prompt itself, the one judged, or the few-shot and written ones. */
function taskPromptsIn(sample: string): string[] {
  const [head, tail] = sample.split("\n");
  const fields = head.split("|");
  if (fields[0] === "Judge") return [fields[1]];
  if (fields[0] === "Write") return [...fields.slice(1, -1), tail];
  return [head];
}

test("sizes, shapes and determinism", () => {
  const a = buildSeedData(small);
  const b = buildSeedData(small);
  assert.deepEqual(a, b);
  assert.notDeepEqual(buildSeedData({ ...small, seed: 12 }).ift, a.ift);
  assert.equal(a.pretrain.length, small.pretrainSize);
  assert.equal(a.ift.length, small.iftSize);
  assert.equal(a.eft.length, small.eftSize);
  assert.equal(a.heldOut.length, small.heldOutSize);
  assert.equal(a.judgeEval.length, small.judgeEvalSize);
  assert.deepEqual(
    a.seedPrompts,
    a.ift.map((x) => x.prompt),
  );
  assert.equal(new Set(a.ift.map((x) => x.prompt)).size, a.ift.length);
  // Every family is represented in the held-out set, evenly.
  for (const f of families) assert.equal(a.heldOut.filter((x) => x.family === f.name).length, 10);
});

test("held-out prompts never appear in anything trained on", () => {
  const d = buildSeedData(small);
  const heldOut = new Set([...d.heldOut.map((x) => x.prompt), ...d.judgeEval.map((x) => x.prompt)]);
  assert.equal(heldOut.size, d.heldOut.length + d.judgeEval.length);
  const trained = [
    ...d.ift.map((x) => x.prompt),
    ...d.eft.flatMap((x) => taskPromptsIn(x.prompt)),
    ...d.pretrain.flatMap(taskPromptsIn),
    ...d.seedPrompts,
  ];
  for (const p of trained) {
    assert.ok(parsePrompt(p) !== null, `not a task prompt: ${JSON.stringify(p)}`);
    assert.ok(!heldOut.has(p), `held-out prompt trained on: ${p}`);
  }
});

test("held-out sets do not move when training sizes change", () => {
  const a = buildSeedData(small);
  const b = buildSeedData({ ...small, iftSize: 30, pretrainSize: 10, eftSize: 7 });
  assert.deepEqual(b.heldOut, a.heldOut);
  assert.deepEqual(b.judgeEval, a.judgeEval);
});

test("responses and scores are true, EFT is spread evenly over scores 0..5", () => {
  const d = buildSeedData(small);
  for (const x of d.ift) assert.equal(trueScore(x.prompt, x.response).score, 5);
  for (const x of d.heldOut) assert.equal(trueScore(x.prompt, x.answer).score, 5);
  const counts = [0, 0, 0, 0, 0, 0];
  for (const x of d.eft) {
    const j = parseJudgement(x.response);
    assert.ok(j.ok, x.response);
    counts[j.score]++;
    const [, prompt, response] = x.prompt.split("|");
    assert.equal(trueScore(prompt, response).score, j.score, x.prompt);
  }
  assert.deepEqual(counts, [20, 20, 20, 20, 20, 20]);
  for (const item of d.judgeEval) {
    assert.equal(item.candidates.length, 4);
    assert.ok(new Set(item.candidates.map((c) => c.trueScore)).size > 1);
    for (const c of item.candidates) assert.equal(trueScore(item.prompt, c.response).score, c.trueScore);
  }
});

test("pretraining text is well-formed samples over the domain charset", () => {
  const d = buildSeedData(small);
  let judge = 0;
  let write = 0;
  for (const doc of d.pretrain) {
    assert.ok(doc.endsWith("\n") && doc.split("\n").length === 3, JSON.stringify(doc));
    for (const c of doc) assert.ok(DOMAIN_CHARSET.includes(c), `char ${JSON.stringify(c)} in ${doc}`);
    const [head, rest] = doc.split("\n");
    if (head.startsWith("Judge|")) {
      judge++;
      assert.ok(parseJudgement(rest).ok);
    } else if (head.startsWith("Write|")) {
      write++;
      assert.equal(parseWrittenPrompt(rest), rest);
    }
    assert.equal(cutAtEnd(rest + "\n").text, rest);
  }
  assert.ok(judge > 30 && write > 15, `judge ${judge}, write ${write}`);
  for (const x of [...d.ift, ...d.eft]) {
    for (const c of x.prompt + x.response) assert.ok(DOMAIN_CHARSET.includes(c));
  }
});

test("corrupted responses spread over quality levels", () => {
  const rng = makeRng(5);
  const seen = new Set<number>();
  for (const family of families) {
    for (let i = 0; i < 100; i++) {
      const x = family.makeInstance(rng);
      seen.add(trueScore(x.prompt, corruptResponse(rng, x.answer, family).response).score);
    }
  }
  // A flaw can cancel out (shuffling "aab"), so 5 may turn up too.
  for (const score of [0, 1, 2, 3, 4]) assert.ok(seen.has(score), `no corruption scored ${score}`);
});

test("a family subset draws only from those families", () => {
  const d = buildSeedData({ ...small, families: ["word", "number"] });
  const names = new Set([...d.ift, ...d.heldOut].map((x) => parsePrompt(x.prompt)?.family.name));
  assert.deepEqual([...names].sort(), ["number", "word"]);
  assert.equal(d.heldOut.filter((x) => x.family === "word").length, 40);
  assert.throws(() => buildSeedData({ ...small, families: ["nope"] }), /unknown task family "nope"/);
  assert.throws(() => buildSeedData({ ...small, families: [] }), /at least one task family/);
});

test("bad sizes are refused with the field named", () => {
  assert.throws(() => buildSeedData({ ...small, iftSize: -1 }), /iftSize must be a non-negative integer/);
});

test("dev split: leaves the held-out and judge sets as they were, and stays out of training", () => {
  const without = buildSeedData(small);
  const withDev = buildSeedData({ ...small, devSize: 40 });
  assert.equal(without.dev.length, 0);
  assert.equal(withDev.dev.length, 40);
  assert.deepEqual(withDev.heldOut, without.heldOut);
  assert.deepEqual(withDev.judgeEval, without.judgeEval);
  const dev = new Set(withDev.dev.map((x) => x.prompt));
  for (const h of [...withDev.heldOut, ...withDev.judgeEval]) assert.ok(!dev.has(h.prompt));
  const training = [
    ...withDev.ift.map((x) => x.prompt),
    ...withDev.eft.flatMap((x) => taskPromptsIn(`${x.prompt}\n${x.response}`)),
    ...withDev.pretrain.flatMap(taskPromptsIn),
    ...withDev.selfInstruct.flatMap((x) => taskPromptsIn(`${x.prompt}\n${x.response}`)),
  ];
  for (const p of training) assert.ok(!dev.has(p), `dev prompt ${p} in training data`);
});
