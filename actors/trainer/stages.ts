// What every method's loop keeps about its stages: seconds per stage (how much of the run the
// trainer computed and how much it waited), and jobs per stage with the ones that failed, by reason.
// A failed job is never turned into an empty answer; past `maxFailedShare` of a stage's jobs the run
// stops with an error naming the stage.
import type { Logger } from "pino";
import type { JobOf, ResultOf } from "../../bus/protocol.ts";
import type { QueueName } from "../../bus/subjects.ts";
import type { Policy } from "../policy.ts";
import type { StageFailures } from "./report.ts";
import type { JobOutcome, Workers } from "./workers.ts";

/** Too many jobs of a stage failed to go on: the error names the stage and the reasons. */
export class StageFailed extends Error {
  constructor(stage: string, failures: { jobs: number; failed: number; reasons: Record<string, number> }) {
    const reasons = Object.entries(failures.reasons)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .map(([r, n]) => `${n}× ${r}`)
      .join("; ");
    super(`stage "${stage}": ${failures.failed} of ${failures.jobs} jobs failed (${reasons})`);
    this.name = "StageFailed";
  }
}

export class StageBook {
  seconds: Record<string, number> = {};
  failures: StageFailures = {};
  /** Seconds spent in the stages that are the trainer's own compute. */
  trainingSeconds = 0;

  constructor(
    private readonly io: { workers: Workers; log: Logger; gate(): Promise<void> },
    private readonly maxFailedShare: number,
    private readonly trainingStages: ReadonlySet<string>,
    /** Sees every stage's judge results (who judged what, for the report). */
    private readonly onJudged: (stage: string, results: ResultOf<"judge">[]) => void = () => {},
  ) {}

  /** Runs `fn` as `stage`, after the operator's gate: a pause takes effect at stage boundaries. */
  async timed<T>(stage: string, fn: () => Promise<T> | T): Promise<T> {
    await this.io.gate();
    const start = performance.now();
    try {
      return await fn();
    } finally {
      const seconds = (performance.now() - start) / 1000;
      this.seconds[stage] = (this.seconds[stage] ?? 0) + seconds;
      if (this.trainingStages.has(stage)) this.trainingSeconds += seconds;
    }
  }

  /** Runs a stage's jobs on the workers, counting the failed ones by reason. */
  async jobs<Q extends QueueName>(
    stage: string,
    queue: Q,
    jobs: JobOf<Q>[],
    onDone?: (done: number, total: number) => void,
  ): Promise<JobOutcome<ResultOf<Q>>[]> {
    const outcomes = await this.io.workers.submitAll(queue, jobs, onDone);
    this.failures[stage] ??= { jobs: 0, failed: 0, reasons: {} };
    const f = this.failures[stage];
    f.jobs += outcomes.length;
    for (const o of outcomes) {
      if (o.ok) continue;
      f.failed++;
      f.reasons[o.reason] = (f.reasons[o.reason] ?? 0) + 1;
      this.io.log.error({ stage, jobId: o.jobId, reason: o.reason }, "job failed");
    }
    if (queue === "judge")
      this.onJudged(
        stage,
        outcomes.flatMap((o) => (o.ok ? [o.result as ResultOf<"judge">] : [])),
      );
    if (f.failed > this.maxFailedShare * f.jobs) throw new StageFailed(stage, f);
    return outcomes;
  }

  /** The failures since the last call (one iteration's or update's). */
  takeFailures(): StageFailures {
    const f = this.failures;
    this.failures = {};
    return f;
  }

  /** The stage seconds since the last call. */
  takeSeconds(): Record<string, number> {
    const s = this.seconds;
    this.seconds = {};
    return s;
  }
}

/** Weights that are not finite must never reach a worker or a checkpoint folder. */
export function assertFiniteWeights(policy: Policy, version: number): void {
  for (const [name, w] of policy.model.getWeights())
    if (!w.data.every(Number.isFinite))
      throw new Error(`weights of version ${version}: ${name} holds non-finite values`);
}

export const chunk = <T>(items: readonly T[], size: number): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
};

export const mean = (xs: readonly number[]) =>
  xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN;
