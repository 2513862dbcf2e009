// The self-rewarding loop in one process (LocalWorkers), as probes run it: the same algorithm as
// over NATS. With a verifier judge a small random model's answers get different partial scores,
// so pairs form and DPO runs; the strict reference step may reuse the sampler's own log-probs of
// the same ids, and training on them matches training on the reference's. With A/B judging (the
// verifier beside an HTTP judge, its endpoint faked) the report gives the two judges' agreement.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, test } from "node:test";
import pino from "pino";
import { abPair } from "../../actors/judge/main.ts";
import { OpenAIJudge } from "../../actors/judge/openai.ts";
import type { Policy } from "../../actors/policy.ts";
import { LocalWorkers } from "../../actors/trainer/localWorkers.ts";
import { SelfRewardingLoop } from "../../actors/trainer/selfRewarding.ts";
import { RunStopped } from "../../actors/trainer/workers.ts";
import type { ScoresResultBody } from "../../bus/messages.ts";
import type { JobOf } from "../../bus/protocol.ts";
import { loadConfig } from "../../config/load.ts";
import { presetConfig } from "../../model/config.ts";
import { Llama } from "../../model/llama.ts";
import { CharTokenizer, loadTokenizer } from "../../model/tokenizer.ts";
import { taskFromConfig } from "../../tasks/fromConfig.ts";
import {
  DOMAIN_CHARSET,
  familyByName,
  judgeAgreement,
  judgeTarget,
  makeRng,
  trueScore,
} from "../../tasks/index.ts";
import { syntheticFormat } from "../../tasks/synthetic.ts";
import { tokenizerFiles } from "../helpers/checkpoints.ts";
import { quietLoopIO } from "../helpers/loopIO.ts";

const out = mkdtempSync(join(tmpdir(), "srlm-local-"));
after(() => rmSync(out, { recursive: true, force: true }));

// An HTTP judge that scores the rubric backwards: 5 minus the true score of what it was shown.
const backwards = (async (_url: string, init: RequestInit) => {
  const body = JSON.parse(String(init.body)) as { n: number; messages: { content: string }[] };
  const [, prompt, shown] = body.messages[0].content.split("|");
  const content = `Score: ${5 - trueScore(prompt, shown).score}`;
  const choices = Array.from({ length: body.n }, (_, index) => ({ index, message: { content } }));
  return new Response(JSON.stringify({ choices }), { status: 200 });
}) as typeof fetch;

// An HTTP judge that writes the exact worked check and verdict, except that greedily (T 0) it
// misquotes every answer of odd length: its first quoted character swapped for another.
const misquoting = (async (_url: string, init: RequestInit) => {
  const body = JSON.parse(String(init.body)) as {
    n: number;
    temperature: number;
    messages: { content: string }[];
  };
  const [, prompt, shown] = body.messages[0].content.split("|");
  let content = judgeTarget(trueScore(prompt, shown));
  if (body.temperature === 0 && shown.length % 2 === 1) {
    const other = shown[0] === "q" ? "z" : "q";
    content = `${content.slice(0, 1)}${other}${content.slice(2, 4)}${other}${content.slice(5)}`;
  }
  const choices = Array.from({ length: body.n }, (_, index) => ({ index, message: { content } }));
  return new Response(JSON.stringify({ choices }), { status: 200 });
}) as typeof fetch;

async function oneIteration(
  referenceFromSampler: boolean,
  ab = false,
  flags: Record<string, unknown> = {},
  judge?: typeof fetch,
) {
  const cfg = loadConfig({
    preset: "tiny",
    env: {},
    flags: {
      out,
      "data.heldOutSize": "8",
      "data.judgeEvalSize": "2",
      "selfReward.promptsPerIteration": "6",
      "selfReward.maxNewTokens": "8",
      "selfReward.iterations": "1",
      "selfReward.referenceFromSampler": String(referenceFromSampler),
      "train.dpo.steps": "3",
      ...flags,
    },
  });
  const tokenizer = new CharTokenizer(DOMAIN_CHARSET);
  const policy: Policy = {
    version: 1,
    model: Llama.init(presetConfig("tiny", tokenizer), { seed: 3 }),
    tokenizer,
  };
  const openai = new OpenAIJudge(
    { ...cfg.judge.openai, baseUrl: "http://judge.test:8000/v1", model: "backwards" },
    { fetch: backwards },
  );
  const workers = judge
    ? new LocalWorkers("openai", {
        openai: new OpenAIJudge(
          { ...cfg.judge.openai, baseUrl: "http://judge.test:8000/v1", model: "quoting" },
          { fetch: judge },
        ),
      })
    : ab
      ? new LocalWorkers("ab", { ab: abPair("verifier,openai"), openai })
      : new LocalWorkers("verifier");
  // What the judge answered, as the trainer received it, and how candidates were asked for.
  const judged: ScoresResultBody[] = [];
  const sampling: { n: number; temperature: number }[] = [];
  const judging: { candidates: number; samples: number; temperature: number }[] = [];
  // Each training judge job's candidates, with the quotes the judge was given.
  const verdicts: Pick<JobOf<"judge">, "prompt" | "candidates" | "quotes" | "quoteEnd">[] = [];
  const submitAll = workers.submitAll.bind(workers);
  workers.submitAll = (async (queue, jobs, onDone) => {
    if (queue === "samples")
      for (const j of jobs as { n: number; sampling: { temperature: number }; purpose: string }[])
        if (j.purpose === "train") sampling.push({ n: j.n, temperature: j.sampling.temperature });
    if (queue === "judge")
      for (const j of jobs as JobOf<"judge">[])
        if (j.purpose === "train")
          judging.push({
            candidates: j.candidates.length,
            samples: j.samples,
            temperature: j.sampling.temperature,
          });
    const outcomes = await submitAll(queue, jobs, onDone);
    if (queue === "judge")
      outcomes.forEach((o, i) => {
        if (!o.ok) return;
        const result = o.result as ScoresResultBody;
        judged.push(result);
        const job = jobs[i] as JobOf<"judge">;
        if (job.purpose === "train")
          verdicts.push({
            prompt: job.prompt,
            candidates: job.candidates,
            quotes: job.quotes,
            quoteEnd: job.quoteEnd,
          });
      });
    return outcomes;
  }) as typeof workers.submitAll;
  // A random model writes no parsable prompt; this task hands the loop a fresh family prompt for
  // whatever it wrote, so the rest of the iteration runs on real prompts.
  const task = taskFromConfig(cfg);
  const rng = makeRng(11);
  const fresh = () => familyByName(rng.pick(cfg.data.families)).makeInstance(rng).prompt;
  const loop = new SelfRewardingLoop(
    cfg,
    { ...task, parseWrittenPrompt: () => ({ ok: true, prompt: fresh() }) },
    quietLoopIO(workers),
  );
  await loop.start(policy);
  const iterations: Awaited<ReturnType<typeof loop.report>>["iterations"] = [];
  await loop.iterations(1, (r) => iterations.push(r));
  const report = await loop.report(iterations, 0);
  policy.model.dispose();
  return { ...report, judged, sampling, judging, verdicts };
}

test("in-process loop: pairs, DPO, and sampler log-probs as the strict reference", {
  timeout: 300_000,
}, async () => {
  const asked = await oneIteration(false, true);
  const reused = await oneIteration(true);
  assert.equal(asked.reference, "reference actor");
  assert.equal(reused.reference, "sampler log-probs (strict, M_t)");
  const [a] = asked.iterations;
  const [b] = reused.iterations;
  assert.ok(a.pairs > 0, "the verifier's partial scores formed pairs");
  assert.equal(b.pairs, a.pairs, "the same iteration up to the reference step");
  assert.ok(a.dpo && b.dpo);
  // The first DPO step's loss is log 2 from either reference; the averages differ only by rounding.
  assert.ok(Math.abs(a.dpo.loss - b.dpo.loss) < 1e-3, `${a.dpo.loss} vs ${b.dpo.loss}`);
  assert.ok(Math.abs(a.dpo.rewardMargin - b.dpo.rewardMargin) < 1e-3);
  assert.equal(a.failures.reference.failed, 0);
  assert.equal(b.failures.reference, undefined, "no reference jobs were asked for");
  assert.ok(a.heldOutAccuracy !== null && a.heldOutN === 8);

  // Who judged: the A/B judge alone, the HTTP side named, in training and in evaluation (a row
  // counts every judging job since the row before; start()'s evaluation of M1 has no row).
  assert.deepEqual(
    a.judges?.identities.map((j) => [j.impl, j.model, j.endpoint, j.byStage]),
    [["ab:verifier+openai", "backwards", "judge.test:8000", { "eval M1": 2, judge: 6, "eval M2": 2 }]],
  );
  assert.deepEqual(
    b.judges?.identities.map((j) => j.impl),
    ["verifier"],
  );
  assert.deepEqual(b.judges?.ab, []);
  // The two judges' agreement over the training candidates is that of the results themselves.
  const means = (r: ScoresResultBody) =>
    r.scores.map((s) => {
      const v = s.filter((x): x is number => x !== null);
      return v.length ? v.reduce((x, y) => x + y, 0) / v.length : null;
    });
  const train = asked.judged.filter((r) => r.purpose === "train");
  const expected = judgeAgreement(
    train.map(means),
    train.map((r) => r.secondary?.means ?? []),
  );
  const [abRow] = a.judges?.ab ?? [];
  assert.equal(abRow.primary, "verifier");
  assert.equal(abRow.secondary, "openai");
  assert.deepEqual(abRow.byStage.judge, expected);
  assert.equal(expected.prompts, 6);
  // A judge scoring backwards disagrees on every pair both ordered.
  assert.ok(expected.decided > 0);
  assert.equal(expected.agreed, 0);
  assert.ok(expected.spearman !== null && expected.spearman < 0);
  // The judge set's A/B figures are the eval stage's.
  assert.deepEqual(a.judge.ab?.agreement, abRow.byStage["eval M2"]);
});

test("a greedy candidate beside the sampled ones, and every pair of candidates as pairs", {
  timeout: 300_000,
}, async () => {
  const paper = await oneIteration(false);
  // A random model's answers rarely score above 0: sixteen prompts, so that some pair forms.
  const both = await oneIteration(false, false, {
    "selfReward.promptsPerIteration": "16",
    "selfReward.greedyCandidate": "true",
    "selfReward.pairing": "all",
  });
  const [p] = paper.iterations;
  const [b] = both.iterations;
  // Six prompts in jobs of four: two jobs of three samples at T 0.7 and two of one greedy answer.
  assert.deepEqual(
    paper.sampling.map((j) => [j.n, j.temperature]),
    [
      [4, 0.7],
      [4, 0.7],
    ],
  );
  // Sixteen prompts: four jobs of three samples at T 0.7 and four of one greedy answer.
  assert.deepEqual(both.sampling.map((j) => `${j.n}@${j.temperature}`).sort(), [
    "1@0",
    "1@0",
    "1@0",
    "1@0",
    "3@0.7",
    "3@0.7",
    "3@0.7",
    "3@0.7",
  ]);
  assert.equal(b.candidates, 16 * 4, "one greedy answer and three samples per prompt");
  assert.ok(p.pairs > 0 && p.pairs <= 6);
  // Up to six pairs per prompt instead of one: more pairs than prompts that gave any.
  const pairing = 16 - (b.droppedTies ?? 0) - (b.droppedTooFewScores ?? 0);
  assert.ok(pairing > 0 && b.pairs > pairing, `${b.pairs} pairs from ${pairing} prompts`);
  assert.ok(b.pairs <= 16 * 6);
  // The verifier as judge orders every pair as the truth does.
  assert.deepEqual(b.pairsTrueOrder, { better: 1, same: 0, worse: 0 });
  // Split by the judged scores, every bucket is truly ordered too, and the buckets hold every pair.
  const buckets = Object.entries(b.pairsTrueOrderByScores ?? {});
  assert.ok(buckets.length > 0);
  for (const [scores, o] of buckets) {
    const [chosen, rejected] = scores.split(">").map(Number);
    assert.ok(chosen > rejected, scores);
    assert.deepEqual([o.better, o.same, o.worse], [1, 0, 0], scores);
  }
  assert.equal(
    buckets.reduce((a, [, o]) => a + o.pairs, 0),
    b.pairs,
  );
  // ...so it never pushes a right greedy answer down; without a greedy candidate there is none to count.
  assert.ok(b.pairsRejectingGreedy && b.pairsRejectingGreedy.right === 0);
  assert.ok(b.pairsRejectingGreedy.wrong >= 0 && b.pairsRejectingGreedy.wrong <= 1);
  assert.equal(p.pairsRejectingGreedy, undefined);
  // The same candidates and verdicts with a gap no two scores reach for rejecting the greedy
  // answer: exactly the pairs that rejected it are dropped, and counted.
  const sure = await oneIteration(false, false, {
    "selfReward.promptsPerIteration": "16",
    "selfReward.greedyCandidate": "true",
    "selfReward.pairing": "all",
    "selfReward.greedyRejectGap": "6",
  });
  const [g] = sure.iterations;
  const rejectingGreedy = Math.round(b.pairsRejectingGreedy.wrong * b.pairs);
  assert.ok(rejectingGreedy > 0, "some pair rejects the greedy answer, so the rule has work to do");
  assert.equal(g.droppedUnsureGreedyRejections, rejectingGreedy);
  assert.equal(g.pairs, b.pairs - rejectingGreedy);
  assert.equal(b.droppedUnsureGreedyRejections, undefined);
  assert.ok(g.pairs === 0 || g.pairsRejectingGreedy?.wrong === 0);

  // Judged again: each greedy answer that some candidate beats is sent alone for two verdicts at
  // T 0.9, and the verifier, asked again, agrees with itself: every pair stays.
  const confirmed = await oneIteration(false, false, {
    "selfReward.promptsPerIteration": "16",
    "selfReward.greedyCandidate": "true",
    "selfReward.pairing": "all",
    "selfReward.greedyRejectConfirm.verdicts": "2",
    "selfReward.greedyRejectConfirm.temperature": "0.9",
  });
  const [k] = confirmed.iterations;
  const again = confirmed.judging.filter((j) => j.candidates === 1);
  assert.ok(k.confirmedPrompts !== undefined && k.confirmedPrompts > 0, "some greedy answer was beaten");
  assert.equal(again.length, k.confirmedPrompts);
  assert.ok(again.every((j) => j.samples === 2 && j.temperature === 0.9));
  const shape = (js: typeof again) => [
    ...new Set(js.filter((j) => j.candidates === 4).map((j) => `${j.samples}@${j.temperature}`)),
  ];
  assert.deepEqual(shape(confirmed.judging), shape(both.judging), "the first verdicts are asked as before");
  assert.ok(k.confirmedPrompts <= rejectingGreedy, "only prompts with a pair rejecting the greedy answer");
  assert.equal(k.droppedUnconfirmedGreedyRejections, 0);
  assert.equal(k.pairs, b.pairs);
  assert.equal(b.confirmedPrompts, undefined);
});

test("verdicts that misquote the answer are set aside and the answer judged again", {
  timeout: 300_000,
}, async () => {
  const flags = {
    "data.families": ["word", "number"],
    "selfReward.promptsPerIteration": "16",
    "selfReward.judgeSamples": "1",
    "selfReward.judgeTemperature": "0",
    "selfReward.pairing": "all",
  };
  const plain = await oneIteration(false, false, flags, misquoting);
  const checked = await oneIteration(
    false,
    false,
    { ...flags, "selfReward.quoteCheck.retries": "2", "selfReward.quoteCheck.temperature": "0.7" },
    misquoting,
  );
  const dropped = await oneIteration(
    false,
    false,
    { ...flags, "selfReward.quoteCheck.retries": "0", "selfReward.quoteCheck.temperature": "0.7" },
    misquoting,
  );
  const [p] = plain.iterations;
  const [c] = checked.iterations;
  const [d] = dropped.iterations;
  assert.equal(p.quoteCheck, undefined);
  // Every greedy verdict is read; the misquoted ones are those of the odd-length answers.
  const answers = plain.judged
    .filter((r) => r.purpose === "train")
    .flatMap((r) => r.texts?.map((t) => t[0]) ?? []);
  assert.equal(answers.length, 16 * 4);
  const q = c.quoteCheck;
  assert.ok(q !== undefined);
  assert.equal(
    q.verdicts - 2 * q.judgedAgain,
    16 * 4,
    "first verdicts, then two more per answer judged again",
  );
  assert.ok(q.judgedAgain > 0, "some answer had odd length");
  assert.equal(q.misquoted, q.judgedAgain, "judged again: exactly the answers whose verdict was set aside");
  assert.equal(q.unquoted, 0, "sampled, the judge quotes exactly");
  const again = checked.judging.filter((j) => j.samples === 2);
  assert.ok(again.every((j) => j.temperature === 0.7));
  assert.equal(
    again.reduce((n, j) => n + j.candidates, 0),
    q.judgedAgain,
  );
  // The verdicts that count are the true rubric, so the pairs are those of the plain run.
  assert.equal(c.pairs, p.pairs);
  assert.deepEqual(c.pairsTrueOrder, p.pairsTrueOrder);
  // With no retries the misquoted answers are left without a verdict, and form no pair.
  assert.deepEqual(d.quoteCheck, {
    verdicts: 16 * 4,
    misquoted: q.misquoted,
    judgedAgain: 0,
    unquoted: q.misquoted,
  });
  assert.ok(d.pairs <= p.pairs);
  assert.ok(dropped.judging.every((j) => j.samples === 1));
});

test("with forcedQuote, each judge job carries where the judge's text quotes each candidate", {
  timeout: 300_000,
}, async () => {
  const flags = { "data.families": ["word", "reverse"], "selfReward.promptsPerIteration": "6" };
  const guided = await oneIteration(false, false, { ...flags, "selfReward.forcedQuote": "true" });
  const free = await oneIteration(false, false, flags);
  assert.ok(guided.verdicts.length > 0);
  for (const v of guided.verdicts)
    assert.deepEqual(
      v.quotes,
      v.candidates.map((c) => syntheticFormat.judgeQuote(v.prompt, c)),
    );
  assert.ok(
    guided.verdicts.some((v) => v.quotes?.some((q) => q.length > 0)),
    "a word prompt's check quotes",
  );
  assert.ok(
    guided.verdicts.some((v) => v.quotes?.every((q) => q.length === 0)),
    "a reverse prompt's does not",
  );
  assert.ok(
    guided.verdicts.every((v) => v.quoteEnd === " "),
    "the check ends at the verdict's space",
  );
  assert.ok(free.verdicts.every((v) => v.quotes === undefined && v.quoteEnd === undefined));
});

test("forcedQuote is refused beside the quote check, and for a tokenizer not srlm's own", async () => {
  const both = loadConfig({
    preset: "tiny",
    env: {},
    flags: {
      "selfReward.forcedQuote": "true",
      "selfReward.quoteCheck.retries": "1",
      "selfReward.quoteCheck.temperature": "0.7",
    },
  });
  const io = quietLoopIO(new LocalWorkers("verifier"));
  assert.throws(
    () => new SelfRewardingLoop(both, taskFromConfig(both), io),
    /selfReward\.forcedQuote and selfReward\.quoteCheck: set one of them/,
  );
  const cfg = loadConfig({ preset: "tiny", env: {}, flags: { out, "selfReward.forcedQuote": "true" } });
  const chars = new CharTokenizer(DOMAIN_CHARSET);
  const model = Llama.init(presetConfig("tiny", chars), { seed: 3 });
  try {
    const llama3 = loadTokenizer(dirname(tokenizerFiles("llama3").tokenizer));
    const loop = new SelfRewardingLoop(cfg, taskFromConfig(cfg), io);
    await assert.rejects(
      loop.start({ version: 1, model, tokenizer: llama3 }),
      /selfReward\.forcedQuote needs srlm's character tokenizer/,
    );
  } finally {
    model.dispose();
  }
});

test("a task whose judge writes no quote refuses the quote check", () => {
  const cfg = loadConfig({
    preset: "tiny",
    env: {},
    flags: { "selfReward.quoteCheck.retries": "1", "selfReward.quoteCheck.temperature": "0.7" },
  });
  const task = taskFromConfig(cfg);
  const { judgementQuotes: _, ...unquoting } = task;
  const io = quietLoopIO(new LocalWorkers("verifier"));
  assert.throws(
    () => new SelfRewardingLoop(cfg, unquoting, io),
    /selfReward\.quoteCheck: task synthetic's judge writes no quote/,
  );
});

test("an operator's stop ends the run as stopped, with the report of what finished", {
  timeout: 300_000,
}, async () => {
  const cfg = loadConfig({
    preset: "tiny",
    env: {},
    flags: {
      out,
      "data.heldOutSize": "4",
      "data.judgeEvalSize": "2",
      "train.pretrain.steps": "3",
      "train.sft.steps": "3",
      "model.reuse": "false",
      "selfReward.maxNewTokens": "4",
    },
  });
  const workers = new LocalWorkers("verifier");
  let gates = 0;
  const loop = new SelfRewardingLoop(cfg, taskFromConfig(cfg), {
    workers,
    publish: async (version, p) => workers.publish(version, p),
    log: pino({ level: "silent" }),
    backend: "test",
    progress() {},
    // Pretraining and SFT pass their stage boundaries; the first iteration's does not.
    gate: async () => {
      if (++gates > 2) throw new RunStopped();
    },
    metrics() {},
    actorStats: async () => [],
  });
  const report = await loop.run();
  assert.equal(report.stopped, true);
  assert.deepEqual(
    report.iterations.map((it) => it.model),
    ["M1"],
  );
  assert.ok(report.iterations[0].sftLoss && report.iterations[0].sftLoss.steps === 3);
  const written = JSON.parse(readFileSync(join(out, "report.json"), "utf8"));
  assert.equal(written.stopped, true);
  assert.match(readFileSync(join(out, "summary.txt"), "utf8"), /stopped by the operator/);
});

// An HTTP judge that gives every answer of even length the full mark and every odd one 4: a
// prompt whose candidates all have even length ties at the top and forms no pair.
const evenIsFull = (async (_url: string, init: RequestInit) => {
  const body = JSON.parse(String(init.body)) as { n: number; messages: { content: string }[] };
  const [, , shown] = body.messages[0].content.split("|");
  const content = `Score: ${shown.length % 2 === 0 ? 5 : 4}`;
  const choices = Array.from({ length: body.n }, (_, index) => ({ index, message: { content } }));
  return new Response(JSON.stringify({ choices }), { status: 200 });
}) as typeof fetch;

test("with anchorTies, prompts tied at the full mark train their greedy answer beside the pairs", {
  timeout: 300_000,
}, async () => {
  const flags = {
    "selfReward.promptsPerIteration": "16",
    "selfReward.greedyCandidate": "true",
    "selfReward.pairing": "all",
    "selfReward.nllWeight": "1",
    "train.dpo.steps": "1000",
    "train.dpo.epochs": "1",
    "train.dpo.batchSize": "2",
  };
  const plain = await oneIteration(false, false, flags, evenIsFull);
  const anchored = await oneIteration(
    false,
    false,
    { ...flags, "selfReward.anchorTies": "true" },
    evenIsFull,
  );
  const [p] = plain.iterations;
  const [a] = anchored.iterations;
  const tiedAtFull = anchored.verdicts.filter((v) => v.candidates.every((c) => c.length % 2 === 0)).length;
  assert.ok(tiedAtFull > 0, "some prompt's candidates all have even length");
  assert.ok(p.pairs > 0, "and some prompt forms a pair");
  assert.equal(a.anchors, tiedAtFull);
  assert.equal(p.anchors, undefined);
  // The same prompts and verdicts: the pairs are the plain run's, and DPO takes a step for
  // every two of pairs and anchors together.
  assert.equal(a.pairs, p.pairs);
  assert.equal(p.dpo?.steps, Math.ceil(p.pairs / 2));
  assert.equal(a.dpo?.steps, Math.ceil((a.pairs + tiedAtFull) / 2));
});
