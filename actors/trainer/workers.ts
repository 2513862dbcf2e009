// What a method's loop (self-rewarding, ReFT) needs from the rest of the system, as small
// interfaces: workers that run jobs of the protocol's queues (write prompts, sample, judge,
// reference log-probs), and the rest of LoopIO (publishing weights, progress, the operator's
// gate). The NATS implementation is the trainer actor's (main.ts, the JobBoard of jobs.ts); the
// in-process one (localWorkers.ts) serves probes and unit tests.
import type { Logger } from "pino";
import type { WeightRef } from "../../bus/messages.ts";
import type { JobOf, ResultOf } from "../../bus/protocol.ts";
import type { QueueName } from "../../bus/subjects.ts";
import type { Policy } from "../policy.ts";
import type { ActorUsage, BusCounts } from "./report.ts";
import type { MethodResume } from "./resume.ts";

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

export interface LoopIO {
  workers: Workers;
  /** Makes `policy`'s weights available to the workers as `version`. */
  publish(version: number, policy: Policy): Promise<WeightRef>;
  log: Logger;
  backend: string;
  progress(stage: string, iteration: number, done: number, total: number, detail?: string): void;
  /** Resolves when the run may go on: waits while an operator has paused it (srlm control pause);
   * throws RunStopped after `srlm control stop`. */
  gate(): Promise<void>;
  metrics(iteration: number, values: Record<string, number>): void;
  /** How busy each worker process was (empty in-process). */
  actorStats(): Promise<ActorUsage[]>;
  /** What the transport refused or lost over the run (absent in-process). */
  busCounts?(): BusCounts;
  /** Durable progress (resume.ts): the state to go on from after a restart, and a place to record
   * it (self-rewarding: after M1 and after each iteration; ReFT: after the reranker and after each
   * PPO update). load() refuses a point of another method. Absent in-process. */
  resume?: {
    load(): Promise<(MethodResume & { policy: Policy }) | null>;
    /** False when the point was not recorded (a stopping trainer records none). */
    save(resume: MethodResume): boolean;
  };
}

/** An operator stopped the run (`srlm control stop`): not a failure. */
export class RunStopped extends Error {
  constructor() {
    super("stopped by `srlm control stop`");
    this.name = "RunStopped";
  }
}
