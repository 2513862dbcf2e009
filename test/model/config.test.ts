import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { loadCheckpoint, saveCheckpoint } from "../../model/checkpoint.ts";
import { type LlamaConfigInput, parseLlamaConfig } from "../../model/config.ts";
import { Llama, parameterShapes, ropeInverseFrequencies } from "../../model/llama.ts";
import { decodeSafetensors, encodeSafetensors } from "../../model/safetensors.ts";
import { BACKENDS, maxAbsDiff, tinyModel, tokenizer, useBackend } from "./helpers.ts";
import { referenceLogits } from "./reference.ts";

const base: LlamaConfigInput = {
  model_type: "llama",
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 1,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 32,
  max_position_embeddings: 64,
};

const llama3Scaling = {
  rope_type: "llama3",
  factor: 8,
  low_freq_factor: 1,
  high_freq_factor: 4,
  original_max_position_embeddings: 32,
};

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "srlm-config-"));
}

test("unsupported config fields are refused with the field and its value", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ rope_scaling: { type: "linear", factor: 2 } }, /rope_scaling\.type: .*"linear"/],
    [{ rope_scaling: { rope_type: "yarn", factor: 4 } }, /rope_scaling\.rope_type: .*"yarn"/],
    [{ rope_scaling: { rope_type: "llama3", factor: 8 } }, /rope_scaling\.low_freq_factor: .*needs/],
    [{ attention_bias: true }, /attention_bias: attention_bias true/],
    [{ mlp_bias: true }, /mlp_bias: mlp_bias true/],
    [{ sliding_window: 4096 }, /sliding_window: sliding_window 4096/],
    [{ hidden_act: "gelu" }, /hidden_act: hidden_act "gelu"/],
    [{ model_type: "qwen3" }, /model_type: model_type "qwen3"/],
    [{ quantization_config: { bits: 4 } }, /quantization_config/],
    [{ head_dim: 7 }, /head_dim: head dim 7 must be even/],
  ];
  for (const [patch, pattern] of cases) {
    assert.throws(
      () => parseLlamaConfig({ ...base, ...patch }, "x/config.json"),
      (err: Error) => /x\/config\.json/.test(err.message) && pattern.test(err.message),
      JSON.stringify(patch),
    );
  }
  // Values that mean the defaults are accepted.
  for (const patch of [
    { rope_scaling: null },
    { rope_scaling: { rope_type: "default" } },
    { sliding_window: 4096, use_sliding_window: false },
    { hidden_act: "swish" },
    { attention_bias: false, mlp_bias: false },
  ]) {
    assert.doesNotThrow(() => parseLlamaConfig({ ...base, ...patch }), JSON.stringify(patch));
  }
});

test("absurd sizes are refused before anything is allocated", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [
      { max_position_embeddings: 20_000_000 },
      /max_position_embeddings 20000000 is above the supported limit/,
    ],
    [{ vocab_size: 50_000_000 }, /vocab_size 50000000 is above/],
    [{ num_hidden_layers: 100_000 }, /num_hidden_layers 100000 is above/],
    [{ hidden_size: 1 << 20, num_attention_heads: 4 }, /hidden_size 1048576 is above/],
  ];
  for (const [patch, pattern] of cases) {
    assert.throws(() => parseLlamaConfig({ ...base, ...patch }), pattern, JSON.stringify(patch));
  }
});

test("a model allowing millions of positions builds rotary tables only for the positions it uses", () => {
  const config = parseLlamaConfig({ ...base, max_position_embeddings: 1 << 24 });
  const before = tf.memory().numBytes;
  const model = Llama.init(config, { seed: 1 });
  try {
    const weights = [...parameterShapes(config).values()].reduce((n, s) => n + s.reduce((a, b) => a * b), 0);
    tf.tidy(() => model.forward(tf.tensor2d([[1, 2, 3, 4, 5]], [1, 5], "int32")).logits);
    const grown = tf.memory().numBytes - before - weights * 4;
    assert.ok(grown < 64 * 1024, `tables and state use ${grown} bytes`);
  } finally {
    model.dispose();
  }
});

test("transformers 5's rope_parameters read as rope_theta and rope_scaling", () => {
  const c = parseLlamaConfig({ ...base, rope_parameters: { rope_theta: 500000, ...llama3Scaling } });
  assert.equal(c.rope_theta, 500000);
  assert.equal(c.rope_scaling?.rope_type, "llama3");
  const plain = parseLlamaConfig({ ...base, rope_parameters: { rope_type: "default", rope_theta: 123 } });
  assert.equal(plain.rope_theta, 123);
  assert.equal(plain.rope_scaling, null);
});

test("llama3 rope scaling keeps high frequencies, divides low ones by factor, blends between", () => {
  const config = parseLlamaConfig({ ...base, rope_theta: 500, rope_scaling: llama3Scaling });
  const plain = ropeInverseFrequencies(parseLlamaConfig({ ...base, rope_theta: 500 }));
  const scaled = ropeInverseFrequencies(config);
  const wavelen = plain.map((f) => (2 * Math.PI) / f);
  // original 32 / high 4 = 8 and 32 / low 1 = 32 bound the blended band.
  const kinds = wavelen.map((w) => (w < 8 ? "kept" : w > 32 ? "divided" : "blended"));
  assert.ok(kinds.includes("kept") && kinds.includes("divided") && kinds.includes("blended"), `${kinds}`);
  plain.forEach((f, i) => {
    if (kinds[i] === "kept") assert.equal(scaled[i], f);
    if (kinds[i] === "divided") assert.ok(Math.abs(scaled[i] - f / 8) < 1e-7 * f);
    if (kinds[i] === "blended") assert.ok(scaled[i] < f && scaled[i] > f / 8);
  });
});

for (const backend of BACKENDS) {
  test(`${backend}: head_dim ≠ hidden/heads and llama3 rope scaling match the float64 reference`, async () => {
    await useBackend(backend);
    const model = tinyModel(41, {
      num_hidden_layers: 1,
      head_dim: 12,
      rope_theta: 500,
      rope_scaling: llama3Scaling,
      initializer_range: 0.2,
    });
    const dir = tempDir();
    try {
      assert.deepEqual(parameterShapes(model.config).get("model.layers.0.self_attn.q_proj.weight"), [48, 32]);
      assert.deepEqual(parameterShapes(model.config).get("model.layers.0.self_attn.o_proj.weight"), [32, 48]);
      saveCheckpoint(dir, model, tokenizer);
      const { model: back } = loadCheckpoint(dir);
      assert.deepEqual(back.config, model.config);
      const ids = [1, ...tokenizer.encode("ab+cd=12 hg 7+1=8 fe")];
      const { tensors } = decodeSafetensors(readFileSync(join(dir, "model.safetensors")));
      const ref = referenceLogits(model.config, tensors, ids).flat();
      const ours = tf.tidy(() =>
        back.forward(tf.tensor2d([ids], [1, ids.length], "int32")).logits.dataSync(),
      );
      assert.ok(maxAbsDiff(ours, ref) < 1e-4, `max |tfjs − reference| = ${maxAbsDiff(ours, ref)}`);
      // Without the scaling the logits differ, so the comparison above saw it.
      const unscaled = referenceLogits({ ...model.config, rope_scaling: null }, tensors, ids).flat();
      assert.ok(maxAbsDiff(unscaled, ref) > 1e-2, `scaling changes logits by ${maxAbsDiff(unscaled, ref)}`);
      back.dispose();
    } finally {
      model.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("sharded safetensors load through model.safetensors.index.json", () => {
  const model = tinyModel(42);
  const dir = tempDir();
  try {
    saveCheckpoint(dir, model, tokenizer);
    const { tensors } = decodeSafetensors(readFileSync(join(dir, "model.safetensors")));
    rmSync(join(dir, "model.safetensors"));
    const names = [...tensors.keys()];
    const shards = [names.slice(0, 7), names.slice(7)];
    const weightMap: Record<string, string> = {};
    shards.forEach((part, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeFileSync(join(dir, file), encodeSafetensors(new Map(part.map((n) => [n, tensors.get(n)!]))));
      for (const n of part) weightMap[n] = file;
    });
    const writeIndex = (map: Record<string, string>) =>
      writeFileSync(
        join(dir, "model.safetensors.index.json"),
        JSON.stringify({ metadata: {}, weight_map: map }),
      );
    writeIndex(weightMap);
    const { model: back } = loadCheckpoint(dir);
    for (const [name, t] of model.getWeights())
      assert.deepEqual(back.getWeights().get(name)!.data, t.data, name);
    back.dispose();

    const moved = { ...weightMap, [names[0]]: "model-00002-of-00002.safetensors" };
    writeIndex(moved);
    assert.throws(() => loadCheckpoint(dir), /-of-00002\.safetensors: (holds|lacks) "/);
    writeIndex({ ...weightMap, [names[0]]: "../elsewhere.safetensors" });
    assert.throws(() => loadCheckpoint(dir), /must name a file in the folder/);
    writeIndex({ ...weightMap, "extra.weight": "model-00003-of-00002.safetensors" });
    assert.throws(() => loadCheckpoint(dir), /shard model-00003-of-00002\.safetensors is missing/);
    rmSync(join(dir, "model.safetensors.index.json"));
    assert.throws(
      () => loadCheckpoint(dir),
      /neither model\.safetensors nor model\.safetensors\.index\.json/,
    );
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("tie_word_embeddings must agree with the weights", () => {
  const tied = tinyModel(43, { tie_word_embeddings: true });
  const dir = tempDir();
  try {
    saveCheckpoint(dir, tied, tokenizer);
    const path = join(dir, "model.safetensors");
    const { tensors } = decodeSafetensors(readFileSync(path));
    const embed = tensors.get("model.embed_tokens.weight")!;
    // An lm_head equal to the embedding is the same model and loads.
    writeFileSync(path, encodeSafetensors(new Map([...tensors, ["lm_head.weight", embed]])));
    loadCheckpoint(dir).model.dispose();
    const other = { shape: embed.shape, data: embed.data.map((x) => x + 1) };
    writeFileSync(path, encodeSafetensors(new Map([...tensors, ["lm_head.weight", other]])));
    assert.throws(() => loadCheckpoint(dir), /tie_word_embeddings true, but .* lm_head\.weight that differs/);
    const cfgPath = join(dir, "config.json");
    writeFileSync(path, encodeSafetensors(tensors));
    writeFileSync(
      cfgPath,
      JSON.stringify({ ...JSON.parse(readFileSync(cfgPath, "utf8")), tie_word_embeddings: false }),
    );
    assert.throws(
      () => loadCheckpoint(dir),
      /tie_word_embeddings false, but the weights carry no lm_head\.weight/,
    );
  } finally {
    tied.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("generation_config.json's end tokens join config.json's", () => {
  const model = tinyModel(44);
  const dir = tempDir();
  try {
    saveCheckpoint(dir, model, tokenizer);
    writeFileSync(join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: [5, 2, 7] }));
    const { model: back } = loadCheckpoint(dir);
    assert.deepEqual(back.eosIds, [2, 5, 7]);
    back.dispose();
    writeFileSync(join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: 9999 }));
    assert.throws(
      () => loadCheckpoint(dir),
      /generation_config\.json[\s\S]*eos_token_id 9999 is outside the vocabulary/,
    );
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
