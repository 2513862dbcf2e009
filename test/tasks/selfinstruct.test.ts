import assert from "node:assert/strict";
import { test } from "node:test";
import { parsePrompt } from "../../tasks/families.ts";
import { makeRng } from "../../tasks/random.ts";
import {
  fewShotSetsOf,
  parseWrittenPrompt,
  promptsByFamily,
  promptWritingPrompt,
  takeInTurn,
  writePromptsInTurn,
} from "../../tasks/selfinstruct.ts";
import { syntheticFormat } from "../../tasks/synthetic.ts";

/** The synthetic task's grouping and parsing for a run of `families`. */
const ofFamilies = (families: string[]) => ({
  groupOf: syntheticFormat.groupOf,
  parse: (text: string) => {
    const prompt = parseWrittenPrompt(text, families);
    return prompt === null
      ? { ok: false as const, reason: "not a task prompt" }
      : { ok: true as const, prompt };
  },
});

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

const SEED = [
  "Word of 5: starts b with o not e",
  "Number of 4: ends 7 with 2 not 5",
  "Word of 4: starts k with a not u",
  "Number of 3: ends 1 with 9 not 0",
  "Word of 6: starts s with i not t",
];
const familyOf = (p: string) => parsePrompt(p)?.family.name;

test("few-shot sets are drawn from one family's prompts", () => {
  assert.deepEqual([...promptsByFamily(SEED).keys()], ["number", "word"]);
  const words = promptsByFamily(SEED).get("word")!;
  const sets = fewShotSetsOf(makeRng(1), words, 5, 2);
  assert.equal(sets.length, 5);
  assert.ok(
    sets.every((set) => set.length === 2 && new Set(set).size === 2 && set.every((p) => words.includes(p))),
  );
  assert.throws(() => promptsByFamily(["Sing: la"]), /"Sing: la" is no task family's prompt/);
  assert.throws(() => fewShotSetsOf(makeRng(1), [], 1, 2), /no seed prompts/);
});

test("prompts are taken from each family in turn, the rest from families that have more", () => {
  assert.deepEqual(takeInTurn([["a1", "a2", "a3", "a4"], ["b1"]], 4), ["a1", "b1", "a2", "a3"]);
  assert.deepEqual(takeInTurn([["a1"], []], 3), ["a1"]);
});

test("self-instruct asks a family again until it has its share of fresh prompts", async () => {
  const seen = new Set(SEED);
  let n = 0;
  const asks: string[][] = [];
  // Writes a fresh prompt of the family it is shown, except that 3 of 4 `number` answers are
  // malformed or repeat a seed prompt: the family the demo's model writes badly.
  const write = async (sets: string[][]) => {
    const inputs = sets.map(promptWritingPrompt);
    asks.push(inputs);
    return inputs.map((input) => {
      n++;
      if (input.includes("Word of"))
        return `Word of 5: starts ${"abcdefghijklmnopqrstuvwxyz"[n % 26]} with ${n % 2 ? "y" : "z"} not ${n % 3 ? "q" : "x"}`;
      if (n % 4 === 1)
        return `Number of ${3 + (n % 4)}: ends ${n % 10} with ${(n + 3) % 10} not ${(n + 6) % 10}`;
      return n % 2 ? "Number of 9:" : "Number of 4: ends 7 with 2 not 5";
    });
  };
  const written = await writePromptsInTurn({
    rng: makeRng(3),
    seedPrompts: SEED,
    wanted: 10,
    shots: 2,
    ...ofFamilies(["word", "number"]),
    seen,
    write,
  });
  assert.deepEqual(written.byFamily, { number: 5, word: 5 });
  assert.equal(written.prompts.length, 10);
  // In turn: number, word, number, word… (families sorted by name).
  assert.deepEqual(
    written.prompts.map(familyOf),
    Array.from({ length: 10 }, (_, i) => (i % 2 ? "word" : "number")),
  );
  assert.ok(written.rounds > 1, `rounds ${written.rounds}`);
  // Later rounds ask only for the family still short, and ask it more often than it is short.
  assert.ok(asks.slice(1).every((inputs) => inputs.every((x) => x.includes("Number of"))));
  for (const p of written.prompts) assert.ok(seen.has(p) && !SEED.includes(p));
  assert.equal(seen.size, SEED.length + 10, "prompts written but not taken are not marked seen");
  assert.equal(written.asked, asks.flat().length);
});

test("self-instruct with no seed prompt is an error", async () => {
  await assert.rejects(
    writePromptsInTurn({
      rng: makeRng(1),
      seedPrompts: [],
      wanted: 4,
      shots: 2,
      ...ofFamilies(["reverse"]),
      seen: new Set(),
      write: async (sets) => sets.map((set) => set[0]),
    }),
    /no seed prompts of the run's families/,
  );
});
