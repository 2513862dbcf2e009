// Per-criterion accuracy of a self-judge: for each rubric criterion, how often the judge's +/- mark
// agrees with the verifier, on the model's own samples and on the synthetic judge-evaluation set,
// and (constraint families) how often its worked check copies the answer exactly (`checkExact`).
// Shows which checks a model has learned, which is what decides whether its pairs carry signal.
//
//   node --import tsx bench/judgeCriteria.ts --m1 runs/demo/checkpoints/M1 [--prompts 200]
//
// --judge DIR judges with another checkpoint (default: the --m1 model judges its own samples);
// --families word,number picks the task families (default: the preset's).
import { parseArgs } from "node:util";
import { quoteGuide } from "../actors/judge/main.ts";
import { type Policy, samplePolicy } from "../actors/policy.ts";
import { loadConfig } from "../config/load.ts";
import { selectBackend } from "../model/backend.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import { buildSeedData, familyByName, judgePrompt, makeRng, parsePrompt, trueScore } from "../tasks/index.ts";
import { syntheticFormat } from "../tasks/synthetic.ts";

const { values: opt } = parseArgs({
  options: {
    m1: { type: "string" },
    judge: { type: "string" },
    prompts: { type: "string", default: "200" },
    candidates: { type: "string", default: "4" },
    preset: { type: "string", default: "demo" },
    // Comma-separated task families, as the run's data.families (default: the preset's).
    families: { type: "string" },
  },
});
if (!opt.m1) throw new Error("judgeCriteria: --m1 DIR (a checkpoint folder) is required");
await selectBackend("auto", { info() {} });
const { model, tokenizer } = loadCheckpoint(opt.m1);
const policy: Policy = { version: 1, model, tokenizer };
const judgeCheckpoint = opt.judge ? loadCheckpoint(opt.judge) : { model, tokenizer };
const judge: Policy = { version: 1, ...judgeCheckpoint };
const cfg = loadConfig({
  preset: opt.preset,
  env: {},
  ...(opt.families ? { flags: { "data.families": opt.families.split(",") } } : {}),
});
const data = buildSeedData({ ...cfg.data, fewShot: cfg.selfReward.fewShot });
const sampling = (temperature: number, seed: number, maxNewTokens: number) => ({
  temperature,
  topP: cfg.selfReward.topP,
  topK: 0,
  maxNewTokens,
  seed,
});

/** Agreement per criterion, with the share of responses that truly meet it. */
function agreement(items: { prompt: string; response: string }[]) {
  // As the loop judges: with the quotes written as given where the config says so.
  const guide = cfg.selfReward.forcedQuote ? quoteGuide(judge.tokenizer, syntheticFormat, items) : undefined;
  const texts = samplePolicy(
    judge,
    items.map((x) => judgePrompt(x.prompt, x.response)),
    1,
    sampling(0, 7, cfg.selfReward.judgeMaxNewTokens),
    "plain",
    guide?.forced,
    guide?.until,
  ).map((p) => p.samples[0].text);
  // `caught`: of the responses that truly fail a criterion, the share the judge marks `-`. A judge
  // blind to a check still agrees often when most responses pass it; `caught` shows the blindness.
  const rows: Record<string, { agree: number; n: number; truePositive: number; caught: number }> = {};
  let scoreRight = 0;
  // The worked check (constraint families) is what the marks are read from: a copy slip there
  // is the likeliest cause of a wrong mark, so count how often it is written exactly.
  let checks = 0;
  let checkExact = 0;
  // Pairs are only as good as the verdict on a right answer against a wrong one: count how often a
  // truly right answer is given 5, apart for answers equal to the reference (the only right
  // answers EFT shows) and other right answers, and how often a wrong answer is given 5.
  const verdicts = { reference: { n: 0, five: 0 }, otherRight: { n: 0, five: 0 }, wrong: { n: 0, five: 0 } };
  items.forEach((x, i) => {
    const truth = trueScore(x.prompt, x.response);
    const judged = /Score:\s*(\d)/.exec(texts[i]);
    const kind =
      truth.score < 5 ? "wrong" : x.response === parsePrompt(x.prompt)?.answer ? "reference" : "otherRight";
    verdicts[kind].n++;
    if (judged !== null && Number(judged[1]) === 5) verdicts[kind].five++;
    if (truth.evidence !== undefined) {
      checks++;
      if (texts[i].startsWith(`${truth.evidence} `)) checkExact++;
    }
    const marks = new Map(
      [...texts[i].matchAll(/([+-])([a-z]+)/g)].map((m) => [m[2], m[1] === "+"] as [string, boolean]),
    );
    truth.names.forEach((name, k) => {
      rows[name] ??= { agree: 0, n: 0, truePositive: 0, caught: 0 };
      rows[name].n++;
      if (truth.criteria[k]) rows[name].truePositive++;
      else if (marks.get(name) === false) rows[name].caught++;
      if (marks.get(name) === truth.criteria[k]) rows[name].agree++;
    });
    const m = /Score:\s*(\d)/.exec(texts[i]);
    if (m && Number(m[1]) === truth.score) scoreRight++;
  });
  return {
    scoreExact: scoreRight / items.length,
    checkExact: checks === 0 ? null : +(checkExact / checks).toFixed(3),
    givenFive: Object.fromEntries(
      Object.entries(verdicts).map(([k, v]) => [
        k,
        { n: v.n, share: v.n === 0 ? null : +(v.five / v.n).toFixed(3) },
      ]),
    ),
    criteria: Object.fromEntries(
      Object.entries(rows).map(([k, v]) => [
        k,
        {
          agree: +(v.agree / v.n).toFixed(3),
          met: +(v.truePositive / v.n).toFixed(3),
          caught: v.truePositive === v.n ? null : +(v.caught / (v.n - v.truePositive)).toFixed(3),
        },
      ]),
    ),
  };
}

const rng = makeRng(99);
const prompts = Array.from(
  { length: Number(opt.prompts) },
  () => familyByName(rng.pick(cfg.data.families)).makeInstance(rng).prompt,
);
const own = samplePolicy(
  policy,
  prompts,
  Number(opt.candidates),
  sampling(cfg.selfReward.temperature, 3, 32),
).flatMap((p, i) => p.samples.map((s) => ({ prompt: prompts[i], response: s.text })));
const synthetic = data.judgeEval.flatMap((j) =>
  j.candidates.map((c) => ({ prompt: j.prompt, response: c.response })),
);
const result = { own: agreement(own), synthetic: agreement(synthetic) };
console.log("own samples:", JSON.stringify(result.own));
console.log("synthetic:  ", JSON.stringify(result.synthetic));
console.log(JSON.stringify({ bench: "judgeCriteria", ...result }));
