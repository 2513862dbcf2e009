import assert from "node:assert/strict";
import { test } from "node:test";
import { parsePrompt } from "../../tasks/families.ts";
import { makeRng } from "../../tasks/random.ts";
import {
  dedupe,
  fewShotSets,
  parseWrittenPrompt,
  promptsByFamily,
  promptWritingPrompt,
} from "../../tasks/selfinstruct.ts";

test("prompt-writing prompt is compact few-shot", () => {
  assert.equal(promptWritingPrompt(["Reverse: apple", "Add 3 and 9"]), "Write|Reverse: apple|Add 3 and 9|");
  assert.throws(() => promptWritingPrompt([]), /at least one/);
  assert.throws(() => promptWritingPrompt(["a|b"]), /contains '\|'/);
});

test("written prompts survive only if they are valid task instances", () => {
  assert.equal(parseWrittenPrompt("Sort the letters: mop"), "Sort the letters: mop");
  assert.equal(parseWrittenPrompt(" Add 3 and 9 \nAdd 1 and 2"), "Add 3 and 9");
  // A valid prompt of a family the run does not use is dropped: the run would not evaluate it.
  assert.equal(parseWrittenPrompt("Add 3 and 9", ["add", "sort"]), "Add 3 and 9");
  assert.equal(parseWrittenPrompt("Add 3 and 9", ["word", "number"]), null);
  for (const bad of [
    "",
    "Sort the letters:",
    "Sort letters: mop",
    "Add 3 and",
    "Reverse: APPLE",
    "Write|x|",
  ]) {
    assert.equal(parseWrittenPrompt(bad), null, bad);
  }
});

test("dedupe keeps first-seen order and drops what was seen", () => {
  assert.deepEqual(dedupe(["a", "b", "a", "c", "b"], ["c"]), ["a", "b"]);
  assert.deepEqual(dedupe([]), []);
});

test("few-shot sets show one family each, the families in turn", () => {
  const seed = [
    "Word of 5: starts b with o not e",
    "Number of 4: ends 7 with 2 not 5",
    "Word of 4: starts k with a not u",
    "Number of 3: ends 1 with 9 not 0",
    "Word of 6: starts s with i not t",
  ];
  assert.deepEqual([...promptsByFamily(seed).keys()], ["number", "word"]);
  const sets = fewShotSets(makeRng(1), seed, 6, 2);
  const familyOf = (set: string[]) => [...new Set(set.map((p) => parsePrompt(p)?.family.name))];
  const families = sets.map(familyOf);
  assert.ok(
    families.every((f) => f.length === 1),
    JSON.stringify(sets),
  );
  assert.ok(sets.every((set) => set.length === 2 && new Set(set).size === 2));
  for (let i = 1; i < 6; i++) assert.notEqual(families[i][0], families[i - 1][0]);
  assert.throws(() => promptsByFamily(["Sing: la"]), /"Sing: la" is no task family's prompt/);
  assert.throws(() => fewShotSets(makeRng(1), [], 1, 2), /no seed prompts/);
});
