import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import {
  loadCheckpoint,
  loadTrainerState,
  modelFromBytes,
  saveCheckpoint,
  saveTrainerState,
  weightsFromBytes,
  weightsToBytes,
} from "../../model/checkpoint.ts";
import { parseLlamaConfig } from "../../model/config.ts";
import { parameterShapes } from "../../model/llama.ts";
import { decodeSafetensors, readSafetensorsFile } from "../../model/safetensors.ts";
import { Trainer } from "../../model/train.ts";
import { BACKENDS, maxAbsDiff, numTensors, tinyModel, tokenizer, useBackend } from "./helpers.ts";
import { type RefWeights, referenceLogits } from "./reference.ts";

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), "srlm-ckpt-"));
}

/** Parses a safetensors file by hand, independently of model/safetensors.ts. */
function parseByHand(bytes: Uint8Array) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString("utf8"));
  const weights: RefWeights = new Map();
  for (const [name, e] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { shape, data_offsets } = e as { shape: number[]; data_offsets: [number, number] };
    const data: number[] = [];
    for (let o = data_offsets[0]; o < data_offsets[1]; o += 4) data.push(view.getFloat32(8 + n + o, true));
    weights.set(name, { shape, data });
  }
  return { headerLength: n, header, weights };
}

test("checkpoint layout is what transformers' LlamaForCausalLM expects", () => {
  const model = tinyModel(3);
  const dir = tempDir();
  try {
    saveCheckpoint(dir, model, tokenizer);
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    assert.equal(config.model_type, "llama");
    assert.deepEqual(config.architectures, ["LlamaForCausalLM"]);
    assert.equal(config.num_key_value_heads, 2);
    assert.equal(config.torch_dtype, "float32");

    const bytes = readFileSync(join(dir, "model.safetensors"));
    const { headerLength, header } = parseByHand(bytes);
    assert.equal((8 + headerLength) % 8, 0, "data section is 8-byte aligned");
    assert.deepEqual(header.__metadata__, { format: "pt" });
    const expected = parameterShapes(model.config);
    const names = Object.keys(header).filter((k) => k !== "__metadata__");
    assert.deepEqual(names.sort(), [...expected.keys()].sort());
    assert.ok(names.includes("model.layers.1.self_attn.k_proj.weight"));
    assert.ok(names.includes("lm_head.weight"));
    let end = 0;
    const spans = names.map((k) => header[k].data_offsets as [number, number]).sort((a, b) => a[0] - b[0]);
    for (const [name, shape] of expected) {
      const e = header[name];
      assert.equal(e.dtype, "F32", name);
      assert.deepEqual(e.shape, shape, name);
      assert.equal(e.data_offsets[1] - e.data_offsets[0], shape.reduce((a, b) => a * b, 1) * 4, name);
    }
    for (const [b, e] of spans) {
      assert.equal(b, end, "tensors are contiguous, no gaps or overlaps");
      end = e;
    }
    assert.equal(8 + headerLength + end, bytes.length);
    assert.deepEqual(parameterShapes(model.config).get("model.layers.0.self_attn.k_proj.weight"), [16, 32]);

    const tokCfg = JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8"));
    assert.equal(tokCfg.bos_token, "<s>");
    assert.equal(tokCfg.eos_token, "</s>");
    assert.equal(tokCfg.pad_token, "<pad>");
  } finally {
    model.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const backend of BACKENDS) {
  test(`${backend}: save → load is bit-exact`, async () => {
    await useBackend(backend);
    const model = tinyModel(4);
    const dir = tempDir();
    try {
      saveCheckpoint(dir, model, tokenizer);
      const { model: back, tokenizer: tok } = loadCheckpoint(dir);
      assert.deepEqual(back.config, model.config);
      assert.deepEqual(tok.encode("abc 12\n"), tokenizer.encode("abc 12\n"));
      const a = model.getWeights();
      const b = back.getWeights();
      assert.deepEqual([...b.keys()], [...a.keys()]);
      for (const [name, t] of a) assert.deepEqual(b.get(name)!.data, t.data, name);

      const fromBytes = modelFromBytes(weightsToBytes(model));
      for (const [name, t] of a) assert.deepEqual(fromBytes.getWeights().get(name)!.data, t.data, name);
      assert.deepEqual(weightsFromBytes(weightsToBytes(model)).config, model.config);
      back.dispose();
      fromBytes.dispose();
    } finally {
      model.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  for (const tied of [false, true]) {
    test(`${backend}: logits match a float64 hand-written forward (1 layer, GQA, tied=${tied})`, async () => {
      await useBackend(backend);
      const model = tinyModel(5, { num_hidden_layers: 1, tie_word_embeddings: tied, rope_theta: 500 });
      // Perturb the norm gains so a layout mix-up in them would show.
      for (const [name, v] of model.params) {
        if (name.endsWith("norm.weight"))
          v.assign(tf.tidy(() => v.add(tf.randomUniform(v.shape, -0.5, 0.5, "float32", 9))));
      }
      const dir = tempDir();
      try {
        saveCheckpoint(dir, model, tokenizer);
        const { weights } = parseByHand(readFileSync(join(dir, "model.safetensors")));
        const ids = [1, ...tokenizer.encode("ab+cd=12 hg")];
        const ref = referenceLogits(model.config, weights, ids).flat();
        const ours = tf.tidy(() =>
          model.forward(tf.tensor2d([ids], [1, ids.length], "int32")).logits.dataSync(),
        );
        const diff = maxAbsDiff(ours, ref);
        assert.ok(diff < 1e-4, `max |tfjs − reference| = ${diff}`);
        const scale = Math.max(...ref.map(Math.abs));
        assert.ok(scale > 0.05, `logits are not trivially small (${scale})`);
      } finally {
        model.dispose();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  test(`${backend}: trainer state saves and resumes`, async () => {
    await useBackend(backend);
    const model = tinyModel(6);
    const trainer = new Trainer(model, { schedule: { kind: "constant", peak: 1e-2 }, seed: 7 });
    const batch = [{ prompt: [1, 4, 5], response: [6, 7, 2] }];
    trainer.sftStep(batch);
    const dir = tempDir();
    try {
      saveTrainerState(dir, trainer.state());
      saveCheckpoint(dir, model, tokenizer);
      const { model: m2 } = loadCheckpoint(dir);
      const t2 = new Trainer(m2, { schedule: { kind: "constant", peak: 1e-2 }, seed: 99 });
      t2.loadState(loadTrainerState(dir)!);
      assert.equal(t2.step, 1);
      const before = numTensors();
      const a = trainer.sftStep(batch);
      const b = t2.sftStep(batch);
      assert.equal(numTensors(), before);
      assert.ok(Math.abs(a.loss - b.loss) < 1e-6, `${a.loss} vs ${b.loss}`);
      const wa = model.getWeights();
      const wb = m2.getWeights();
      for (const [name, t] of wa) assert.ok(maxAbsDiff(t.data, wb.get(name)!.data) < 1e-6, name);
      t2.dispose();
      m2.dispose();
    } finally {
      trainer.dispose();
      model.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test("safetensors reads F16 and BF16, upcasting to float32", () => {
  const header = JSON.stringify({
    a: { dtype: "F16", shape: [3], data_offsets: [0, 6] },
    b: { dtype: "BF16", shape: [2], data_offsets: [6, 10] },
  });
  const hb = Buffer.from(header);
  const bytes = new Uint8Array(8 + hb.length + 10);
  const view = new DataView(bytes.buffer);
  view.setBigUint64(0, BigInt(hb.length), true);
  bytes.set(hb, 8);
  const at = 8 + hb.length;
  const halves = [0x3c00, 0xc000, 0x3555, 0x3f80, 0x4049]; // F16 1, -2, ~1/3; BF16 1, ~π
  halves.forEach((h, i) => {
    view.setUint16(at + i * 2, h, true);
  });
  const { tensors } = decodeSafetensors(bytes);
  assert.deepEqual(Array.from(tensors.get("a")!.data), [1, -2, Math.fround(0.333251953125)]);
  assert.deepEqual(Array.from(tensors.get("b")!.data), [1, 3.140625]);
  const bad = new Uint8Array(bytes);
  new DataView(bad.buffer).setBigUint64(0, BigInt(bytes.length), true);
  assert.throws(() => decodeSafetensors(bad, "x.safetensors"), /x\.safetensors: header length/);

  // The file reader, tensor by tensor, gives the same values and the same errors.
  const dir = tempDir();
  try {
    const path = join(dir, "x.safetensors");
    writeFileSync(path, bytes);
    const fromFile = readSafetensorsFile(path).tensors;
    for (const [name, t] of tensors) assert.deepEqual(fromFile.get(name), t, name);
    writeFileSync(path, bad);
    assert.throws(() => readSafetensorsFile(path), /x\.safetensors: header length/);
    writeFileSync(path, bytes.subarray(0, bytes.length - 2));
    assert.throws(
      () => readSafetensorsFile(path),
      /tensor "b" offsets \[6, 10\] outside the data \(8 bytes\)/,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("config validation names the bad field", () => {
  assert.throws(
    () =>
      parseLlamaConfig(
        {
          model_type: "llama",
          hidden_size: 30,
          intermediate_size: 8,
          num_hidden_layers: 1,
          num_attention_heads: 4,
          num_key_value_heads: 3,
          vocab_size: 10,
          max_position_embeddings: 8,
        },
        "x/config.json",
      ),
    (err: Error) =>
      /x\/config\.json/.test(err.message) &&
      /hidden_size/.test(err.message) &&
      /num_key_value_heads/.test(err.message),
  );
  const dir = tempDir();
  try {
    writeFileSync(join(dir, "config.json"), "{");
    assert.throws(() => loadCheckpoint(dir), /not valid JSON/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
