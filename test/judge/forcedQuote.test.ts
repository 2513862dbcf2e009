// A self-judge given where its text quotes the answer (selfReward.forcedQuote) writes those
// characters as given and everything else itself: a random model, which copies nothing, then
// holds the answer at every quoted place its text reaches, and still writes its own marks.
import assert from "node:assert/strict";
import { test } from "node:test";
import { answerJudge, quotedIds, quoteEndId } from "../../actors/judge/main.ts";
import { type Policy, samplePolicy } from "../../actors/policy.ts";
import type { JobOf } from "../../bus/protocol.ts";
import { presetConfig } from "../../model/config.ts";
import { Llama } from "../../model/llama.ts";
import { CharTokenizer } from "../../model/tokenizer.ts";
import { checkQuotes, DOMAIN_CHARSET, displayResponse } from "../../tasks/index.ts";
import { syntheticFormat } from "../../tasks/synthetic.ts";

const prompt = "Word of 5: starts b with o not e";
const candidates = ["bonke", "bakut", "bo", "bonkeee"];

const job = (quoted: boolean): JobOf<"judge"> => ({
  iteration: 1,
  purpose: "train",
  task: syntheticFormat.name,
  prompt,
  candidates,
  judgePrompts: candidates.map((c) => syntheticFormat.judgePrompt(prompt, c)),
  ...(quoted ? { quotes: candidates.map((c) => syntheticFormat.judgeQuote(prompt, c)) } : {}),
  format: "plain",
  parser: "first-line",
  samples: 3,
  weights: { version: 1, bucket: "b", name: "v1", digest: "d" },
  // Long enough for the check of the longest answer, sampled so the texts differ.
  sampling: { temperature: 1, topP: 1, topK: 0, maxNewTokens: 60, seed: 4 },
});

// Whether sampled ids hold the answer's characters at every quoted place they reach. Ids, not
// text: a random model writes special tokens, which decode to nothing and shift the text.
const holdsQuotes = (tokenizer: CharTokenizer, answer: string, ids: ArrayLike<number>) =>
  checkQuotes(displayResponse(answer)).every(
    (q) => q.at >= ids.length || ids[q.at] === tokenizer.encode(q.text)[0],
  );

test("a self-judge writes the job's quotes of each answer as given, and the rest itself", async () => {
  const tokenizer = new CharTokenizer(DOMAIN_CHARSET);
  const model = Llama.init(presetConfig("tiny", tokenizer), { seed: 5 });
  const policy: Policy = { version: 1, model, tokenizer };
  try {
    const sample = (j: JobOf<"judge">) =>
      samplePolicy(
        policy,
        j.judgePrompts,
        j.samples,
        j.sampling,
        j.format,
        j.quotes && quotedIds(tokenizer, j.quotes),
      );
    const guided = sample(job(true));
    const free = sample(job(false));
    candidates.forEach((answer, c) => {
      for (const s of guided[c].samples)
        assert.ok(holdsQuotes(tokenizer, answer, s.tokens), `${JSON.stringify(s.text)} quotes ${answer}`);
    });
    assert.ok(
      guided.some((p) => p.samples.some((s) => s.tokens.length > 6)),
      "some verdict ran past its first step, so quotes were written",
    );
    assert.ok(
      candidates.some((answer, c) => free[c].samples.some((s) => !holdsQuotes(tokenizer, answer, s.tokens))),
      "unguided, the random model misquotes",
    );
    // The judge actor's answer is that guided sampling.
    const { body } = await answerJudge("self", job(true), "j0", async () => policy);
    assert.deepEqual(
      body.texts,
      guided.map((p) => p.samples.map((s) => s.text)),
    );
  } finally {
    model.dispose();
  }
});

test("a quoted piece the judge's tokenizer writes as more than one token is refused, naming it", () => {
  const tokenizer = new CharTokenizer(DOMAIN_CHARSET);
  assert.throws(
    () => quotedIds(tokenizer, [[{ at: 4, text: "b" }], [{ at: 1, text: "bo" }]]),
    /quotes\[1\]: "bo" at 1 is 2 tokens for this judge's tokenizer/,
  );
  assert.deepEqual(quotedIds(tokenizer, [[{ at: 4, text: "b" }], []]), [
    new Map([[4, tokenizer.encode("b")[0]]]),
    new Map(),
  ]);
});

test("a judge that writes the quote's end itself writes no quoted piece after it", async () => {
  const tokenizer = new CharTokenizer(DOMAIN_CHARSET);
  const model = Llama.init(presetConfig("tiny", tokenizer), { seed: 5 });
  const policy: Policy = { version: 1, model, tokenizer };
  try {
    const space = tokenizer.encode(" ")[0];
    const j = { ...job(true), samples: 4, quoteEnd: " " };
    const quotes = j.quotes && quotedIds(tokenizer, j.quotes);
    const until = quoteEndId(tokenizer, j.quoteEnd);
    const guided = samplePolicy(policy, j.judgePrompts, j.samples, j.sampling, j.format, quotes, until);
    let endedEarly = 0;
    candidates.forEach((answer, c) => {
      for (const s of guided[c].samples) {
        // No candidate holds a space, so each space in a verdict is the judge's own.
        const end = s.tokens.indexOf(space);
        const before = end < 0 ? s.tokens : s.tokens.slice(0, end);
        assert.ok(holdsQuotes(tokenizer, answer, before), `${JSON.stringify(s.text)} quotes ${answer}`);
        if (end >= 0 && !holdsQuotes(tokenizer, answer, s.tokens)) endedEarly++;
      }
    });
    assert.ok(endedEarly > 0, "some verdict wrote a space early and then sampled at a quoted place");
    // The judge actor passes the job's end on.
    const { body } = await answerJudge("self", j, "j0", async () => policy);
    assert.deepEqual(
      body.texts,
      guided.map((p) => p.samples.map((s) => s.text)),
    );
    assert.throws(() => quoteEndId(tokenizer, "ab"), /quoteEnd "ab" is 2 tokens for this judge's tokenizer/);
  } finally {
    model.dispose();
  }
});
