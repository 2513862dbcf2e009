// Does a self-judge mark a right greedy answer down by chance or by conviction? For fresh prompts,
// the model's greedy answer is judged once greedily (the loop's verdict) and `--samples` more times
// at `--temperature`; split by whether the answer is truly right, the bench counts how often the
// greedy verdict marks it down (below 5), and of those, how often every sampled verdict agrees.
// If a right answer's mark-down is chance and a wrong one's conviction, asking again separates
// them, and a rule that rejects the greedy answer only on agreeing verdicts keeps the pairs that
// teach and drops the ones that push a right answer down.
//
//   node --import tsx bench/judgeConsistency.ts --m1 runs/demo/checkpoints/M1 [--prompts 400]
//     [--samples 3] [--temperature 0.7] [--set data.seed=8 ...]
import { parseArgs } from "node:util";
import { quoteGuide } from "../actors/judge/main.ts";
import { type Policy, samplePolicy } from "../actors/policy.ts";
import { parseAssignments } from "../cli/options.ts";
import { loadConfig } from "../config/load.ts";
import { selectBackend } from "../model/backend.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import { familyByName, judgePrompt, makeRng, parseJudgement, trueScore, wilson } from "../tasks/index.ts";
import { syntheticFormat } from "../tasks/synthetic.ts";

const { values: opt } = parseArgs({
  options: {
    m1: { type: "string" },
    prompts: { type: "string", default: "400" },
    samples: { type: "string", default: "3" },
    temperature: { type: "string", default: "0.7" },
    seed: { type: "string", default: "101" },
    preset: { type: "string", default: "demo" },
    set: { type: "string", multiple: true, default: [] },
  },
});
if (!opt.m1) throw new Error("judgeConsistency: --m1 DIR (a checkpoint folder) is required");
await selectBackend("auto", { info() {} });
const { model, tokenizer } = loadCheckpoint(opt.m1);
const policy: Policy = { version: 1, model, tokenizer };
const cfg = loadConfig({ preset: opt.preset, env: {}, flags: parseAssignments(opt.set ?? []) });
const samples = Number(opt.samples);
const temperature = Number(opt.temperature);
const started = performance.now();

const rng = makeRng(Number(opt.seed));
const prompts = Array.from(
  { length: Number(opt.prompts) },
  () => familyByName(rng.pick(cfg.data.families)).makeInstance(rng).prompt,
);
const decode = (t: number, seed: number, maxNewTokens: number) => ({
  temperature: t,
  topP: cfg.selfReward.topP,
  topK: 0,
  maxNewTokens,
  seed,
});
const answers = samplePolicy(policy, prompts, 1, decode(0, 1, cfg.selfReward.maxNewTokens)).map(
  (p) => p.samples[0].text,
);
const judgePrompts = prompts.map((p, i) => judgePrompt(p, answers[i]));
// As the loop judges: with the quotes written as given where the config says so.
const guide = cfg.selfReward.forcedQuote
  ? quoteGuide(
      tokenizer,
      syntheticFormat,
      prompts.map((prompt, i) => ({ prompt, response: answers[i] })),
    )
  : undefined;
// A verdict that does not parse counts as no verdict (null), as the loop counts it.
const score = (text: string): number | null => {
  const j = parseJudgement(text);
  return j.ok ? j.score : null;
};
const greedyVerdicts = samplePolicy(
  policy,
  judgePrompts,
  1,
  decode(0, 2, cfg.selfReward.judgeMaxNewTokens),
  "plain",
  guide?.forced,
  guide?.until,
).map((p) => score(p.samples[0].text));
const sampledVerdicts = samplePolicy(
  policy,
  judgePrompts,
  samples,
  decode(temperature, 3, cfg.selfReward.judgeMaxNewTokens),
  "plain",
  guide?.forced,
  guide?.until,
).map((p) => p.samples.map((s) => score(s.text)));

type Tally = { answers: number; markedDown: number; allAgree: number };
const tally = (): Tally => ({ answers: 0, markedDown: 0, allAgree: 0 });
const byTruth = { right: tally(), wrong: tally() };
prompts.forEach((prompt, i) => {
  const t = trueScore(prompt, answers[i]).score === 5 ? byTruth.right : byTruth.wrong;
  t.answers++;
  const g = greedyVerdicts[i];
  if (g === null || g >= 5) return;
  t.markedDown++;
  const others = sampledVerdicts[i];
  if (others.every((s) => s !== null && s < 5)) t.allAgree++;
});

const pct = (k: number, n: number) => {
  const [lo, hi] = wilson(k, n);
  return `${((100 * k) / Math.max(1, n)).toFixed(1)}% (${(100 * lo).toFixed(1)}-${(100 * hi).toFixed(1)}; ${k}/${n})`;
};
const summary = Object.fromEntries(
  Object.entries(byTruth).map(([truth, t]) => [
    truth,
    {
      answers: t.answers,
      markedDown: t.markedDown / Math.max(1, t.answers),
      allSampledAgree: t.allAgree / Math.max(1, t.markedDown),
      keptUnderRule: t.allAgree / Math.max(1, t.answers),
    },
  ]),
);
for (const [truth, t] of Object.entries(byTruth)) {
  console.log(
    `${truth} greedy answers: ${t.answers}; greedy verdict below 5: ${pct(t.markedDown, t.answers)}; ` +
      `of those, all ${samples} sampled verdicts below 5 too: ${pct(t.allAgree, t.markedDown)}`,
  );
}
console.log(`${((performance.now() - started) / 1000).toFixed(0)} s`);
console.log(
  JSON.stringify({
    bench: "judgeConsistency",
    m1: opt.m1,
    samples,
    temperature,
    prompts: prompts.length,
    summary,
  }),
);
