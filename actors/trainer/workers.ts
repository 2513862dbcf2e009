// What the self-rewarding loop needs from the rest of the system, as small interfaces: workers
// that run jobs of the protocol's queues (write prompts, sample, judge, reference log-probs); the
// loop's other dependency, publishing weights, is LoopIO.publish. The NATS implementation is the
// JobBoard (jobs.ts); the in-process one (localWorkers.ts) serves probes and unit tests.
import type { JobOf, ResultOf } from "../../bus/protocol.ts";
import type { QueueName } from "../../bus/subjects.ts";

export type JobOutcome<R> = { ok: true; result: R } | { ok: false; jobId: string; reason: string };

export interface Workers {
  /** Runs every job of a stage; `onDone` as each settles; outcomes in job order. A failed job is an
   * outcome with its reason, never an exception and never a silent empty result. */
  submitAll<Q extends QueueName>(
    queue: Q,
    jobs: JobOf<Q>[],
    onDone?: (done: number, total: number) => void,
  ): Promise<JobOutcome<ResultOf<Q>>[]>;
}
