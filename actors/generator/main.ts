// The generator actor: writes new prompts (self-instruct) and answers prompts, with the weight
// version each job names (or the newest announced one), returning the sampled token ids and their
// behaviour log-probs with every answer.
import type { ActorContext } from "../../bus/actor.ts";
import type { JobOf, ResultOf } from "../../bus/protocol.ts";
import type { Config } from "../../config/schema.ts";
import { type Policy, samplePolicy } from "../policy.ts";
import { publishJobResult } from "../start.ts";
import { WeightCache } from "../weights.ts";

/** A prompt-writing job's answer: one text per rendered prompt-writing prompt. */
export function answerPrompts(policy: Policy, job: JobOf<"prompts">): Omit<ResultOf<"prompts">, "jobId"> {
  const written = samplePolicy(policy, job.inputs, 1, job.sampling, job.format);
  return { iteration: job.iteration, texts: written.map((p) => p.samples[0].text) };
}

/** A sampling job's answer: `n` samples per prompt, with their ids and behaviour log-probs. */
export function answerSamples(policy: Policy, job: JobOf<"samples">): Omit<ResultOf<"samples">, "jobId"> {
  const sampled = samplePolicy(policy, job.prompts, job.n, job.sampling, job.format);
  return {
    iteration: job.iteration,
    purpose: job.purpose,
    policyVersion: policy.version,
    results: job.prompts.map((prompt, i) => ({
      prompt,
      promptTokens: sampled[i].promptTokens,
      responses: sampled[i].samples,
    })),
  };
}

export async function startGenerator(ctx: ActorContext, cfg: Config): Promise<void> {
  const weights = new WeightCache(ctx.nc, ctx.log);
  weights.follow(ctx.deadLetters);
  ctx.onStop(() => weights.close());
  const ackWaitMs = cfg.actors.ackWaitMs;
  const maxDeliver = cfg.actors.maxDeliver;

  await ctx.consume(
    "prompts",
    async (msg) => {
      const job = msg.body;
      const policy = await weights.get(job.weights);
      await publishJobResult(ctx, "prompts", msg, answerPrompts(policy, job), policy.version);
    },
    { ackWaitMs, maxDeliver },
  );

  await ctx.consume(
    "samples",
    async (msg) => {
      const job = msg.body;
      const policy = job.latest ? await weights.latest(job.weights) : await weights.get(job.weights);
      await publishJobResult(ctx, "samples", msg, answerSamples(policy, job), policy.version);
    },
    { ackWaitMs, maxDeliver },
  );
}
