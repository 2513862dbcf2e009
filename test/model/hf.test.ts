// A brought Hugging Face checkpoint end to end, around the real Llama 3 and Qwen3 vocabularies:
// chat rendering, loading (single file and shards), generation, scoring and SFT.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { Template } from "@huggingface/jinja";
import {
  type ChatMessage,
  chatCompletionIds,
  chatPromptIds,
  chatTurnEndId,
  renderChat,
  stopIds,
  textCompletionIds,
} from "../../model/chat.ts";
import { loadCheckpoint, loadConfig } from "../../model/checkpoint.ts";
import { eosIds } from "../../model/config.ts";
import { generate } from "../../model/generate.ts";
import { responseLogProbs } from "../../model/score.ts";
import { HfTokenizer } from "../../model/tokenizer.ts";
import { Trainer } from "../../model/train.ts";
import { buildCheckpoint, type RealVocab, tokenizerFiles } from "../helpers/checkpoints.ts";
import { BACKENDS, maxAbsDiff, useBackend } from "./helpers.ts";

// The 128k-151k vocabulary makes every step cost a large head matmul, so these run on one
// backend: the fastest one built.
const backend = BACKENDS.includes("blas") ? "blas" : BACKENDS[0];

const conversation: ChatMessage[] = [
  { role: "system", content: "You answer briefly." },
  { role: "user", content: "What is 2+3?" },
  { role: "assistant", content: "5" },
  { role: "user", content: "And 4+4?" },
];

const expected: Record<RealVocab, { turnEnd: string; promptEnd: string; startsWith: string }> = {
  llama3: {
    turnEnd: "<|eot_id|>",
    promptEnd: "<|start_header_id|>assistant<|end_header_id|>\n\n",
    startsWith: "<|begin_of_text|><|start_header_id|>system",
  },
  qwen3: { turnEnd: "<|im_end|>", promptEnd: "<|im_start|>assistant\n", startsWith: "<|im_start|>system\n" },
};

const built = (["llama3", "qwen3"] as const).map((vocab) => ({
  vocab,
  ckpt: buildCheckpoint({ vocab, seed: 3, shards: vocab === "qwen3" ? 2 : 1 }),
}));
after(() => {
  for (const b of built) b.ckpt.remove();
});

await useBackend(backend);
const loaded = built.map(({ vocab, ckpt }) => ({ vocab, ckpt, ...loadCheckpoint(ckpt.dir) }));
after(() => {
  for (const l of loaded) l.model.dispose();
});

for (const { vocab, ckpt, model, tokenizer } of loaded) {
  const want = expected[vocab];
  const idOf = (text: string) => {
    const ids = tokenizer.encode(text);
    assert.equal(ids.length, 1, `${text} is one token`);
    return ids[0];
  };

  test(`${vocab}: the checkpoint folder loads with its real tokenizer and generation_config end tokens`, () => {
    assert.ok(tokenizer instanceof HfTokenizer);
    assert.ok(tokenizer.vocabSize <= model.config.vocab_size);
    assert.ok(tokenizer.vocabSize > 128_000, `vocabulary of ${tokenizer.vocabSize}`);
    assert.equal(model.config.vocab_size, ckpt.config.vocab_size);
    const generation = JSON.parse(readFileSync(join(ckpt.dir, "generation_config.json"), "utf8"));
    for (const id of generation.eos_token_id) assert.ok(model.eosIds.includes(id), `eos ${id}`);
    assert.deepEqual(tokenizer.decode(tokenizer.encode("Hello, world! 42")), "Hello, world! 42");
  });

  test(`${vocab}: renderChat of a multi-turn conversation equals the template rendered by Jinja directly`, () => {
    const cfg = JSON.parse(readFileSync(tokenizerFiles(vocab).tokenizerConfig, "utf8"));
    const direct = (addGenerationPrompt: boolean) =>
      new Template(cfg.chat_template).render({
        messages: conversation,
        add_generation_prompt: addGenerationPrompt,
        ...(cfg.bos_token ? { bos_token: cfg.bos_token } : {}),
        eos_token: cfg.eos_token,
      });
    for (const addGenerationPrompt of [true, false]) {
      const ours = renderChat(tokenizer, conversation, { addGenerationPrompt });
      assert.equal(ours, direct(addGenerationPrompt), `addGenerationPrompt ${addGenerationPrompt}`);
    }
    const prompt = renderChat(tokenizer, conversation, { addGenerationPrompt: true });
    assert.ok(prompt.startsWith(want.startsWith), prompt);
    assert.ok(prompt.endsWith(want.promptEnd), prompt);
    for (const m of conversation) assert.ok(prompt.includes(m.content), m.content);
  });

  test(`${vocab}: chat rows split at the assistant turn and end with the template's turn end`, () => {
    const prompt = chatPromptIds(tokenizer, conversation);
    const answer = chatCompletionIds(tokenizer, conversation, "It is 8.");
    assert.equal(chatTurnEndId(tokenizer), idOf(want.turnEnd));
    assert.equal(answer.at(-1), idOf(want.turnEnd));
    assert.equal(answer.filter((id) => id === idOf(want.turnEnd)).length, 1);
    assert.ok(tokenizer.decode(answer).endsWith("It is 8."), tokenizer.decode(answer));
    // The row is the rendered conversation's own tokens, up to the turn end.
    const whole = tokenizer.encode(
      renderChat(tokenizer, [...conversation, { role: "assistant", content: "It is 8." }]),
    );
    assert.deepEqual([...prompt, ...answer], whole.slice(0, prompt.length + answer.length));
    if (vocab === "llama3") assert.equal(prompt.filter((id) => id === 128000).length, 1, "one BOS");
    assert.ok(stopIds(model, tokenizer).includes(idOf(want.turnEnd)));
    // Plain rows from HF tokenizers end with EOS so the model learns to stop.
    assert.equal(textCompletionIds(tokenizer, "8", "\n").at(-1), tokenizer.eosId);
  });

  test(`${backend}/${vocab}: generation returns ids, stops at any end token, and its log-probs are scoring's`, () => {
    const prompts = [
      chatPromptIds(tokenizer, conversation),
      chatPromptIds(tokenizer, [{ role: "user", content: "Hi" }]),
    ];
    const greedy = { maxNewTokens: 4, temperature: 0, eosIds: [] as number[] };
    const free = generate(model, tokenizer, prompts, greedy);
    for (const g of free) {
      assert.equal(g.ids.length, 4);
      assert.ok(g.ids.every((id) => Number.isInteger(id) && id >= 0 && id < model.config.vocab_size));
    }
    // Any id of a list ends a row: make the third greedy token of row 0 one of the end ids.
    const end = free[0].ids[2];
    const cut = free[0].ids.indexOf(end) + 1;
    const [stopped] = generate(model, tokenizer, [prompts[0]], { ...greedy, eosIds: [tokenizer.eosId, end] });
    assert.equal(stopped.finishReason, "eos");
    assert.deepEqual(stopped.ids, free[0].ids.slice(0, cut));

    const sampled = generate(model, tokenizer, prompts, {
      maxNewTokens: 5,
      temperature: 1,
      seed: 5,
      eosIds: stopIds(model, tokenizer),
    });
    const scored = responseLogProbs(
      model,
      prompts.map((p, i) => ({ prompt: p, response: sampled[i].ids })),
    );
    sampled.forEach((g, i) => {
      assert.ok(g.ids.length > 0);
      const diff = maxAbsDiff(g.logProbs, scored.perToken[i]);
      assert.ok(diff < 1e-4, `row ${i}: behaviour vs scored log-probs differ by ${diff}`);
    });
  });

  test(`${backend}/${vocab}: a few SFT steps on chat rows lower the loss`, () => {
    const rows = [
      ["What is 2+3?", "5"],
      ["Name a colour.", "Blue."],
      ["Say hi.", "Hi!"],
    ].map(([q, a]) => {
      const messages: ChatMessage[] = [{ role: "user", content: q }];
      return {
        prompt: chatPromptIds(tokenizer, messages),
        response: chatCompletionIds(tokenizer, messages, a),
      };
    });
    const before = model.getWeights();
    const trainer = new Trainer(model, { schedule: { kind: "constant", peak: 1e-2 }, seed: 1 });
    try {
      const losses = Array.from({ length: 3 }, () => trainer.sftStep(rows).loss);
      assert.ok(Number.isFinite(losses[0]) && losses[0] > 5, `starting loss ${losses[0]} is near log(vocab)`);
      assert.ok(losses[2] < losses[0] - 0.5, `loss ${losses.join(" → ")}`);
    } finally {
      trainer.dispose();
      model.setWeights(before);
    }
  });
}

test("a checkpoint folder without generation_config.json ends generation on config.json's eos only", () => {
  const ckpt = buildCheckpoint({ vocab: "llama3", generationConfig: false, layers: 1 });
  try {
    assert.deepEqual(eosIds(loadConfig(ckpt.dir)), [128001]);
    const cfgPath = join(ckpt.dir, "config.json");
    const json = JSON.parse(readFileSync(cfgPath, "utf8"));
    writeFileSync(cfgPath, JSON.stringify({ ...json, eos_token_id: [128001, 128009] }));
    assert.deepEqual(eosIds(loadConfig(ckpt.dir)), [128001, 128009]);
  } finally {
    ckpt.remove();
  }
});
