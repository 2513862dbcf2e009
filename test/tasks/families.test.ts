import assert from "node:assert/strict";
import { test } from "node:test";
import { CORRUPTION_KINDS, corruptWith } from "../../tasks/data.ts";
import { FAMILY_NAMES, families, familyByName, parsePrompt, promptMaterial } from "../../tasks/families.ts";
import { makeRng } from "../../tasks/random.ts";
import { MAX_RESPONSE_CHARS, trueScore } from "../../tasks/rubric.ts";

test("every family's correct answers score 5 and prompts parse back to the same family and answer", () => {
  const rng = makeRng(1);
  for (const family of families) {
    for (let i = 0; i < 200; i++) {
      const x = family.makeInstance(rng);
      assert.ok(x.prompt.length <= 40, `prompt too long: ${x.prompt}`);
      assert.ok(x.answer.length > 0 && x.answer.length <= MAX_RESPONSE_CHARS, `answer: ${x.answer}`);
      const parsed = parsePrompt(x.prompt);
      assert.ok(parsed, `does not parse: ${x.prompt}`);
      assert.equal(parsed.family.name, family.name);
      assert.equal(parsed.answer, x.answer);
      const rubric = family.verify(x.prompt, x.answer);
      assert.equal(rubric.score, 5, `${x.prompt} → ${x.answer}`);
      assert.deepEqual(rubric.criteria, [true, true, true, true, true]);
    }
  }
});

test("hand-checked answers", () => {
  assert.equal(familyByName("reverse").solve("Reverse: garden"), "nedrag");
  assert.equal(familyByName("sort").solve("Sort the letters: dcab"), "abcd");
  assert.equal(familyByName("upper").solve("Uppercase: hello"), "HELLO");
  assert.equal(familyByName("add").solve("Add 17 and 25"), "42");
  assert.equal(familyByName("repeat").solve("Repeat ka 3 times"), "ka ka ka");
  assert.equal(familyByName("vowels").solve("Copy the vowels: banana"), "aaa");
  assert.equal(parsePrompt("Add 17 and 25")?.family.name, "add");
  assert.deepEqual(parsePrompt("Add 17 and 25")?.args, { a: 17, b: 25 });
  assert.equal(promptMaterial({ word: "abc" }), "abc");
  assert.throws(() => familyByName("nope"), /unknown task family "nope"/);
});

test("constraint reference answers put the required character beside the anchor; other correct answers still score 5", () => {
  const rng = makeRng(2);
  for (let i = 0; i < 200; i++) {
    const w = familyByName("word").makeInstance(rng);
    const { anchor, with: withChar, not } = w.meta as { anchor: string; with: string; not: string };
    assert.equal(w.answer.slice(0, 2), `${anchor}${withChar}`, `${w.prompt} → ${w.answer}`);
    assert.ok(!w.answer.includes(not), `${w.prompt} → ${w.answer}`);
    const d = familyByName("number").makeInstance(rng);
    const m = d.meta as { anchor: string; with: string; not: string };
    assert.equal(d.answer.slice(-2), `${m.with}${m.anchor}`, `${d.prompt} → ${d.answer}`);
    assert.ok(!d.answer.includes(m.not), `${d.prompt} → ${d.answer}`);
  }
  // The place is the reference's, not the task's: the verifier takes the character anywhere.
  assert.equal(familyByName("word").verify("Word of 5: starts b with o not e", "bakro").score, 5);
  assert.equal(familyByName("number").verify("Number of 4: ends 7 with 2 not 5", "2907").score, 5);
  assert.equal(familyByName("number").verify("Number of 4: ends 7 with 2 not 5", "9957").score, 3);
});

test("prompts that are not canonical instances do not parse", () => {
  for (const bad of [
    "",
    "Reverse: Garden",
    "Reverse:  garden",
    "Reverse: ab",
    "Reverse: abcdefgh",
    "reverse: garden",
    "Sort the letters: abcdefg",
    "Add 07 and 1",
    "Add 50 and 1",
    "Add 1 and 2 ",
    "Repeat ka 5 times",
    "Repeat k 2 times",
    "Copy the vowels: bcd",
    "Uppercase: hi",
  ]) {
    assert.equal(parsePrompt(bad), null, `should not parse: ${JSON.stringify(bad)}`);
  }
  assert.throws(() => familyByName("add").verify("Reverse: garden", "x"), /not a add prompt/);
  assert.throws(() => trueScore("Tell me a joke", "x"), /not a prompt of any task family/);
});

test("partial answers get intermediate scores, ordered by how close they are", () => {
  const p = "Reverse: garden"; // nedrag
  const ladder: [string, number][] = [
    ["", 0],
    ["??", 0],
    ["xyz", 1], // well-formed only
    ["xyzxyz", 2], // + right length
    ["nedr", 3], // form, chars, most (a prefix); wrong length
    ["nedrga", 4], // swap at the end: all but exact
    ["nedrag", 5],
  ];
  for (const [response, score] of ladder) assert.equal(trueScore(p, response).score, score, response);
  assert.deepEqual(trueScore("Add 17 and 25", "24").criteria, [true, true, true, false, false]);
  assert.deepEqual(trueScore("Add 17 and 25", "41").criteria, [true, true, false, true, false]);
  assert.deepEqual(trueScore("Uppercase: hello", "hello").criteria, [false, true, false, false, false]);
  assert.deepEqual(trueScore("Repeat ka 2 times", "ka ka").criteria, [true, true, true, true, true]);
});

test("answer families: the rubric is additive, and every corruption of the answer scores less than 5", () => {
  const rng = makeRng(2);
  for (const name of FAMILY_NAMES) {
    const family = familyByName(name);
    if (family.flaw !== undefined) continue;
    for (let i = 0; i < 60; i++) {
      const x = family.makeInstance(rng);
      for (const kind of CORRUPTION_KINDS) {
        const response = corruptWith(kind, rng, x.answer, family, promptMaterial(x.meta));
        const r = family.verify(x.prompt, response);
        assert.equal(r.criteria.length, 5);
        assert.equal(r.score, r.criteria.filter(Boolean).length);
        assert.equal(r.criteria[4], response === x.answer);
        if (response !== x.answer) assert.ok(r.score < 5, `${kind}: ${x.prompt} -> ${response}`);
        if (kind === "empty") assert.equal(r.score, 0);
        if (kind === "junk") assert.equal(r.criteria[0], false, `junk is malformed: ${response}`);
      }
    }
  }
});

test("constraint families: each criterion checks one constraint, and flaws always cost a point", () => {
  const p = "Word of 5: starts b with o not e";
  const cases: [string, boolean[]][] = [
    ["bonka", [true, true, true, true, true]],
    ["bonk", [true, false, true, true, true]],
    ["zonka", [true, true, false, true, true]],
    ["banka", [true, true, true, false, true]],
    ["boneka", [true, false, true, true, false]],
    ["Bonka", [false, true, false, true, true]],
    ["", [false, false, false, false, false]],
  ];
  for (const [response, criteria] of cases)
    assert.deepEqual(trueScore(p, response).criteria, criteria, response);
  assert.deepEqual(trueScore(p, "bonka").names, ["form", "len", "start", "with", "not"]);
  assert.deepEqual(trueScore("Number of 4: ends 7 with 2 not 5", "1327").criteria, [
    true,
    true,
    true,
    true,
    true,
  ]);
  assert.deepEqual(trueScore("Number of 4: ends 7 with 2 not 5", "7325").names, [
    "form",
    "len",
    "end",
    "with",
    "not",
  ]);
  assert.equal(trueScore("Number of 4: ends 7 with 2 not 5", "7325").score, 3);
  for (const bad of [
    "Word of 5: starts b with b not e",
    "Word of 5: starts b with o not o",
    "Word of 9: starts b with o not e",
    "Word of 5: starts B with o not e",
    "Number of 2: ends 7 with 2 not 5",
    "Number of 4: ends 7 with 2 not 7",
  ]) {
    assert.equal(parsePrompt(bad), null, `should not parse: ${bad}`);
  }
  const rng = makeRng(4);
  for (const name of ["word", "number"]) {
    const family = familyByName(name);
    for (let i = 0; i < 300; i++) {
      const x = family.makeInstance(rng);
      const flawed = family.flaw!(rng, x);
      assert.ok(family.verify(x.prompt, flawed).score < 5, `${x.prompt} -> ${flawed}`);
    }
  }
});
