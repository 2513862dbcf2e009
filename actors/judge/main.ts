// The judge actor: scores candidate answers. Every implementation answers the same job with the
// same result shape, so the trainer never knows or cares which judge is running:
//   self      the policy itself as an LLM-as-a-Judge (the paper), with the weights the job names;
//   verifier  the task verifier's exact rubric score (ground truth);
//   ab        scores with self, and also with the verifier, reporting both (their agreement).
import type { ActorContext } from "../../bus/actor.ts";
import type { JudgeJobBody } from "../../bus/messages.ts";
import type { Config } from "../../config/schema.ts";
import { judgePrompt, parseJudgement, trueScore } from "../../tasks/index.ts";
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

export function judgeWithPolicy(policy: Policy, job: JudgeJobBody): Judgements {
  const inputs = job.candidates.map((c) => judgePrompt(job.prompt, c));
  const samples = samplePolicy(policy, inputs, job.samples, job.sampling);
  let parseFailures = 0;
  const scores = samples.map((perCandidate) =>
    perCandidate.map((s) => {
      const parsed = parseJudgement(s.text);
      if (parsed.ok) return parsed.score;
      parseFailures++;
      return null;
    }),
  );
  return { scores, parseFailures, judgements: job.candidates.length * job.samples };
}

export function judgeWithVerifier(job: JudgeJobBody): Judgements {
  const scores = job.candidates.map((c) => {
    const score = trueScore(job.prompt, c).score;
    return Array.from({ length: job.samples }, () => score);
  });
  return { scores, parseFailures: 0, judgements: job.candidates.length * job.samples };
}

const mean = (xs: (number | null)[]) => {
  const valid = xs.filter((x): x is number => x !== null);
  return valid.length ? valid.reduce((a, b) => a + b, 0) / valid.length : null;
};

export async function startJudge(ctx: ActorContext, cfg: Config, impl: string): Promise<void> {
  if (!(JUDGE_IMPLS as readonly string[]).includes(impl)) {
    throw new Error(`judge --impl ${impl}: unknown judge; use one of ${JUDGE_IMPLS.join(", ")}`);
  }
  const weights = new WeightCache(ctx.nc, ctx.log);
  await ctx.consume(
    "judge",
    async (msg) => {
      const job = msg.body as JudgeJobBody;
      let result: Judgements;
      let weightsVersion: number | undefined;
      let secondary: { impl: string; means: (number | null)[] } | undefined;
      if (impl === "verifier") result = judgeWithVerifier(job);
      else {
        const policy = await weights.get(job.weights);
        weightsVersion = policy.version;
        result = judgeWithPolicy(policy, job);
        if (impl === "ab") secondary = { impl: "verifier", means: judgeWithVerifier(job).scores.map(mean) };
      }
      const body = {
        jobId: msg.id,
        iteration: job.iteration,
        purpose: job.purpose,
        prompt: job.prompt,
        judge: { impl: impl === "ab" ? "ab:self+verifier" : impl, instance: ctx.instance, weightsVersion },
        ...result,
        ...(secondary ? { secondary } : {}),
      };
      await publishJobResult(ctx, msg.id, "scores", "result.scores", body, weightsVersion);
    },
    { ackWaitMs: cfg.actors.ackWaitMs, maxDeliver: cfg.actors.maxDeliver },
  );
}
