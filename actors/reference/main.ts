// The reference actor: summed log-probs of chosen and rejected answers under the frozen reference
// model (M_t while M_t is trained into M_t+1), so the trainer never holds two models.
import type { ActorContext } from "../../bus/actor.ts";
import type { ReferenceJobBody } from "../../bus/messages.ts";
import type { Config } from "../../config/schema.ts";
import { completionLogProbs } from "../policy.ts";
import { publishJobResult } from "../start.ts";
import { WeightCache } from "../weights.ts";

export async function startReference(ctx: ActorContext, cfg: Config): Promise<void> {
  const weights = new WeightCache(ctx.nc, ctx.log);
  await ctx.consume(
    "reference",
    async (msg) => {
      const job = msg.body as ReferenceJobBody;
      const policy = await weights.get(job.weights);
      const sums = completionLogProbs(policy, [
        ...job.pairs.map((p) => ({ prompt: p.prompt, completion: p.chosen })),
        ...job.pairs.map((p) => ({ prompt: p.prompt, completion: p.rejected })),
      ]);
      const n = job.pairs.length;
      const body = {
        jobId: msg.id,
        iteration: job.iteration,
        referenceVersion: policy.version,
        chosen: sums.slice(0, n),
        rejected: sums.slice(n),
      };
      await publishJobResult(ctx, msg.id, "reflogprobs", "result.reflogprobs", body, policy.version);
    },
    { ackWaitMs: cfg.actors.ackWaitMs, maxDeliver: cfg.actors.maxDeliver },
  );
}
