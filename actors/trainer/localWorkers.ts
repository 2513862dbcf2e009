// The loop's workers in the trainer's own process: the same answers the generator, judge and
// reference actors give (their exported answer functions), without NATS. For probes and unit
// tests; a job fails as it would over NATS when its handler throws. Weight versions are the
// policies published so far, so strict iterations (which finish every job of version t before
// training it further) see exactly what the actors would.
import type { WeightRef } from "../../bus/messages.ts";
import type { JobOf, ResultOf } from "../../bus/protocol.ts";
import type { QueueName } from "../../bus/subjects.ts";
import { answerPrompts, answerSamples } from "../generator/main.ts";
import { answerJudge, type JudgeExtras, type JudgeImpl } from "../judge/main.ts";
import type { Policy } from "../policy.ts";
import { answerLogProbs, answerReference } from "../reference/main.ts";
import type { JobOutcome, Workers } from "./workers.ts";

export class LocalWorkers implements Workers {
  private versions = new Map<number, Policy>();
  private seq = 0;

  /** `extras`: what the judge needs beyond the policy (an OpenAI judge, the two judges of ab). */
  constructor(
    private judgeImpl: JudgeImpl = "self",
    private judgeExtras: JudgeExtras = {},
  ) {}

  /** Makes `policy` (as it is now) the weights of `version`. */
  publish(version: number, policy: Policy): WeightRef {
    this.versions.set(version, policy);
    return { version, bucket: "local", name: `v${version}`, digest: "local" };
  }

  private policy(ref: WeightRef): Policy {
    const p = this.versions.get(ref.version);
    if (!p) throw new Error(`no local weights of version ${ref.version} were published`);
    return p;
  }

  private async answer<Q extends QueueName>(queue: Q, job: JobOf<Q>): Promise<Omit<ResultOf<Q>, "jobId">> {
    // Each queue's job type is fixed by the protocol table, so the narrowing below is exact.
    switch (queue) {
      case "prompts": {
        const j = job as JobOf<"prompts">;
        return answerPrompts(this.policy(j.weights), j) as Omit<ResultOf<Q>, "jobId">;
      }
      case "samples": {
        const j = job as JobOf<"samples">;
        return answerSamples(this.policy(j.weights), j) as Omit<ResultOf<Q>, "jobId">;
      }
      case "judge": {
        const j = job as JobOf<"judge">;
        const { body } = await answerJudge(
          this.judgeImpl,
          j,
          "local",
          async () => this.policy(j.weights),
          this.judgeExtras,
        );
        return body as Omit<ResultOf<Q>, "jobId">;
      }
      case "reference": {
        const j = job as JobOf<"reference">;
        return answerReference(this.policy(j.weights), j) as Omit<ResultOf<Q>, "jobId">;
      }
      default: {
        const j = job as JobOf<"logprobs">;
        return answerLogProbs(this.policy(j.weights), j) as Omit<ResultOf<Q>, "jobId">;
      }
    }
  }

  async submitAll<Q extends QueueName>(
    queue: Q,
    jobs: JobOf<Q>[],
    onDone: (done: number, total: number) => void = () => {},
  ): Promise<JobOutcome<ResultOf<Q>>[]> {
    const out: JobOutcome<ResultOf<Q>>[] = [];
    for (const job of jobs) {
      const jobId = `local-${queue}-${this.seq++}`;
      try {
        const body = await this.answer(queue, job);
        out.push({ ok: true, result: { ...body, jobId } as ResultOf<Q> });
      } catch (err) {
        out.push({ ok: false, jobId, reason: (err as Error).message });
      }
      onDone(out.length, jobs.length);
      // Long stages stay interruptible (signals, progress) as they are over NATS.
      await new Promise((r) => setImmediate(r));
    }
    return out;
  }
}
