// The trainer's view of distributed work: enqueue jobs on a JetStream queue and wait for their
// results, whichever process on whichever host did them. A job that exhausted its deliveries
// comes back through the dead-letter subject and settles as failed, and every job has a deadline
// past which it settles as failed too, so a stage never hangs on it.
import { createHash } from "node:crypto";
import { type JetStreamClient, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { z } from "zod";
import { encode } from "../../bus/codec.ts";
import { type DeadLetterContext, deadLetter } from "../../bus/dead.ts";
import {
  decodeEnvelope,
  type Envelope,
  encodeEnvelope,
  makeEnvelope,
  type Producer,
} from "../../bus/envelope.ts";
import type { Logger } from "../../bus/log.ts";
import type { DeadLetterBody } from "../../bus/messages.ts";
import { type JobOf, PROTOCOL, queueOfResult, type ResultOf, resultProblem } from "../../bus/protocol.ts";
import { enqueue, type ResultReader, readResults, watchExhaustedJobs } from "../../bus/queues.ts";
import { type QueueName, RESULT_KINDS, type ResultKind, subjects } from "../../bus/subjects.ts";
import type { JobOutcome, Workers } from "./workers.ts";

export type { JobOutcome } from "./workers.ts";

export const DEFAULT_JOB_TIMEOUT_MS = 1_800_000;
export const DEFAULT_EARLY_LIMIT = 10_000;

export interface JobBoardOptions {
  /** How long a job may go without a result, queueing included, before it settles as failed (default 30 min). */
  timeoutMs?: number;
  /** Results kept for jobs nobody waits on (yet); the oldest beyond this are dropped (default 10 000). */
  earlyLimit?: number;
  log?: Logger;
}

export interface JobBoardCounts {
  /** Jobs settled as failed because their deadline passed. */
  timedOut: number;
  /** Results for unknown jobs dropped to keep the board bounded. */
  earlyDropped: number;
  /** Dead letters of the run seen, by the role that sent them. */
  deadLetters: Record<string, number>;
}

interface Waiter {
  queue: QueueName;
  job: unknown;
  resolve(outcome: JobOutcome<unknown>): void;
  deadline: NodeJS.Timeout;
}

/** The NATS implementation of the loop's workers: jobs on JetStream queues, any process answers. */
export class JobBoard implements Workers {
  private waiters = new Map<string, Waiter>();
  // Results that arrived before anyone waited (a fast actor), for jobs of an earlier trainer life,
  // or for jobs that already timed out. Nothing claims most of them, hence the bound.
  private early = new Map<string, { msg: Envelope; subject: string }>();
  readonly counts: JobBoardCounts = { timedOut: 0, earlyDropped: 0, deadLetters: {} };
  private timeoutMs: number;
  private earlyLimit: number;
  private log?: Logger;
  private readers: ResultReader[] = [];
  private deadSub?: Subscription;
  private exhausted?: { stop(): void };
  private seq = 0;
  private deadLetters: DeadLetterContext;

  private constructor(
    private nc: NatsConnection,
    private js: JetStreamClient,
    private run: string,
    private producer: Producer,
    options: JobBoardOptions,
  ) {
    this.deadLetters = { js, run, producer };
    this.timeoutMs = options.timeoutMs ?? DEFAULT_JOB_TIMEOUT_MS;
    this.earlyLimit = Math.max(1, options.earlyLimit ?? DEFAULT_EARLY_LIMIT);
    this.log = options.log;
  }

  static async open(
    nc: NatsConnection,
    js: JetStreamClient,
    run: string,
    producer: Producer,
    options: JobBoardOptions = {},
  ): Promise<JobBoard> {
    const board = new JobBoard(nc, js, run, producer, options);
    await board.listen();
    return board;
  }

  private settle(jobId: string, outcome: JobOutcome<unknown>): void {
    const waiter = this.waiters.get(jobId);
    if (!waiter) return;
    this.waiters.delete(jobId);
    clearTimeout(waiter.deadline);
    waiter.resolve(outcome);
  }

  private keepEarly(jobId: string, msg: Envelope, subject: string): void {
    this.early.delete(jobId);
    this.early.set(jobId, { msg, subject });
    if (this.early.size <= this.earlyLimit) return;
    const [oldest] = this.early.keys();
    this.early.delete(oldest);
    // One line per thousand drops: a flood of foreign results must not flood the log as well.
    if (this.counts.earlyDropped++ % 1000 === 0) {
      this.log?.warn(
        { dropped: this.counts.earlyDropped, limit: this.earlyLimit, job: oldest },
        "results for jobs nobody waits on exceed the bound; dropping the oldest",
      );
    }
  }

  private async listen(): Promise<void> {
    for (const kind of RESULT_KINDS) {
      const reader = await readResults(this.js, this.run, kind, {
        producer: this.producer,
        nc: this.nc,
        log: this.log,
      });
      this.readers.push(reader);
      void (async () => {
        for await (const record of reader) this.receive(kind, record.msg, record.subject);
      })();
    }
    // A job whose holder died on its last delivery comes back as a dead letter too.
    this.exhausted = watchExhaustedJobs(this.nc, await jetstreamManager(this.nc), {
      js: this.js,
      run: this.run,
      producer: this.producer,
    });
    this.deadSub = this.nc.subscribe(subjects(this.run).deadAll, {
      callback: (_err, m) => {
        // Every dead letter of the run is counted by the role that sent it, for the report.
        const from = m.subject.slice(m.subject.lastIndexOf(".") + 1);
        this.counts.deadLetters[from] = (this.counts.deadLetters[from] ?? 0) + 1;
        const dead = decodeEnvelope(m.subject, m.data);
        if (!dead.ok || dead.msg.type !== "dead.letter") return;
        const letter = dead.msg.body as DeadLetterBody;
        const job = decodeEnvelope(letter.subject, letter.raw);
        if (!job.ok) return;
        const waiter = this.waiters.get(job.msg.id);
        if (!waiter) return;
        // The subject's last token is the sending role (the server enforces it where permissions
        // are on): only the role that works a queue, or this trainer, may give up on its jobs.
        const sender = m.subject.slice(m.subject.lastIndexOf(".") + 1);
        const worker = PROTOCOL[waiter.queue].answeredBy;
        if (sender !== worker && sender !== this.producer.actor) {
          this.log?.warn(
            { job: job.msg.id, queue: waiter.queue, sender },
            `dead letter for a ${waiter.queue} job from a ${sender}; only a ${worker} or the trainer may fail it`,
          );
          return;
        }
        this.settle(job.msg.id, { ok: false, jobId: job.msg.id, reason: letter.reason });
      },
    });
  }

  /**
   * A result is taken only for a job this board issued and still waits on, of the type its queue
   * answers with, from the role that may answer it, and only if it fits the job (bus/protocol.ts
   * resultProblem). Anything else is dead-lettered with the reason and does not settle the job,
   * so a bad or forged result cannot stand in for a good one.
   */
  private receive(kind: ResultKind, msg: Envelope, subject: string): void {
    const queue = queueOfResult(kind);
    const problem = this.problemOf(queue, msg, subject);
    if (problem === "early") return;
    if (problem !== null) {
      deadLetter(this.deadLetters, subject, encodeEnvelope(msg), `result ${msg.id} refused: ${problem}`);
      return;
    }
    this.settle((msg.body as { jobId: string }).jobId, { ok: true, result: msg.body });
  }

  /** Why `msg` cannot settle its job, "early" when nobody waits for it yet, or null. */
  private problemOf(queue: QueueName, msg: Envelope, subject: string): string | null {
    const row = PROTOCOL[queue];
    const jobId = (msg.body as { jobId?: unknown }).jobId;
    if (msg.type !== row.result.type) return `${msg.type} on ${subject}, which carries ${row.result.type}`;
    if (typeof jobId !== "string") return "no jobId";
    if (msg.producer.actor !== row.answeredBy)
      return `from a ${msg.producer.actor}; only a ${row.answeredBy} answers ${queue} jobs`;
    const waiter = this.waiters.get(jobId);
    if (!waiter) {
      // A fast actor can answer before submit() registered the waiter; kept (bounded) for it.
      this.keepEarly(jobId, msg, subject);
      return "early";
    }
    return resultProblem(queue, waiter.job as JobOf<typeof queue>, msg.body as ResultOf<typeof queue>);
  }

  /** Jobs submitted so far (with those of earlier trainer lives restored by resumeAt). */
  get submitted(): number {
    return this.seq;
  }

  /**
   * Continues the job numbering of an earlier trainer life at the resume point it recorded. A
   * resumed trainer replays the same jobs in the same order, so they get the ids they had: the
   * work stream's de-duplication keeps a job that is still queued from being queued twice, and a
   * result the earlier life's job already has (the result stream is read from its start) settles
   * the replayed job without its being worked again.
   */
  resumeAt(seq: number): void {
    if (!Number.isInteger(seq) || seq < 0) throw new Error(`JobBoard.resumeAt: ${seq} is not a job count`);
    this.seq = seq;
  }

  /** Enqueues one job and resolves with its result (or its failure). */
  async submit<Q extends QueueName>(
    queue: Q,
    body: JobOf<Q>,
    policyVersion?: number,
  ): Promise<JobOutcome<ResultOf<Q>>> {
    // The id names what the job is (its body's digest) and its place in the run's sequence, never
    // when it was made: the same job replayed after a trainer restart gets the same id, and a
    // result can only ever settle a job with exactly the body it was computed for.
    const digest = createHash("sha256").update(encode(body)).digest("hex").slice(0, 16);
    const id = `${this.run}-${queue}-${(this.seq++).toString(36)}-${digest}`;
    const env = makeEnvelope(PROTOCOL[queue].job, body as z.input<(typeof PROTOCOL)[Q]["job"]["schema"]>, {
      run: this.run,
      producer: this.producer,
      policyVersion,
      id,
    });
    const outcome = new Promise<JobOutcome<ResultOf<Q>>>((resolve) => {
      const deadline = setTimeout(() => {
        this.counts.timedOut++;
        const reason = `job ${id} on queue ${queue} got no result within ${this.timeoutMs} ms (actors.jobTimeoutMs)`;
        this.log?.warn({ queue, job: id, timeoutMs: this.timeoutMs }, "job timed out");
        this.settle(id, { ok: false, jobId: id, reason });
      }, this.timeoutMs);
      this.waiters.set(id, {
        queue,
        job: env.body,
        resolve: resolve as (o: JobOutcome<unknown>) => void,
        deadline,
      });
    });
    try {
      await enqueue(this.js, this.run, queue, env, { msgID: id });
    } catch (err) {
      clearTimeout(this.waiters.get(id)?.deadline);
      this.waiters.delete(id);
      throw new Error(`could not enqueue job ${id} on queue ${queue}: ${(err as Error).message}`);
    }
    const early = this.early.get(id);
    if (early) {
      this.early.delete(id);
      this.receive(PROTOCOL[queue].resultKind, early.msg, early.subject);
    }
    return outcome;
  }

  /** Submits every job of a stage and calls `onDone` as each settles; results in submission order. */
  async submitAll<Q extends QueueName>(
    queue: Q,
    bodies: JobOf<Q>[],
    onDone: (done: number, total: number) => void = () => {},
  ): Promise<JobOutcome<ResultOf<Q>>[]> {
    let done = 0;
    return Promise.all(
      bodies.map(async (body) => {
        const outcome = await this.submit(queue, body);
        onDone(++done, bodies.length);
        return outcome;
      }),
    );
  }

  async close(): Promise<void> {
    this.deadSub?.unsubscribe();
    this.exhausted?.stop();
    await Promise.all(this.readers.map((r) => r.stop()));
    for (const [jobId] of this.waiters) this.settle(jobId, { ok: false, jobId, reason: "trainer stopping" });
  }
}
