import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Tokenizer as HfTokenizerImpl } from "@huggingface/tokenizers";
import { renderChat } from "../../model/chat.ts";
import { CharTokenizer, HfTokenizer, loadTokenizer } from "../../model/tokenizer.ts";

test("CharTokenizer: one id per character, specials first, unknowns map to <unk>", () => {
  const tok = new CharTokenizer("ab c\n");
  assert.equal(tok.vocabSize, 9);
  assert.deepEqual([tok.padId, tok.bosId, tok.eosId], [0, 1, 2]);
  assert.deepEqual(tok.encode("ab c\n"), [4, 5, 6, 7, 8]);
  assert.deepEqual(tok.encode("aZ"), [4, 3]);
  assert.equal(tok.decode([1, 4, 5, 6, 7, 2, 0]), "ab c");
  assert.throws(() => new CharTokenizer(["ab"]), /not a single character/);
});

test("CharTokenizer's tokenizer.json is loaded by Hugging Face tokenizers with the same ids", () => {
  const tok = new CharTokenizer("abc xyz\n?é");
  const hf = new HfTokenizerImpl(tok.toJSON(), tok.configJSON());
  for (const text of ["abc", "x y\nz", "é?a", "a Q b"]) {
    assert.deepEqual(hf.encode(text, { add_special_tokens: false }).ids, tok.encode(text), text);
    assert.equal(
      hf.decode(tok.encode(text), { skip_special_tokens: true }),
      tok.decode(tok.encode(text)),
      text,
    );
  }
});

test("loadTokenizer: ours comes back as CharTokenizer, any other tokenizer.json through HF", () => {
  const dir = mkdtempSync(join(tmpdir(), "srlm-tok-"));
  try {
    const tok = new CharTokenizer("abc ", "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}");
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(tok.toJSON()));
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify(tok.configJSON()));
    const back = loadTokenizer(dir);
    assert.ok(back instanceof CharTokenizer);
    assert.deepEqual(back.encode("cab"), tok.encode("cab"));
    assert.equal(
      renderChat(back, [{ role: "user", content: "hi" }], { addGenerationPrompt: false }),
      "<user>hi",
    );

    // A BPE with one merge is not a character tokenizer.
    const json = tok.toJSON() as {
      pre_tokenizer: unknown;
      model: { vocab: Record<string, number>; merges: string[][] };
    };
    json.pre_tokenizer = null;
    json.model.vocab.ab = Object.keys(json.model.vocab).length;
    json.model.merges = [["a", "b"]];
    writeFileSync(join(dir, "tokenizer.json"), JSON.stringify(json));
    const hf = loadTokenizer(dir);
    assert.ok(hf instanceof HfTokenizer);
    assert.deepEqual(hf.encode("abc"), [json.model.vocab.ab, json.model.vocab.c]);
    assert.equal(hf.decode([1, json.model.vocab.ab, 2]), "ab");
    assert.deepEqual([hf.bosId, hf.eosId, hf.padId], [1, 2, 0]);
    assert.equal(hf.vocabSize, tok.vocabSize + 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.throws(() => loadTokenizer(join(tmpdir(), "srlm-no-such-dir")), /tokenizer\.json does not exist/);
});
