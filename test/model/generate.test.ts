import assert from "node:assert/strict";
import { test } from "node:test";
import { byLogitDescending, generate, sampleToken } from "../../model/generate.ts";
import { Rng } from "../../model/random.ts";
import { responseLogProbs } from "../../model/score.ts";
import { BACKENDS, maxAbsDiff, numTensors, tinyModel, tokenizer, useBackend } from "./helpers.ts";

const prompts = ["ab", "h=12+3", "c"].map((t) => [tokenizer.bosId, ...tokenizer.encode(t)]);

test("sampleToken: greedy, top-k 1 and tiny top-p all pick the argmax; log-prob is at temperature 1", () => {
  const logits = [0.1, 2.5, -1, 2.4];
  const rng = new Rng(1);
  const z = Math.log(logits.reduce((a, l) => a + Math.exp(l), 0));
  for (const opts of [{ temperature: 0 }, { topK: 1 }, { topP: 1e-6 }, { temperature: 0.5, topK: 1 }]) {
    const s = sampleToken(logits, opts, rng);
    assert.equal(s.id, 1);
    assert.ok(Math.abs(s.logProb - (2.5 - z)) < 1e-12);
  }
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 2000; i++) counts[sampleToken(logits, { temperature: 1 }, rng).id]++;
  const p3 = Math.exp(2.4 - z);
  assert.ok(Math.abs(counts[3] / 2000 - p3) < 0.05, `frequency ${counts[3] / 2000} vs ${p3}`);
});

test("byLogitDescending orders float32 rows exactly as the comparator sort does", () => {
  const rng = new Rng(3);
  const V = 151_936;
  const logits = new Float32Array(V);
  // Coarse values make many ties; signed zeros and infinities sit among them.
  for (let i = 0; i < V; i++) logits[i] = Math.round(rng.normal() * 20) / 4;
  logits.set([-0, 0, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 3.4e38, -3.4e38], 1000);
  const expected = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  assert.deepEqual(Array.from(byLogitDescending(logits)), expected);
  const small = [0.1, 2.5, -1, 2.5, -0, 0];
  assert.deepEqual(Array.from(byLogitDescending(small)), [1, 3, 0, 4, 5, 2]);
});

for (const backend of BACKENDS) {
  test(`${backend}: greedy with the KV cache equals greedy without, token for token`, async () => {
    await useBackend(backend);
    const model = tinyModel(11);
    try {
      const before = numTensors();
      const opts = { maxNewTokens: 12, temperature: 0, eosIds: [] as number[] };
      const cached = generate(model, tokenizer, prompts, opts);
      assert.equal(numTensors(), before, "generation leaks no tensors");
      const uncached = generate(model, tokenizer, prompts, { ...opts, useCache: false });
      assert.deepEqual(
        cached.map((g) => g.ids),
        uncached.map((g) => g.ids),
      );
      for (const g of cached) assert.equal(g.ids.length, 12);
      assert.ok(cached.every((g) => g.finishReason === "length"));
      // Batched rows (left-padded) generate what each prompt generates alone.
      prompts.forEach((p, i) => {
        const [alone] = generate(model, tokenizer, [p], opts);
        assert.deepEqual(alone.ids, cached[i].ids);
        assert.ok(maxAbsDiff(alone.logProbs, cached[i].logProbs) < 1e-4);
      });
    } finally {
      model.dispose();
    }
  });

  test(`${backend}: seeded sampling is reproducible and its log-probs match scoring`, async () => {
    await useBackend(backend);
    const model = tinyModel(12);
    try {
      const opts = { maxNewTokens: 10, temperature: 1.3, topP: 0.95, seed: 42, eosIds: [] as number[] };
      const a = generate(model, tokenizer, prompts, opts);
      const b = generate(model, tokenizer, prompts, opts);
      assert.deepEqual(a, b);
      const c = generate(model, tokenizer, prompts, { ...opts, seed: 43 });
      assert.notDeepEqual(
        c.map((g) => g.ids),
        a.map((g) => g.ids),
      );
      const scored = responseLogProbs(
        model,
        prompts.map((p, i) => ({ prompt: p, response: a[i].ids })),
      );
      a.forEach((g, i) => {
        assert.ok(maxAbsDiff(g.logProbs, scored.perToken[i]) < 1e-4, `row ${i}`);
      });
    } finally {
      model.dispose();
    }
  });

  test(`${backend}: EOS and stop strings end a row`, async () => {
    await useBackend(backend);
    const model = tinyModel(13);
    try {
      const greedy = { maxNewTokens: 8, temperature: 0, eosIds: [] as number[] };
      const [free] = generate(model, tokenizer, [prompts[1]], greedy);
      const [eos] = generate(model, tokenizer, [prompts[1]], { ...greedy, eosIds: [free.ids[2]] });
      const firstEos = free.ids.indexOf(free.ids[2]);
      assert.equal(eos.finishReason, "eos");
      assert.deepEqual(eos.ids, free.ids.slice(0, firstEos + 1));
      assert.equal(eos.text, tokenizer.decode(free.ids.slice(0, firstEos)));

      const stop = free.text.slice(3, 5);
      const [stopped] = generate(model, tokenizer, [prompts[1]], { ...greedy, stop: [stop, "never"] });
      assert.equal(stopped.finishReason, "stop");
      assert.equal(stopped.text, free.text.slice(0, free.text.indexOf(stop)));
    } finally {
      model.dispose();
    }
  });
}

test("forced tokens: a row writes them where told, the others sample as they would without", async () => {
  await useBackend("cpu");
  const model = tinyModel(14);
  try {
    const opts = { maxNewTokens: 9, temperature: 1.1, seed: 5, eosIds: [] as number[] };
    const free = generate(model, tokenizer, prompts, opts);
    const [a, b] = tokenizer.encode("ab");
    const forced = [
      new Map([
        [1, a],
        [4, b],
        [8, a],
      ]),
      undefined,
      new Map<number, number>(),
    ];
    const guided = generate(model, tokenizer, prompts, { ...opts, forced });
    assert.equal(guided[0].ids[1], a);
    assert.equal(guided[0].ids[4], b);
    assert.equal(guided[0].ids[8], a);
    // The draws at forced steps still happen, so rows without forced tokens keep their samples.
    assert.deepEqual(guided[1].ids, free[1].ids);
    assert.deepEqual(guided[2].ids, free[2].ids);
    assert.deepEqual(guided[0].ids[0], free[0].ids[0], "the steps before the first forced token");
    // A forced token's log-prob is the model's, as for any written token.
    const scored = responseLogProbs(model, [{ prompt: prompts[0], response: guided[0].ids }]);
    assert.ok(maxAbsDiff(guided[0].logProbs, scored.perToken[0]) < 1e-4);
    assert.throws(
      () => generate(model, tokenizer, prompts, { ...opts, forced: [undefined] }),
      /forced tokens for 1 rows, but 3 prompts/,
    );
    assert.throws(
      () =>
        generate(model, tokenizer, prompts, { ...opts, forced: [new Map([[0, 999]]), undefined, undefined] }),
      /row 0 forces token 999, outside the vocabulary/,
    );
  } finally {
    model.dispose();
  }
});

test("forcedUntil: a row that samples the end token itself writes no more forced tokens", async () => {
  await useBackend("cpu");
  const model = tinyModel(14);
  try {
    const opts = { maxNewTokens: 8, temperature: 1.1, seed: 5, eosIds: [] as number[] };
    const [free] = generate(model, tokenizer, [prompts[0]], opts);
    const end = free.ids[2];
    const other =
      free.ids[5] === tokenizer.encode("a")[0] ? tokenizer.encode("b")[0] : tokenizer.encode("a")[0];
    const forced = [new Map([[5, other]])];
    const [kept] = generate(model, tokenizer, [prompts[0]], { ...opts, forced });
    assert.equal(kept.ids[5], other, "without an end token the forced token is written");
    // The row samples `end` by step 2, so the token forced at step 5 is sampled as without forcing.
    const [ended] = generate(model, tokenizer, [prompts[0]], { ...opts, forced, forcedUntil: end });
    assert.deepEqual(ended.ids, free.ids);
  } finally {
    model.dispose();
  }
});

test("top-p at a large vocabulary samples exactly as a full sort does", () => {
  const V = 50_000;
  const rng = new Rng(5);
  for (let row = 0; row < 20; row++) {
    const logits = Float32Array.from({ length: V }, () => 4 * (rng.next() - 0.5) ** 3 * (row + 1));
    for (const topP of [0.5, 0.9, 0.99]) {
      // topK = V keeps every id, as top-k off does, but takes the full-sort path.
      const fast = sampleToken(logits, { temperature: 0.7, topP }, new Rng(row));
      const full = sampleToken(logits, { temperature: 0.7, topP, topK: V }, new Rng(row));
      assert.equal(fast.id, full.id, `row ${row} topP ${topP}`);
      assert.ok(Math.abs(fast.logProb - full.logProb) < 1e-9);
    }
  }
});
