import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { JsonlError, parseJsonl, readJsonl, writeJsonl } from "../../tasks/jsonl.ts";

test("write then read each shape", async () => {
  const dir = await mkdtemp(join(tmpdir(), "srlm-jsonl-"));
  try {
    const sft = [
      { prompt: "Reverse: abc", response: "cba" },
      { prompt: 'quote " and \n newline', response: "ok" },
    ];
    await writeJsonl(join(dir, "sub", "sft.jsonl"), sft);
    assert.deepEqual(await readJsonl(join(dir, "sub", "sft.jsonl"), "prompt-response"), sft);
    const pref = [{ prompt: "p", chosen: "a", rejected: "b" }];
    await writeJsonl(join(dir, "pref.jsonl"), pref);
    assert.deepEqual(await readJsonl(join(dir, "pref.jsonl"), "preference"), pref);
    await writeFile(join(dir, "qa.jsonl"), '\n{"question":"1+1?","answer":"2","extra":3}\n\n');
    assert.deepEqual(await readJsonl(join(dir, "qa.jsonl"), "qa"), [{ question: "1+1?", answer: "2" }]);
    await assert.rejects(readJsonl(join(dir, "missing.jsonl"), "qa"), /missing\.jsonl: cannot read/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("errors name the file and the line", () => {
  const cases: [string, RegExp, number | null][] = [
    ['{"prompt":"a","response":"b"}\n{"prompt": oops}', /^data\.jsonl:2: bad JSON/, 2],
    ['{"prompt":"a","response":"b"}\n\n{"prompt":"a"}', /^data\.jsonl:3: missing field "response"/, 3],
    ['{"prompt":1,"response":"b"}', /^data\.jsonl:1: field "prompt" must be a string, got a number/, 1],
    ['{"prompt":"a","response":null}', /^data\.jsonl:1: field "response" must be a string, got null/, 1],
    ['["a","b"]', /^data\.jsonl:1: expected a JSON object.*got an array/, 1],
    ["\n  \n", /^data\.jsonl: empty file/, null],
  ];
  for (const [text, message, line] of cases) {
    try {
      parseJsonl(text, "prompt-response", "data.jsonl");
      assert.fail(`accepted ${JSON.stringify(text)}`);
    } catch (err) {
      assert.ok(err instanceof JsonlError, String(err));
      assert.match(err.message, message);
      assert.equal(err.file, "data.jsonl");
      assert.equal(err.line, line);
    }
  }
});
