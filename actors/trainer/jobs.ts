// The trainer's view of distributed work: enqueue jobs on a JetStream queue and wait for their
// results, whichever process on whichever host did them. A job that exhausted its deliveries
// comes back through the dead-letter subject and settles as failed, so a stage never hangs on it.
import { type JetStreamClient, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { decodeEnvelope, type Envelope, makeEnvelope, type Producer } from "../../bus/envelope.ts";
import type { DeadLetterBody } from "../../bus/messages.ts";
import { enqueue, type ResultReader, readResults, watchExhaustedJobs } from "../../bus/queues.ts";
import { type QueueName, RESULT_KINDS, subjects } from "../../bus/subjects.ts";

export type JobOutcome<R> =
  | { ok: true; result: R; msg: Envelope }
  | { ok: false; jobId: string; reason: string };

interface Waiter {
  resolve(outcome: JobOutcome<unknown>): void;
}

export class JobBoard {
  private waiters = new Map<string, Waiter>();
  // Results that arrived before anyone waited (a fast actor) or for jobs of an earlier trainer life.
  private early = new Map<string, Envelope>();
  private readers: ResultReader[] = [];
  private deadSub?: Subscription;
  private exhausted?: { stop(): void };
  private seq = 0;

  private constructor(
    private nc: NatsConnection,
    private js: JetStreamClient,
    private run: string,
    private producer: Producer,
  ) {}

  static async open(
    nc: NatsConnection,
    js: JetStreamClient,
    run: string,
    producer: Producer,
  ): Promise<JobBoard> {
    const board = new JobBoard(nc, js, run, producer);
    await board.listen();
    return board;
  }

  private settle(jobId: string, outcome: JobOutcome<unknown>): void {
    const waiter = this.waiters.get(jobId);
    if (!waiter) return;
    this.waiters.delete(jobId);
    waiter.resolve(outcome);
  }

  private async listen(): Promise<void> {
    for (const kind of RESULT_KINDS) {
      const reader = await readResults(this.js, this.run, kind, { producer: this.producer });
      this.readers.push(reader);
      void (async () => {
        for await (const record of reader) {
          const jobId = (record.msg.body as { jobId?: string }).jobId;
          if (!jobId) continue;
          if (this.waiters.has(jobId))
            this.settle(jobId, { ok: true, result: record.msg.body, msg: record.msg });
          else this.early.set(jobId, record.msg);
        }
      })();
    }
    // A job whose holder died on its last delivery comes back as a dead letter too.
    this.exhausted = watchExhaustedJobs(this.nc, await jetstreamManager(this.nc), {
      js: this.js,
      run: this.run,
      producer: this.producer,
    });
    this.deadSub = this.nc.subscribe(subjects(this.run).dead, {
      callback: (_err, m) => {
        const dead = decodeEnvelope(m.subject, m.data);
        if (!dead.ok || dead.msg.type !== "dead.letter") return;
        const letter = dead.msg.body as DeadLetterBody;
        const job = decodeEnvelope(letter.subject, letter.raw);
        if (job.ok) this.settle(job.msg.id, { ok: false, jobId: job.msg.id, reason: letter.reason });
      },
    });
  }

  /** Enqueues one job and resolves with its result (or its failure). */
  async submit<R>(
    queue: QueueName,
    type: string,
    body: unknown,
    policyVersion?: number,
  ): Promise<JobOutcome<R>> {
    const id = `${this.run}-${queue}-${Date.now().toString(36)}-${(this.seq++).toString(36)}`;
    const env = makeEnvelope(type, body as never, {
      run: this.run,
      producer: this.producer,
      policyVersion,
      id,
    });
    const outcome = new Promise<JobOutcome<R>>((resolve) => {
      this.waiters.set(id, { resolve: resolve as (o: JobOutcome<unknown>) => void });
    });
    await enqueue(this.js, this.run, queue, env, { msgID: id });
    const early = this.early.get(id);
    if (early) {
      this.early.delete(id);
      this.settle(id, { ok: true, result: early.body, msg: early });
    }
    return outcome;
  }

  /** Submits every job of a stage and calls `onDone` as each settles; results in submission order. */
  async submitAll<R>(
    queue: QueueName,
    type: string,
    bodies: unknown[],
    onDone: (done: number, total: number) => void = () => {},
    policyVersion?: number,
  ): Promise<JobOutcome<R>[]> {
    let done = 0;
    return Promise.all(
      bodies.map(async (body) => {
        const outcome = await this.submit<R>(queue, type, body, policyVersion);
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
