// The generator actor: writes new prompts (self-instruct) and answers prompts, with the weight
// version each job names (or the newest announced one), returning behaviour log-probs with every
// sampled answer.
import type { ActorContext } from "../../bus/actor.ts";
import type { PromptsJobBody, SamplesJobBody } from "../../bus/messages.ts";
import type { Config } from "../../config/schema.ts";
import { promptWritingPrompt } from "../../tasks/index.ts";
import { samplePolicy } from "../policy.ts";
import { publishJobResult } from "../start.ts";
import { WeightCache } from "../weights.ts";

export async function startGenerator(ctx: ActorContext, cfg: Config): Promise<void> {
  const weights = new WeightCache(ctx.nc, ctx.log);
  weights.follow(ctx.deadLetters);
  ctx.onStop(() => weights.close());
  const ackWaitMs = cfg.actors.ackWaitMs;
  const maxDeliver = cfg.actors.maxDeliver;

  await ctx.consume(
    "prompts",
    async (msg) => {
      const job = msg.body as PromptsJobBody;
      const policy = await weights.get(job.weights);
      const inputs = job.fewShot.map((examples) => promptWritingPrompt(examples));
      const texts = samplePolicy(policy, inputs, 1, job.sampling).map((samples) => samples[0].text);
      await publishJobResult(
        ctx,
        msg.id,
        "prompts",
        "result.prompts",
        { jobId: msg.id, iteration: job.iteration, texts },
        policy.version,
      );
    },
    { ackWaitMs, maxDeliver },
  );

  await ctx.consume(
    "samples",
    async (msg) => {
      const job = msg.body as SamplesJobBody;
      const policy = job.latest ? await weights.latest(job.weights) : await weights.get(job.weights);
      const samples = samplePolicy(policy, job.prompts, job.n, job.sampling);
      const body = {
        jobId: msg.id,
        iteration: job.iteration,
        purpose: job.purpose,
        policyVersion: policy.version,
        results: job.prompts.map((prompt, i) => ({ prompt, responses: samples[i] })),
      };
      await publishJobResult(ctx, msg.id, "candidates", "result.candidates", body, policy.version);
    },
    { ackWaitMs, maxDeliver },
  );
}
