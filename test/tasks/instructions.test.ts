// The JSONL instruction task: file shapes, errors that name file, line and field, the default
// judge and self-instruct templates, held-out set aside, and the near-duplicate filter.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { instructionTask, rougeL } from "../../tasks/instructions.ts";
import { parseScore } from "../../tasks/judgement.ts";

const dir = mkdtempSync(join(tmpdir(), "srlm-jsonl-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, rows: unknown[] | string): string {
  const path = join(dir, name);
  writeFileSync(path, typeof rows === "string" ? rows : rows.map((r) => JSON.stringify(r)).join("\n"));
  return path;
}

const base = { format: "plain" as const, seed: 1, heldOutSize: 2, maxOverlap: 0.7, maxPromptChars: 200 };
const iftRows = Array.from({ length: 8 }, (_, i) => ({
  prompt: `Explain topic number ${i} in two short sentences`,
  response: `Topic ${i} is a thing. It matters.`,
}));

test("IFT in both shapes, EFT rendered with the judge template, held-out set aside from the seeds", () => {
  const ift = file("ift.jsonl", [
    ...iftRows,
    {
      messages: [
        { role: "user", content: "Name three primary colours please" },
        { role: "assistant", content: "Red, yellow and blue." },
      ],
    },
  ]);
  const eft = file("eft.jsonl", [
    { prompt: "What is 2+2?", response: "4", judgement: "Correct and direct. Score: 5" },
  ]);
  const task = instructionTask({ ...base, files: { ift, eft, prompts: "", heldOut: "" } });
  assert.equal(task.data.heldOut.length, 2);
  assert.equal(task.data.seedPrompts.length, 7);
  const held = new Set(task.data.heldOut.map((h) => h.prompt));
  for (const p of task.data.seedPrompts) assert.ok(!held.has(p), "a held-out prompt is no seed prompt");
  for (const x of task.data.ift) assert.ok(!held.has(x.prompt), "a held-out prompt is never trained on");
  assert.ok(task.data.ift.some((x) => x.response === "Red, yellow and blue."));
  assert.equal(task.verify, undefined);
  const [judged] = task.data.eft;
  assert.match(judged.prompt, /What is 2\+2\?/);
  assert.match(judged.prompt, /Response:\n4\n/);
  assert.match(judged.prompt, /Score: <points>/);
  assert.deepEqual(parseScore(task.scoreParser, judged.response), { ok: true, score: 5 });
  // Self-instruct shows the seed prompts and reads back the request the model wrote.
  const writing = task.selfInstructPrompt(["Say hi", "Say bye"]);
  assert.match(writing, /Request 1:\nSay hi\n/);
  assert.match(writing, /Request 2:\nSay bye\n/);
  assert.deepEqual(task.parseWrittenPrompt("Request 3: Describe a sunny day at sea"), {
    ok: true,
    prompt: "Describe a sunny day at sea",
  });
  assert.equal(task.parseWrittenPrompt("  ").ok, false);
  assert.equal(task.parseWrittenPrompt("Hi there").ok, false);
  assert.ok(
    task.nearDuplicate("Explain topic number 3 in two short sentences!", new Set([iftRows[3].prompt])),
  );
  assert.ok(!task.nearDuplicate("Write a haiku about autumn leaves", new Set([iftRows[3].prompt])));
});

test("bad lines are errors naming the file, the line and the field", () => {
  const files = (ift: string) => ({ ift, eft: "", prompts: "", heldOut: "" });
  const bad = (rows: string, pattern: RegExp) =>
    assert.throws(() => instructionTask({ ...base, files: files(file("bad.jsonl", rows)) }), pattern);
  bad(`${JSON.stringify(iftRows[0])}\n{"prompt": "x",`, /bad\.jsonl:2: bad JSON/);
  bad(`${JSON.stringify(iftRows[0])}\n{"prompt": "x"}`, /bad\.jsonl:2: field "response" must be a string/);
  bad(`{"prompt": "", "response": "y"}`, /bad\.jsonl:1: field "prompt" is empty/);
  bad(`[1, 2]`, /bad\.jsonl:1: expected a JSON object/);
  bad(
    `{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}`,
    /bad\.jsonl:1: messages must be one user turn then one assistant turn/,
  );
  bad("\n\n", /bad\.jsonl: empty file/);
  bad(
    `{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}`,
    /bad\.jsonl:1: messages hold a system turn/,
  );
  assert.throws(
    () => instructionTask({ ...base, files: files(join(dir, "missing.jsonl")) }),
    /missing\.jsonl: cannot read/,
  );
  assert.throws(() => instructionTask({ ...base, files: files("") }), /data\.jsonl\.ift/);
  assert.throws(
    () => instructionTask({ ...base, heldOutSize: 50, files: files(file("ift.jsonl", iftRows)) }),
    /data\.heldOutSize 50: only 8 distinct seed prompts/,
  );
  assert.throws(
    () => instructionTask({ ...base, judgeTemplate: "{% if %}", files: files(file("ift.jsonl", iftRows)) }),
    /judge\.promptTemplate: not a valid Jinja template/,
  );
});

test("ROUGE-L over words", () => {
  assert.equal(rougeL("the cat sat", "the cat sat"), 1);
  assert.equal(rougeL("a b c d", "x y z"), 0);
  // LCS "a c" of lengths 3 and 2: F1 = 2·2/(3+2).
  assert.ok(Math.abs(rougeL("a b c", "a c") - 0.8) < 1e-12);
  assert.equal(rougeL("", "a"), 0);
});

test("score parsers: the paper's last Score anywhere, clamped; the synthetic first line", () => {
  assert.deepEqual(parseScore("last-score", "Good. Score: 3\nOn reflection, Score: 4.5"), {
    ok: true,
    score: 4.5,
  });
  assert.deepEqual(parseScore("last-score", "score: **2**"), { ok: true, score: 2 });
  assert.deepEqual(parseScore("last-score", "Score: 9"), { ok: true, score: 5 });
  assert.deepEqual(parseScore("last-score", "Score: -1"), { ok: true, score: 0 });
  const none = parseScore("last-score", "no verdict here");
  assert.equal(none.ok, false);
  assert.match(none.ok ? "" : none.reason, /no 'Score: N'/);
  assert.deepEqual(parseScore("first-line", "+form Score: 2\nScore: 5"), { ok: true, score: 2 });
  assert.equal(parseScore("first-line", "Score: 9").ok, false);
});
