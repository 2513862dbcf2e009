import assert from "node:assert/strict";
import { test } from "node:test";
import { checkQuotes, families, quotedByCheck } from "../../tasks/families.ts";
import { summariseJudgements } from "../../tasks/judgement.ts";
import { makeRng } from "../../tasks/random.ts";
import { displayResponse, judgePrompt, judgeTarget, parseJudgement, trueScore } from "../../tasks/rubric.ts";
import { syntheticFormat } from "../../tasks/synthetic.ts";

test("judge prompt and target have the compact format", () => {
  assert.equal(judgePrompt("Reverse: garden", "nedrag"), "Judge|Reverse: garden|nedrag|");
  const target = judgeTarget(trueScore("Reverse: garden", "nedrga"));
  assert.equal(target, "+form +len +chars +most -exact Score: 4");
  assert.throws(() => judgePrompt("a|b", "x"), /contains '\|'/);
  assert.throws(() => judgeTarget({ score: 1, criteria: [true], names: ["form"] }), /expected 5 criteria/);
  const constraint = judgeTarget(trueScore("Word of 5: starts b with o not e", "bonke"));
  assert.equal(constraint, "ob.eb.oo*eo.on.en.ok.ek.oe.ee! +form +len +start +with -not Score: 4");
});

test("the constraint judge's worked check marks each character it sees", () => {
  // Each character gets two steps, each a restated character, the character and their mark:
  // `*` when it is the required one, `!` when it is the banned one; both may repeat.
  assert.equal(
    judgeTarget(trueScore("Number of 4: ends 7 with 2 not 5", "2257")),
    "22*52.22*52.25.55!27.57. +form +len +end +with -not Score: 4",
  );
  // An overlong response is checked as the judge sees it: cut one past the limit, odd characters as '?'.
  const long = `b${"x".repeat(30)}`;
  const evidence = trueScore("Word of 5: starts b with o not e", long).evidence ?? "";
  assert.equal(evidence, `ob.eb.${"ox.ex.".repeat(24)}`);
  assert.equal(
    trueScore("Word of 5: starts b with o not e", "b|o\nke").evidence,
    "ob.eb.o?.e?.oo*eo.o?.e?.ok.ek.oe.ee!",
  );
  // Answer families keep the plain verdict: their checks are not character lookups.
  assert.equal(trueScore("Reverse: garden", "nedrag").evidence, undefined);
});

test("a worked check's quote reads back the response it restates, or null when it cannot", () => {
  const target = judgeTarget(trueScore("Word of 5: starts b with o not e", "bonke"));
  assert.equal(quotedByCheck(target, 5), "bonke");
  // A check of the wrong number of steps, a copy slip in one step's two quotes, no check at all.
  assert.equal(quotedByCheck(target, 4), null);
  assert.equal(quotedByCheck("ob.eb.oo*ea.on.en. +form Score: 4", 3), null);
  assert.equal(quotedByCheck(" -form -len -start -with -not Score: 0", 0), "");
  assert.equal(quotedByCheck("+form +len -start +with +not Score: 4", 0), null);
  // A quoted space is read as any other character.
  assert.equal(quotedByCheck("ob.eb.o .e . -form Score: 3", 2), "b ");
  // A check quoting the wrong character consistently reads back, and differs from the response.
  assert.equal(quotedByCheck("ob.eb.oa.ea.on.en. +form Score: 3", 3), "ban");
  // The synthetic task compares the quote with the response, and lets answer families' verdicts be.
  const { judgementQuotes } = syntheticFormat;
  assert.equal(judgementQuotes("Word of 5: starts b with o not e", "bonke", target), true);
  assert.equal(judgementQuotes("Word of 5: starts b with o not e", "bonka", target), false);
  assert.equal(judgementQuotes("Reverse: garden", "nedrag", "+form +len +chars +most +exact Score: 5"), true);
});

test("a worked check's quotes sit where the check restates the response", () => {
  const prompt = "Number of 4: ends 7 with 2 not 5";
  for (const response of ["2257", "22", "", `7${"9".repeat(30)}`]) {
    const shown = displayResponse(response);
    const target = judgeTarget(trueScore(prompt, response));
    const quotes = checkQuotes(shown);
    assert.equal(quotes.length, 2 * shown.length);
    for (const q of quotes) assert.equal(target[q.at], q.text, `${response} at ${q.at}`);
    // Writing the quotes into any text of the check's shape reads back the response.
    const blank = [...target];
    for (const q of quotes) blank[q.at] = q.text;
    assert.equal(quotedByCheck(blank.join(""), shown.length), shown);
  }
  const { judgeQuote } = syntheticFormat;
  assert.deepEqual(judgeQuote(prompt, "27"), checkQuotes("27"));
  assert.deepEqual(judgeQuote("Reverse: garden", "nedrag"), [], "answer families write no check");
});

test("every judge target parses back to its score", () => {
  for (let mask = 0; mask < 32; mask++) {
    const criteria = [0, 1, 2, 3, 4].map((b) => ((mask >> b) & 1) === 1);
    const score = criteria.filter(Boolean).length;
    const j = parseJudgement(judgeTarget({ score, criteria, names: ["a", "b", "c", "d", "e"] }));
    assert.deepEqual(j, { ok: true, score });
  }
  assert.deepEqual(parseJudgement("Score: 3\nmore text"), { ok: true, score: 3 });
  assert.deepEqual(parseJudgement("+form Score:2  "), { ok: true, score: 2 });
});

test("parse failures are reported with a reason, never scored", () => {
  for (const text of [
    "",
    "+form +len",
    "Score: ",
    "Score: 7",
    "Score: 45",
    "Score: 3 +form",
    "score: 3",
    "\nScore: 3",
  ]) {
    const j = parseJudgement(text);
    assert.equal(j.ok, false, `should fail: ${JSON.stringify(text)}`);
    if (!j.ok) assert.ok(j.reason.length > 0);
  }
  const s = summariseJudgements(["-form Score: 0", "junk", "+form +len Score: 2", "Score: 9"]);
  assert.deepEqual(s.scores, [0, 2]);
  assert.equal(s.mean, 1);
  assert.equal(s.failures.length, 2);
  assert.match(s.failures[1], /outside 0\.\.5/);
  assert.equal(summariseJudgements(["nope"]).mean, null);
});

test("what the judge sees scores the same as the raw response, and keeps samples short", () => {
  const rng = makeRng(3);
  const chars = "ab|\n\t?XZ09 é~abcdefghijklmnopqrstuvwxyz";
  let longest = 0;
  for (const family of families) {
    for (let i = 0; i < 200; i++) {
      const x = family.makeInstance(rng);
      let response = "";
      const n = rng.int(0, 40);
      for (let k = 0; k < n; k++)
        response += rng.chance(0.5) ? rng.pick([...x.answer]) : rng.pick([...chars]);
      const shown = displayResponse(response);
      assert.ok(!/[|\n]/.test(shown));
      assert.deepEqual(trueScore(x.prompt, shown), trueScore(x.prompt, response), JSON.stringify(response));
      const good = judgePrompt(x.prompt, x.answer) + "\n" + judgeTarget(trueScore(x.prompt, x.answer));
      longest = Math.max(longest, good.length);
    }
  }
  // Training rows are padded to the longest in the batch: a long judge sample makes every step dearer.
  assert.ok(longest <= 128, `longest judge sample on a correct answer: ${longest}`);
});
