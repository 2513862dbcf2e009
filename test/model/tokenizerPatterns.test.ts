// A weight blob's tokenizer is untrusted: a regex with nested unbounded quantifiers can take
// exponential time on a short string, so such patterns are refused before the tokenizer is built,
// while the real tokenizers srlm is used with pass.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { HfTokenizer, MAX_TOKENIZER_PATTERN, tokenizerPatternProblem } from "../../model/tokenizer.ts";
import { tokenizerFiles } from "../helpers/checkpoints.ts";

const read = (path: string) => JSON.parse(readFileSync(path, "utf8"));

test("the patterns of real tokenizers pass", () => {
  for (const vocab of ["llama3", "qwen3"] as const) {
    const files = tokenizerFiles(vocab);
    const tokenizer = new HfTokenizer(read(files.tokenizer), read(files.tokenizerConfig));
    assert.ok(tokenizer.encode("Hello, world 123").length > 0, vocab);
  }
  for (const p of [
    "(ab)+",
    "(?:x|y){1,3}",
    "\\p{L}+|\\p{N}{1,3}",
    "[(a+)+]+",
    "\\(a+\\)+",
    "(a{2})*",
    "(?!\\S)",
  ])
    assert.equal(tokenizerPatternProblem(p), null, p);
});

test("nested unbounded quantifiers and overlong patterns are refused, naming where", () => {
  for (const p of ["(a+)+b", "(?:x*)*", "((a|b)+c)*", "(a+){2,}", "(\\s+\\S)+$", "(a{1,})+"])
    assert.match(tokenizerPatternProblem(p) ?? "", /repeated group holds an unbounded quantifier/, p);
  assert.match(tokenizerPatternProblem("a".repeat(MAX_TOKENIZER_PATTERN + 1)) ?? "", /above the limit/);

  const files = tokenizerFiles("llama3");
  const json = read(files.tokenizer);
  json.pre_tokenizer = { type: "Split", pattern: { Regex: "(a+)+$" }, behavior: "Isolated", invert: false };
  assert.throws(
    () => new HfTokenizer(json, read(files.tokenizerConfig)),
    /HfTokenizer: tokenizer\.pre_tokenizer\.pattern\.Regex is refused: a repeated group/,
  );
});
