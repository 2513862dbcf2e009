// One self-rewarding iteration in a single process, to study the loop in seconds rather than
// minutes: from an M1 checkpoint, write (or draw) prompts → sample N answers → judge (self,
// verifier, or exact-match) → pair best against worst → DPO → greedy held-out accuracy.
// It answers the questions the full run hides: how right are the judge's pairs on the model's
// OWN answers (true-score gap, chosen answers that are exact), how often any sample is exact
// (the ceiling a perfect judge could reach), and what DPO does to log p(correct) on held-out.
//
//   node --import tsx bench/selfRewardProbe.ts --m1 runs/demo/checkpoints/M1 --judge self
//
// Uses the same building blocks as the actors (actors/policy.ts, actors/trainer/*), not NATS.
// Prints readable lines, then one JSON object as the last line.
import { parseArgs } from "node:util";
import { completionLogProbs, type Policy, samplePolicy } from "../actors/policy.ts";
import { directPreference } from "../actors/trainer/loops.ts";
import { type JudgedCandidate, type PreferencePair, pairFromJudged } from "../actors/trainer/pairs.ts";
import { loadConfig } from "../config/load.ts";
import { selectBackend } from "../model/backend.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import {
  buildSeedData,
  familyByName,
  judgePrompt,
  makeRng,
  parsePrompt,
  promptWritingPrompt,
  summariseJudgements,
  trueScore,
  writePromptsInTurn,
} from "../tasks/index.ts";

const { values: opt } = parseArgs({
  options: {
    m1: { type: "string" },
    // self: the policy judges itself (the paper); verifier: true rubric; exact: 1 if exact, else 0.
    judge: { type: "string", default: "self" },
    // self: the model writes prompts (self-instruct); generator: fresh prompts from the task families.
    source: { type: "string", default: "self" },
    iterations: { type: "string", default: "1" },
    prompts: { type: "string", default: "120" },
    candidates: { type: "string", default: "4" },
    judgeSamples: { type: "string", default: "3" },
    judgeTemperature: { type: "string", default: "0.7" },
    temperature: { type: "string", default: "0.7" },
    steps: { type: "string", default: "40" },
    batchSize: { type: "string", default: "8" },
    lr: { type: "string", default: "1e-4" },
    beta: { type: "string", default: "0.1" },
    nllWeight: { type: "string", default: "0" },
    minScoreGap: { type: "string", default: "0" },
    heldOut: { type: "string", default: "400" },
    // Offsets every sampling and DPO seed, to see how much of a result is luck.
    seed: { type: "string", default: "0" },
  },
});
if (!opt.m1) throw new Error("selfRewardProbe: --m1 DIR (an M1 checkpoint folder) is required");
const num = (key: keyof typeof opt): number => {
  const v = Number(opt[key]);
  if (!Number.isFinite(v)) throw new Error(`selfRewardProbe: --${key} must be a number, got ${opt[key]}`);
  return v;
};
if (!["self", "verifier", "exact"].includes(opt.judge ?? "")) {
  throw new Error(`selfRewardProbe: --judge must be self, verifier or exact, got ${opt.judge}`);
}

const seedOffset = 7919 * num("seed");
const silent = { info() {}, warn() {} };
const backend = await selectBackend("auto", silent);
const { model, tokenizer } = loadCheckpoint(opt.m1);
const policy: Policy = { version: 1, model, tokenizer };
const cfg = loadConfig({ preset: "demo", env: {} });
const data = buildSeedData({ ...cfg.data, heldOutSize: num("heldOut"), fewShot: cfg.selfReward.fewShot });
const seen = new Set([...data.seedPrompts, ...data.heldOut.map((h) => h.prompt)]);
const familyOf = (prompt: string) => parsePrompt(prompt)?.family.name ?? "?";
const sampling = (temperature: number, seed: number, maxNewTokens = cfg.selfReward.maxNewTokens) => ({
  temperature,
  topP: cfg.selfReward.topP,
  topK: 0,
  maxNewTokens,
  seed,
});
const mean = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

function evaluate(label: string) {
  const prompts = data.heldOut.map((h) => h.prompt);
  const answers = samplePolicy(policy, prompts, 1, sampling(0, 1)).map((s) => s[0].text);
  const rubrics = prompts.map((p, i) => trueScore(p, answers[i]));
  const exact = rubrics.map((r) => r.score === 5);
  const byFamily: Record<string, number[]> = {};
  // Which criteria the greedy answers miss, per family: where an iteration helped or hurt.
  const missedByFamily: Record<string, Record<string, number>> = {};
  prompts.forEach((p, i) => {
    const family = familyOf(p);
    byFamily[family] ??= [];
    byFamily[family].push(exact[i] ? 1 : 0);
    missedByFamily[family] ??= {};
    const missed = missedByFamily[family];
    rubrics[i].names.forEach((name, k) => {
      if (!rubrics[i].criteria[k]) missed[name] = (missed[name] ?? 0) + 1;
    });
  });
  const logProbCorrect = mean(
    completionLogProbs(
      policy,
      data.heldOut.map((h) => ({ prompt: h.prompt, completion: h.answer })),
    ),
  );
  const result = {
    model: label,
    heldOutAccuracy: mean(exact.map(Number)),
    logProbCorrect,
    byFamily: Object.fromEntries(Object.entries(byFamily).map(([f, xs]) => [f, mean(xs)])),
    missedByFamily,
  };
  const fam = Object.entries(result.byFamily)
    .map(([f, a]) => `${f} ${(100 * a).toFixed(0)}`)
    .join(", ");
  console.log(
    `${label}: held-out ${(100 * result.heldOutAccuracy).toFixed(1)}%, mean log p(correct) ${logProbCorrect.toFixed(2)} (${fam})`,
  );
  console.log(`  missed criteria: ${JSON.stringify(missedByFamily)}`);
  return result;
}

async function writePrompts(t: number, wanted: number): Promise<string[]> {
  const rng = makeRng(1000 + t + seedOffset);
  if (opt.source === "generator") {
    const out: string[] = [];
    while (out.length < wanted) {
      const x = familyByName(rng.pick(cfg.data.families)).makeInstance(rng);
      if (!seen.has(x.prompt)) out.push(x.prompt);
      seen.add(x.prompt);
    }
    return out;
  }
  let round = 0;
  const written = await writePromptsInTurn({
    rng,
    seedPrompts: data.seedPrompts,
    wanted,
    shots: cfg.selfReward.fewShot,
    families: cfg.data.families,
    seen,
    write: async (sets) =>
      samplePolicy(
        policy,
        sets.map(promptWritingPrompt),
        1,
        sampling(1, 100 + t + 31 * round++ + seedOffset),
      ).map((s) => s[0].text),
  });
  console.log(
    `  wrote ${JSON.stringify(written.byFamily)} in ${written.rounds} rounds of ${written.asked} asks`,
  );
  return written.prompts;
}

function judge(prompt: string, responses: string[], seed: number): (number | null)[][] {
  if (opt.judge === "verifier") return responses.map((r) => [trueScore(prompt, r).score]);
  if (opt.judge === "exact") return responses.map((r) => [trueScore(prompt, r).score === 5 ? 1 : 0]);
  const outs = samplePolicy(
    policy,
    responses.map((r) => judgePrompt(prompt, r)),
    num("judgeSamples"),
    sampling(num("judgeTemperature"), seed, cfg.selfReward.judgeMaxNewTokens),
  );
  return outs.map((samples) => {
    const s = summariseJudgements(samples.map((x) => x.text));
    return [...s.scores, ...s.failures.map(() => null)];
  });
}

const results: unknown[] = [evaluate("M1")];
for (let t = 1; t <= num("iterations"); t++) {
  const started = performance.now();
  const prompts = await writePrompts(t, num("prompts"));
  const samples = samplePolicy(
    policy,
    prompts,
    num("candidates"),
    sampling(num("temperature"), 200 + t + seedOffset),
  );
  const pairs: PreferencePair[] = [];
  let anyExact = 0;
  prompts.forEach((prompt, i) => {
    const responses = samples[i].map((s) => s.text);
    if (responses.some((r) => trueScore(prompt, r).score === 5)) anyExact++;
    const scores = judge(prompt, responses, t * 100_000 + i + seedOffset);
    const judged: JudgedCandidate[] = responses.map((response, k) => ({
      response,
      scores: scores[k],
      policyVersion: t,
    }));
    const outcome = pairFromJudged(prompt, judged, num("minScoreGap"));
    if (outcome.kind === "pair") pairs.push(outcome.pair);
  });
  const truth = (p: string, r: string) => trueScore(p, r).score;
  const gap = mean(pairs.map((p) => truth(p.prompt, p.chosen) - truth(p.prompt, p.rejected)));
  const chosenExact = pairs.filter((p) => truth(p.prompt, p.chosen) === 5).length;
  // Where the judge is right matters: a judge that only works on easy families helps only there.
  const gapByFamily: Record<string, number[]> = {};
  for (const p of pairs) {
    gapByFamily[familyOf(p.prompt)] ??= [];
    gapByFamily[familyOf(p.prompt)].push(truth(p.prompt, p.chosen) - truth(p.prompt, p.rejected));
  }
  const familyGaps = Object.fromEntries(Object.entries(gapByFamily).map(([f, xs]) => [f, mean(xs)]));
  const refChosen = completionLogProbs(
    policy,
    pairs.map((p) => ({ prompt: p.prompt, completion: p.chosen })),
  );
  const refRejected = completionLogProbs(
    policy,
    pairs.map((p) => ({ prompt: p.prompt, completion: p.rejected })),
  );
  const dpo = await directPreference(
    policy,
    pairs.map((p, i) => ({ ...p, refChosen: refChosen[i], refRejected: refRejected[i] })),
    {
      steps: num("steps"),
      batchSize: num("batchSize"),
      learningRate: num("lr"),
      warmupSteps: 5,
      weightDecay: 0,
      gradClip: 1,
    },
    num("beta"),
    t + seedOffset,
    () => {},
    num("nllWeight"),
  );
  console.log(
    `iteration ${t}: ${prompts.length} prompts, some sample exact on ${anyExact}, ${pairs.length} pairs, ` +
      `true-score gap chosen−rejected ${gap.toFixed(2)}, chosen exact ${chosenExact}, ` +
      `DPO loss ${dpo.loss.toFixed(3)} margin ${dpo.rewardMargin.toFixed(3)} ` +
      `(${((performance.now() - started) / 1000).toFixed(0)} s)\n  pair gap by family: ` +
      Object.entries(familyGaps)
        .map(([f, g]) => `${f} ${g.toFixed(2)} (${gapByFamily[f].length})`)
        .join(", "),
  );
  results.push({
    iteration: t,
    prompts: prompts.length,
    promptsWithExactSample: anyExact,
    pairs: pairs.length,
    pairsTrueScoreGap: gap,
    pairsTrueScoreGapByFamily: familyGaps,
    chosenExact,
    dpo,
    ...evaluate(`M${t + 1}`),
  });
}
console.log(JSON.stringify({ bench: "selfRewardProbe", backend: backend.name, options: opt, results }));
