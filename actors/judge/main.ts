// The judge actor: scores candidate answers. Every implementation answers the same job with the
// same result shape, so the trainer never knows or cares which judge is running:
//   self      the policy itself as an LLM-as-a-Judge (the paper), with the weights the job names;
//   verifier  the task verifier's exact rubric score (ground truth);
//   ab        scores with self, and also with the verifier, reporting both (their agreement).
import type { ActorContext } from "../../bus/actor.ts";
import type { JudgeJobBody } from "../../bus/messages.ts";
import type { JobOf, ResultOf } from "../../bus/protocol.ts";
import type { Config } from "../../config/schema.ts";
import { parseScore } from "../../tasks/judgement.ts";
import { verifierOf } from "../../tasks/verifiers.ts";
import { type Policy, samplePolicy } from "../policy.ts";
import { publishJobResult } from "../start.ts";
import { WeightCache } from "../weights.ts";

export const JUDGE_IMPLS = ["self", "verifier", "ab"] as const;
export type JudgeImpl = (typeof JUDGE_IMPLS)[number];

export interface Judgements {
  /** scores[c][s]: sample s of candidate c; null where the judge's output did not parse. */
  scores: (number | null)[][];
  parseFailures: number;
  judgements: number;
}

/** The policy judges each candidate by answering the judge prompt the trainer rendered for it. */
export function judgeWithPolicy(policy: Policy, job: JudgeJobBody): Judgements {
  const samples = samplePolicy(policy, job.judgePrompts, job.samples, job.sampling, job.format);
  let parseFailures = 0;
  const scores = samples.map((perCandidate) =>
    perCandidate.samples.map((s) => {
      const parsed = parseScore(job.parser, s.text);
      if (parsed.ok) return parsed.score;
      parseFailures++;
      return null;
    }),
  );
  return { scores, parseFailures, judgements: job.candidates.length * job.samples };
}

export function judgeWithVerifier(job: JudgeJobBody): Judgements {
  const verify = verifierOf(job.task);
  const scores = job.candidates.map((c) => {
    const score = verify(job.prompt, c).score;
    return Array.from({ length: job.samples }, () => score);
  });
  return { scores, parseFailures: 0, judgements: job.candidates.length * job.samples };
}

const mean = (xs: (number | null)[]) => {
  const valid = xs.filter((x): x is number => x !== null);
  return valid.length ? valid.reduce((a, b) => a + b, 0) / valid.length : null;
};

/** A judging job's answer by judge `impl`; `policy` gives the weights the job names, where the
 * judge needs them (self, ab). */
export async function answerJudge(
  impl: JudgeImpl,
  job: JobOf<"judge">,
  instance: string,
  policy: () => Promise<Policy>,
): Promise<{ body: Omit<ResultOf<"judge">, "jobId">; weightsVersion?: number }> {
  let result: Judgements;
  let weightsVersion: number | undefined;
  let secondary: { impl: string; means: (number | null)[] } | undefined;
  if (impl === "verifier") result = judgeWithVerifier(job);
  else {
    const p = await policy();
    weightsVersion = p.version;
    result = judgeWithPolicy(p, job);
    if (impl === "ab") secondary = { impl: "verifier", means: judgeWithVerifier(job).scores.map(mean) };
  }
  const body = {
    iteration: job.iteration,
    purpose: job.purpose,
    prompt: job.prompt,
    judge: { impl: impl === "ab" ? "ab:self+verifier" : impl, instance, weightsVersion },
    ...result,
    ...(secondary ? { secondary } : {}),
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
  const weights = new WeightCache(ctx.nc, ctx.log);
  await ctx.consume(
    "judge",
    async (msg) => {
      const { body, weightsVersion } = await answerJudge(impl, msg.body, ctx.instance, () =>
        weights.get(msg.body.weights),
      );
      await publishJobResult(ctx, "judge", msg, body, weightsVersion);
    },
    { ackWaitMs: cfg.actors.ackWaitMs, maxDeliver: cfg.actors.maxDeliver },
  );
}
