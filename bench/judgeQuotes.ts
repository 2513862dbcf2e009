// Does a self-judge's verdict go wrong where its worked check misquotes the answer? The constraint
// families' judge writes a check that restates every character of the answer before its marks
// (tasks/families.ts, `constraintEvidence`); a check whose quote differs from the answer judged
// another string. For fresh prompts (the config's held-out set left out), the loop's candidates
// (`candidates` at the loop's temperature, the greedy answer among them as the demo has it) are
// judged once greedily, as the loop does, and `--samples` more times at `--temperature`. The bench
// splits the greedy verdicts by whether the quote is exact and counts how often a truly right answer
// gets 5 and a wrong one does, then forms the loop's pairs (every two candidates a gap apart) three
// ways and counts how many are truly better, as good, or worse:
//   greedy   the loop's verdict as it is;
//   quoted   the greedy verdict where its quote is exact, else the first sampled verdict that quotes
//            exactly, else none (the candidate forms no pair);
//   mean     the mean of all the verdicts (greedy and sampled) that quote exactly.
//
// With `selfReward.forcedQuote` (the demo sets it, `--set selfReward.forcedQuote=false` unsets it,
// --forced sets it for any preset) every verdict writes the quotes as given, so the figures say
// how well the judge judges what it was shown.
//
//   node --import tsx bench/judgeQuotes.ts --m1 runs/demo/checkpoints/M1 [--prompts 300]
//     [--samples 4] [--temperature 0.7] [--forced] [--set data.seed=8 ...]
import { parseArgs } from "node:util";
import { quoteGuide } from "../actors/judge/main.ts";
import { type Policy, samplePolicy } from "../actors/policy.ts";
import { allPairsFromJudged, type JudgedCandidate } from "../actors/trainer/pairs.ts";
import { parseAssignments } from "../cli/options.ts";
import { loadConfig } from "../config/load.ts";
import { selectBackend } from "../model/backend.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import { freshPrompts } from "../tasks/fromConfig.ts";
import { judgePrompt, parseJudgement, trueScore, wilson } from "../tasks/index.ts";
import { syntheticFormat } from "../tasks/synthetic.ts";

const { values: opt } = parseArgs({
  options: {
    m1: { type: "string" },
    prompts: { type: "string", default: "300" },
    samples: { type: "string", default: "4" },
    temperature: { type: "string", default: "0.7" },
    seed: { type: "string", default: "303" },
    preset: { type: "string", default: "demo" },
    forced: { type: "boolean" },
    set: { type: "string", multiple: true, default: [] },
  },
});
if (!opt.m1) throw new Error("judgeQuotes: --m1 DIR (a checkpoint folder) is required");
const samples = Number(opt.samples);
const temperature = Number(opt.temperature);
if (!Number.isInteger(samples) || samples < 0) throw new Error(`judgeQuotes: --samples ${opt.samples}`);
if (!Number.isFinite(temperature) || temperature <= 0)
  throw new Error(`judgeQuotes: --temperature must be above 0, got ${opt.temperature}`);
await selectBackend("auto", { info() {} });
const cfg = loadConfig({ preset: opt.preset, env: {}, flags: parseAssignments(opt.set ?? []) });
const s = cfg.selfReward;
const { model, tokenizer } = loadCheckpoint(opt.m1);
const policy: Policy = { version: 1, model, tokenizer };
const started = performance.now();

const prompts = freshPrompts(cfg, Number(opt.prompts), Number(opt.seed));
const decode = (t: number, seed: number, maxNewTokens: number) => ({
  temperature: t,
  topP: s.topP,
  topK: 0,
  maxNewTokens,
  seed,
});

// The loop's candidates: sampled ones, the greedy answer in place of one of them.
const sampled = samplePolicy(policy, prompts, s.candidates, decode(s.temperature, 1, s.maxNewTokens));
const greedy = samplePolicy(policy, prompts, 1, decode(0, 2, s.maxNewTokens));
const candidates = prompts.map((_, i) => {
  const texts = sampled[i].samples.map((x) => x.text);
  if (s.greedyCandidate) texts[texts.length - 1] = greedy[i].samples[0].text;
  return texts;
});
const flat = candidates.flatMap((texts, i) => texts.map((response) => ({ prompt: prompts[i], response })));
const judgePrompts = flat.map((x) => judgePrompt(x.prompt, x.response));
// The config's setting (the demo's is on) unless --forced says otherwise.
const forcedQuote = opt.forced ?? s.forcedQuote === true;
const guide = forcedQuote ? quoteGuide(tokenizer, syntheticFormat, flat) : undefined;
const greedyTexts = samplePolicy(
  policy,
  judgePrompts,
  1,
  decode(0, 3, s.judgeMaxNewTokens),
  "plain",
  guide?.forced,
  guide?.until,
).map((p) => p.samples[0].text);
const sampledTexts =
  samples === 0
    ? flat.map(() => [] as string[])
    : samplePolicy(
        policy,
        judgePrompts,
        samples,
        decode(temperature, 4, s.judgeMaxNewTokens),
        "plain",
        guide?.forced,
        guide?.until,
      ).map((p) => p.samples.map((x) => x.text));

interface Verdict {
  score: number | null;
  quoted: boolean;
}
const verdictOf = (prompt: string, text: string, response: string): Verdict => {
  const j = parseJudgement(text);
  return { score: j.ok ? j.score : null, quoted: syntheticFormat.judgementQuotes(prompt, response, text) };
};
const judged = flat.map((x, k) => ({
  ...x,
  truth: trueScore(x.prompt, x.response).score,
  greedy: verdictOf(x.prompt, greedyTexts[k], x.response),
  sampled: sampledTexts[k].map((t) => verdictOf(x.prompt, t, x.response)),
}));

// Greedy verdicts by quote and by truth.
const cell = () => ({ n: 0, five: 0, exact: 0 });
const split = { quoted: { right: cell(), wrong: cell() }, misquoted: { right: cell(), wrong: cell() } };
for (const j of judged) {
  const c = split[j.greedy.quoted ? "quoted" : "misquoted"][j.truth === 5 ? "right" : "wrong"];
  c.n++;
  if (j.greedy.score === 5) c.five++;
  if (j.greedy.score === j.truth) c.exact++;
}
const anyQuoted = judged.filter((j) => j.greedy.quoted || j.sampled.some((v) => v.quoted)).length;
const sampledQuoted = judged.reduce((n, j) => n + j.sampled.filter((v) => v.quoted).length, 0);

// The loop's pairs under three readings of the verdicts.
const readings = {
  greedy: (j: (typeof judged)[number]) => [j.greedy.score],
  quoted: (j: (typeof judged)[number]) => {
    const first = [j.greedy, ...j.sampled].find((v) => v.quoted && v.score !== null);
    return first === undefined ? [] : [first.score];
  },
  mean: (j: (typeof judged)[number]) =>
    [j.greedy, ...j.sampled].filter((v) => v.quoted && v.score !== null).map((v) => v.score),
};
const pairCounts = Object.fromEntries(
  Object.entries(readings).map(([name, read]) => {
    let better = 0;
    let same = 0;
    let worse = 0;
    let rejectRightGreedy = 0;
    prompts.forEach((prompt, i) => {
      const mine = judged.slice(i * s.candidates, (i + 1) * s.candidates);
      const jc: JudgedCandidate[] = mine.map((j) => ({
        response: j.response,
        scores: read(j),
        policyVersion: 1,
      }));
      const truth = new Map(mine.map((j) => [j.response, j.truth]));
      const greedyAnswer = greedy[i].samples[0].text;
      for (const pair of allPairsFromJudged(prompt, jc, s.minScoreGap)) {
        const gap = (truth.get(pair.chosen) ?? 0) - (truth.get(pair.rejected) ?? 0);
        if (gap > 0) better++;
        else if (gap === 0) same++;
        else worse++;
        if (pair.rejected === greedyAnswer && truth.get(greedyAnswer) === 5) rejectRightGreedy++;
      }
    });
    const n = better + same + worse;
    const share = (k: number) => (n === 0 ? null : +(k / n).toFixed(3));
    return [
      name,
      {
        pairs: n,
        better: share(better),
        same: share(same),
        worse: share(worse),
        rejectRightGreedy: share(rejectRightGreedy),
      },
    ];
  }),
);

const pct = (k: number, n: number) => (n === 0 ? "–" : `${((100 * k) / n).toFixed(1)}%`);
const ci = (k: number, n: number) => {
  if (n === 0) return "–";
  const [lo, hi] = wilson(k, n);
  return `${pct(k, n)} (${(100 * lo).toFixed(1)}–${(100 * hi).toFixed(1)})`;
};
console.log(
  `${prompts.length} prompts, ${judged.length} candidates; greedy verdicts quoting the answer exactly: ${ci(judged.filter((j) => j.greedy.quoted).length, judged.length)}; sampled: ${pct(sampledQuoted, judged.length * samples)}; candidates with at least one exact quote among ${samples + 1} verdicts: ${pct(anyQuoted, judged.length)}`,
);
console.log("\n| greedy verdict | answers | given 5 | score exact |\n| --- | --- | --- | --- |");
for (const [q, byTruth] of Object.entries(split))
  for (const [t, c] of Object.entries(byTruth))
    console.log(`| ${q}, truly ${t} | ${c.n} | ${ci(c.five, c.n)} | ${pct(c.exact, c.n)} |`);
console.log(
  "\n| verdicts read as | pairs | truly better | as good | worse | rejecting a right greedy answer |\n| --- | --- | --- | --- | --- | --- |",
);
for (const [name, c] of Object.entries(pairCounts))
  console.log(
    `| ${name} | ${c.pairs} | ${c.better ?? "–"} | ${c.same ?? "–"} | ${c.worse ?? "–"} | ${c.rejectRightGreedy ?? "–"} |`,
  );
const seconds = (performance.now() - started) / 1000;
console.log(`\n${seconds.toFixed(0)} s`);
console.log(
  JSON.stringify({
    bench: "judgeQuotes",
    forced: forcedQuote,
    prompts: prompts.length,
    candidates: judged.length,
    samples,
    temperature,
    greedyQuoted: +(judged.filter((j) => j.greedy.quoted).length / judged.length).toFixed(3),
    anyQuoted: +(anyQuoted / judged.length).toFixed(3),
    split,
    pairs: pairCounts,
    seconds: +seconds.toFixed(1),
  }),
);
