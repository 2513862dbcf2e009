import assert from "node:assert/strict";
import { test } from "node:test";
import { dedupe, parseWrittenPrompt, promptWritingPrompt } from "../../tasks/selfinstruct.ts";

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
