// The judge actor: scores candidate answers. Every implementation answers the same job with the
// same result shape, so the trainer never knows or cares which judge is running:
//   self      the policy itself as an LLM-as-a-Judge (the paper), with the weights the job names;
//   verifier  the task verifier's exact rubric score (ground truth);
//   openai    any OpenAI-compatible chat endpoint (judge.openai: vLLM, Ollama, `srlm serve`, …);
//   answer    ReFT's reward against the job's gold answer, on the judges' 0..5 scale (5 when the
//             answer after the trigger is right, 0.5 when it is wrong, 0 when none could be read),
//             so any judge can stand in as ReFT's reward (reward = score / 5);
//   ab        scores with two of them (judge.ab, default self,verifier), reporting both so the
//             trainer's evaluation measures their agreement.
import type { ActorContext } from "../../bus/actor.ts";
import type { JudgeJobBody, QuotedToken } from "../../bus/messages.ts";
import type { JobOf, ResultOf } from "../../bus/protocol.ts";
import type { Config } from "../../config/schema.ts";
import type { Tokenizer } from "../../model/tokenizer.ts";
import { MAX_SCORE, parseScore } from "../../tasks/judgement.ts";
import { parseNumber, reftReward } from "../../tasks/reward.ts";
import type { Task } from "../../tasks/task.ts";
import { verifierOf } from "../../tasks/verifiers.ts";
import { type Policy, samplePolicy } from "../policy.ts";
import { publishJobResult } from "../start.ts";
import { WeightCache } from "../weights.ts";
import { OpenAIJudge } from "./openai.ts";

export const JUDGE_IMPLS = ["self", "verifier", "openai", "answer", "ab"] as const;
export type JudgeImpl = (typeof JUDGE_IMPLS)[number];
/** The judges `ab` can pair. */
export type SingleJudge = Exclude<JudgeImpl, "ab">;
const SINGLE_JUDGES: readonly SingleJudge[] = ["self", "verifier", "openai", "answer"];

/** judge.ab ("primary,secondary") as two distinct judges. */
export function abPair(spec: string): [SingleJudge, SingleJudge] {
  const parts = spec.split(",").map((x) => x.trim());
  const ok = (x: string): x is SingleJudge => (SINGLE_JUDGES as readonly string[]).includes(x);
  if (parts.length !== 2 || !ok(parts[0]) || !ok(parts[1]) || parts[0] === parts[1]) {
    throw new Error(
      `judge.ab ${JSON.stringify(spec)}: expected two different judges of ${SINGLE_JUDGES.join(", ")}, e.g. self,openai`,
    );
  }
  return [parts[0], parts[1]];
}

/** What answerJudge needs beyond the policy, by the judges it runs. */
export interface JudgeExtras {
  openai?: OpenAIJudge;
  /** The two judges of `ab` (default self, verifier). */
  ab?: [SingleJudge, SingleJudge];
  /** Aborts HTTP requests when the actor stops. */
  signal?: AbortSignal;
}

export interface Judgements {
  /** scores[c][s]: sample s of candidate c; null where the judge's output did not parse. */
  scores: (number | null)[][];
  parseFailures: number;
  judgements: number;
  /** What an LLM judge wrote, per candidate and sample (absent for the verifier). */
  texts?: string[][];
}

/** Each candidate's quotes (a judge job's `quotes`) as the token ids its verdicts write as given,
 * by new-token index. */
export function quotedIds(tokenizer: Tokenizer, quotes: QuotedToken[][]): Map<number, number>[] {
  return quotes.map((forCandidate, c) => {
    const forced = new Map<number, number>();
    for (const q of forCandidate)
      forced.set(q.at, oneToken(tokenizer, q.text, `quotes[${c}]: ${JSON.stringify(q.text)} at ${q.at}`));
    return forced;
  });
}

/**
 * A self-judge's quotes of each (prompt, response), written as given (`selfReward.forcedQuote`),
 * for judging outside a job: samplePolicy's forced tokens and the token that ends them. The loop
 * sends the same in each judge job; benches that judge by themselves take them from here.
 */
export function quoteGuide(
  tokenizer: Tokenizer,
  task: Pick<Task, "name" | "judgeQuote" | "judgeQuoteEnd">,
  items: readonly { prompt: string; response: string }[],
): { forced: Map<number, number>[]; until?: number } {
  const quote = task.judgeQuote;
  if (!quote)
    throw new Error(`selfReward.forcedQuote: task ${task.name}'s judge writes no quote of the response`);
  return {
    forced: quotedIds(
      tokenizer,
      items.map((x) => quote(x.prompt, x.response)),
    ),
    ...(task.judgeQuoteEnd !== undefined ? { until: quoteEndId(tokenizer, task.judgeQuoteEnd) } : {}),
  };
}

/** A judge job's `quoteEnd` as the token id that ends its quotes. */
export function quoteEndId(tokenizer: Tokenizer, quoteEnd: string): number {
  return oneToken(tokenizer, quoteEnd, `quoteEnd ${JSON.stringify(quoteEnd)}`);
}

function oneToken(tokenizer: Tokenizer, text: string, what: string): number {
  const ids = tokenizer.encode(text);
  if (ids.length !== 1)
    throw new Error(
      `job.judge ${what} is ${ids.length} tokens for this judge's tokenizer; each quoted piece must be one token`,
    );
  return ids[0];
}

/** The policy judges each candidate by answering the judge prompt the trainer rendered for it,
 * writing the job's quotes of the candidate as given. */
export function judgeWithPolicy(policy: Policy, job: JudgeJobBody): Judgements {
  const forced = job.quotes && quotedIds(policy.tokenizer, job.quotes);
  const until = job.quoteEnd === undefined ? undefined : quoteEndId(policy.tokenizer, job.quoteEnd);
  const samples = samplePolicy(
    policy,
    job.judgePrompts,
    job.samples,
    job.sampling,
    job.format,
    forced,
    until,
  );
  let parseFailures = 0;
  const scores = samples.map((perCandidate) =>
    perCandidate.samples.map((s) => {
      const parsed = parseScore(job.parser, s.text);
      if (parsed.ok) return parsed.score;
      parseFailures++;
      return null;
    }),
  );
  const texts = samples.map((perCandidate) => perCandidate.samples.map((s) => s.text));
  return { scores, parseFailures, judgements: job.candidates.length * job.samples, texts };
}

export function judgeWithVerifier(job: JudgeJobBody): Judgements {
  const verify = verifierOf(job.task);
  const scores = job.candidates.map((c) => {
    const score = verify(job.prompt, c).score;
    return Array.from({ length: job.samples }, () => score);
  });
  return { scores, parseFailures: 0, judgements: job.candidates.length * job.samples };
}

/** ReFT's reward of each candidate against the job's gold answer, scaled to 0..MAX_SCORE; the
 * same for every sample. */
export function judgeAnswers(job: JudgeJobBody): Judgements {
  const gold = job.gold === undefined ? Number.NaN : parseNumber(job.gold);
  if (gold === null || !Number.isFinite(gold))
    throw new Error(
      `the answer judge needs a numeric gold answer in the job, got ${JSON.stringify(job.gold)}`,
    );
  const scores = job.candidates.map((c) => {
    const score = reftReward(c, gold, { trigger: job.trigger }) * MAX_SCORE;
    return Array.from({ length: job.samples }, () => score);
  });
  return { scores, parseFailures: 0, judgements: job.candidates.length * job.samples };
}

const mean = (xs: (number | null)[]) => {
  const valid = xs.filter((x): x is number => x !== null);
  return valid.length ? valid.reduce((a, b) => a + b, 0) / valid.length : null;
};

interface SingleAnswer {
  result: Judgements;
  weightsVersion?: number;
  model?: string;
  endpoint?: string;
}

async function judgeOnce(
  judge: SingleJudge,
  job: JobOf<"judge">,
  policy: () => Promise<Policy>,
  extras: JudgeExtras,
): Promise<SingleAnswer> {
  if (judge === "verifier") return { result: judgeWithVerifier(job) };
  if (judge === "answer") return { result: judgeAnswers(job) };
  if (judge === "openai") {
    if (!extras.openai) throw new Error("the openai judge was asked for but not configured (judge.openai)");
    const result = await extras.openai.judge(job, extras.signal);
    return { result, model: extras.openai.model, endpoint: extras.openai.endpoint };
  }
  const p = await policy();
  return { result: judgeWithPolicy(p, job), weightsVersion: p.version };
}

/** A judging job's answer by judge `impl`; `policy` gives the weights the job names, where the
 * judge needs them (self, or ab with self). */
export async function answerJudge(
  impl: JudgeImpl,
  job: JobOf<"judge">,
  instance: string,
  policy: () => Promise<Policy>,
  extras: JudgeExtras = {},
): Promise<{ body: Omit<ResultOf<"judge">, "jobId">; weightsVersion?: number }> {
  const [primary, second] = impl === "ab" ? (extras.ab ?? ["self", "verifier"]) : [impl, undefined];
  const [a, b] = await Promise.all([
    judgeOnce(primary, job, policy, extras),
    second ? judgeOnce(second, job, policy, extras) : undefined,
  ]);
  const weightsVersion = a.weightsVersion ?? b?.weightsVersion;
  // The HTTP judge's identity, whichever side of an A/B it is on.
  const model = a.model ?? b?.model;
  const endpoint = a.endpoint ?? b?.endpoint;
  const body = {
    iteration: job.iteration,
    purpose: job.purpose,
    prompt: job.prompt,
    judge: {
      impl: second ? `ab:${primary}+${second}` : primary,
      instance,
      weightsVersion,
      ...(model ? { model } : {}),
      ...(endpoint ? { endpoint } : {}),
    },
    ...a.result,
    ...(b && second ? { secondary: { impl: second, means: b.result.scores.map(mean) } } : {}),
  };
  return { body, weightsVersion };
}

export function isJudgeImpl(impl: string): impl is JudgeImpl {
  return (JUDGE_IMPLS as readonly string[]).includes(impl);
}

export async function startJudge(ctx: ActorContext, cfg: Config, impl: string): Promise<void> {
  if (!isJudgeImpl(impl)) {
    throw new Error(`judge --impl ${impl}: unknown judge; use one of ${JUDGE_IMPLS.join(", ")}`);
  }
  const ab = impl === "ab" ? abPair(cfg.judge.ab) : undefined;
  const usesOpenAI = impl === "openai" || ab?.includes("openai");
  const openai = usesOpenAI ? new OpenAIJudge(cfg.judge.openai, { log: ctx.log }) : undefined;
  if (openai) ctx.log.info({ endpoint: openai.endpoint, model: openai.model }, "openai judge");
  const weights = new WeightCache(ctx.nc, ctx.log);
  let warnedQuotes = false;
  await ctx.consume(
    "judge",
    async (msg, ctl) => {
      if (usesOpenAI && !warnedQuotes && msg.body.quotes?.some((q) => q.length > 0)) {
        warnedQuotes = true;
        ctx.log.warn(
          { type: msg.type, id: msg.id },
          "judge jobs carry quotes (selfReward.forcedQuote), which an HTTP judge cannot write as given: it judges without them",
        );
      }
      const { body, weightsVersion } = await answerJudge(
        impl,
        msg.body,
        ctx.instance,
        () => weights.get(msg.body.weights),
        { openai, ab, signal: ctl.signal },
      );
      await publishJobResult(ctx, "judge", msg, body, weightsVersion);
    },
    {
      ackWaitMs: cfg.actors.ackWaitMs,
      maxDeliver: cfg.actors.maxDeliver,
      // An HTTP judge spends its time waiting on the endpoint: several jobs may wait at once.
      concurrency: openai ? cfg.judge.openai.maxConcurrency : 1,
    },
  );
}
