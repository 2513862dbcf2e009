// The reference actor: log-probs under the frozen reference model, so the trainer never holds two
// models. DPO asks for the summed log-probs of chosen and rejected answers (under M_t while M_t is
// trained into M_t+1); PPO asks for every token's (under the warm-up model, for the per-token KL
// penalty). It scores the token ids the generator sampled, never a re-encoding of their text.
import type { ActorContext } from "../../bus/actor.ts";
import type { JobOf, ResultOf } from "../../bus/protocol.ts";
import type { Config } from "../../config/schema.ts";
import { completionLogProbs, completionTokenLogProbs, type Policy } from "../policy.ts";
import { publishJobResult } from "../start.ts";
import { WeightCache } from "../weights.ts";

/** Summed log-probs of each pair's chosen and rejected ids under `policy`. */
export function answerReference(
  policy: Policy,
  job: JobOf<"reference">,
): Omit<ResultOf<"reference">, "jobId"> {
  const sums = completionLogProbs(policy, [
    ...job.pairs.map((p) => ({ prompt: p.prompt, completion: p.chosen })),
    ...job.pairs.map((p) => ({ prompt: p.prompt, completion: p.rejected })),
  ]);
  const n = job.pairs.length;
  return {
    iteration: job.iteration,
    referenceVersion: policy.version,
    chosen: sums.slice(0, n),
    rejected: sums.slice(n),
  };
}

/** Every completion token's log-prob under `policy`, sequence by sequence. */
export function answerLogProbs(policy: Policy, job: JobOf<"logprobs">): Omit<ResultOf<"logprobs">, "jobId"> {
  return {
    iteration: job.iteration,
    referenceVersion: policy.version,
    logProbs: completionTokenLogProbs(policy, job.sequences),
  };
}

export async function startReference(ctx: ActorContext, cfg: Config): Promise<void> {
  const weights = new WeightCache(ctx.nc, ctx.log);
  await ctx.consume(
    "reference",
    async (msg) => {
      const job = msg.body;
      const policy = await weights.get(job.weights);
      await publishJobResult(ctx, "reference", msg, answerReference(policy, job), policy.version);
    },
    { ackWaitMs: cfg.actors.ackWaitMs, maxDeliver: cfg.actors.maxDeliver },
  );
  await ctx.consume(
    "logprobs",
    async (msg) => {
      const job = msg.body;
      const policy = await weights.get(job.weights);
      await publishJobResult(ctx, "logprobs", msg, answerLogProbs(policy, job), policy.version);
    },
    { ackWaitMs: cfg.actors.ackWaitMs, maxDeliver: cfg.actors.maxDeliver },
  );
}
