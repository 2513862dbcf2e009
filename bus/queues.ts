// Durable work on JetStream. Per run:
// - SRLM_<run>_WORK: work-queue retention over `srlm.<run>.work.>`; one durable pull consumer per
//   queue (one filter subject each, as nats-server 2.9 requires), explicit ack. A job leaves the
//   stream only when a handler acks it (or it is dead-lettered and term()'d), so a crashed actor
//   loses nothing: after ack_wait the server hands the job to another consumer.
// - SRLM_<run>_RESULTS: limits retention over `srlm.<run>.result.>` with a duplicate window.
//   Results are published with a msgID derived from the job id, so a redelivered job that runs
//   twice stores its result once.
// - SRLM_<run>_EVENTS: limits retention over weights/metrics/events/dead/control, for replay (tap).
import {
  AckPolicy,
  type Consumer,
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type PubAck,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { millis, type NatsConnection, nanos } from "@nats-io/transport-node";
import { type DeadLetterContext, deadLetter } from "./dead.ts";
import { decodeEnvelope, type Envelope, encodeEnvelope, type Producer } from "./envelope.ts";
import type { Logger } from "./log.ts";
import { type BusStats, createStats, markActivity } from "./stats.ts";
import { QUEUES, type QueueName, type ResultKind, subjects } from "./subjects.ts";

export const DEFAULT_ACK_WAIT_MS = 30_000;
export const DEFAULT_MAX_DELIVER = 5;
/** Covers a job's whole redelivery life (max_deliver × ack_wait plus nak backoff) with room to spare. */
export const DEFAULT_DUPLICATE_WINDOW_MS = 30 * 60_000;

export interface StreamOptions {
  /** Results de-duplication window (default 30 min). */
  duplicateWindowMs?: number;
  /** Age limit of events/metrics/dead letters (default 7 days). */
  eventsMaxAgeMs?: number;
  /** Copies of each stream on a cluster (default 1; nats.replicas). */
  replicas?: number;
}

export interface WorkConsumerOptions {
  /** How long a delivered job may go without ack or heartbeat before redelivery (default 30 s). */
  ackWaitMs?: number;
  /** Deliveries before a failing job is dead-lettered (default 5). */
  maxDeliver?: number;
  /**
   * Apply ackWaitMs / maxDeliver to a consumer that already exists. Only the process that owns the
   * run's settings (the trainer) sets this: a worker joining later, started by hand with its own
   * defaults, must not change how long the run's jobs wait or how often they are retried.
   */
  reconfigure?: boolean;
}

function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; code?: number; api_error?: { code?: number } };
  return (
    e?.name === "StreamNotFoundError" ||
    e?.name === "ConsumerNotFoundError" ||
    e?.code === 404 ||
    e?.api_error?.code === 404
  );
}

async function ensureStream(
  jsm: JetStreamManager,
  config: Parameters<JetStreamManager["streams"]["add"]>[0],
): Promise<void> {
  try {
    try {
      await jsm.streams.info(config.name);
      await jsm.streams.update(config.name, config);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await jsm.streams.add(config);
    }
  } catch (err) {
    throw new Error(
      `could not create or update stream ${config.name} with ${config.num_replicas ?? 1} replica(s) ` +
        `(nats.replicas): ${(err as Error).message}`,
    );
  }
}

/** nats.replicas, checked here too: the bus is used without the config schema (tests, benches). */
export function checkReplicas(replicas: number | undefined): number {
  const n = replicas ?? 1;
  if (!Number.isInteger(n) || n < 1 || n > 5)
    throw new Error(`nats.replicas is ${replicas}; JetStream keeps 1 to 5 copies of a stream`);
  return n;
}

/** Creates (or updates) the run's streams and the durable consumer of every work queue. Idempotent. */
export async function ensureStreams(
  jsm: JetStreamManager,
  run: string,
  opts: StreamOptions & WorkConsumerOptions = {},
): Promise<void> {
  const s = subjects(run);
  const num_replicas = checkReplicas(opts.replicas);
  await ensureStream(jsm, {
    name: s.workStream,
    subjects: [s.workAll],
    retention: RetentionPolicy.Workqueue,
    storage: StorageType.File,
    num_replicas,
  });
  await ensureStream(jsm, {
    name: s.resultStream,
    subjects: [s.resultAll],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas,
    duplicate_window: nanos(opts.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS),
  });
  await ensureStream(jsm, {
    name: s.eventStream,
    subjects: [s.weights, s.metrics, s.events, s.deadAll, s.control],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas,
    max_age: nanos(opts.eventsMaxAgeMs ?? 7 * 24 * 3600_000),
  });
  // Settings given here are the run's own (the trainer's), so they apply to existing consumers too.
  for (const q of QUEUES) await ensureWorkConsumer(jsm, run, q, { reconfigure: true, ...opts });
}

/**
 * Creates the queue's durable consumer if missing. An existing consumer keeps its settings unless
 * `reconfigure` is set and `ackWaitMs` / `maxDeliver` differ.
 */
export async function ensureWorkConsumer(
  jsm: JetStreamManager,
  run: string,
  queue: QueueName,
  opts: WorkConsumerOptions = {},
): Promise<void> {
  const s = subjects(run);
  const name = s.workConsumer(queue);
  try {
    const { config } = await jsm.consumers.info(s.workStream, name);
    if (!opts.reconfigure) return;
    const update: { ack_wait?: number; max_deliver?: number } = {};
    if (opts.ackWaitMs !== undefined && config.ack_wait !== nanos(opts.ackWaitMs))
      update.ack_wait = nanos(opts.ackWaitMs);
    if (opts.maxDeliver !== undefined && config.max_deliver !== opts.maxDeliver)
      update.max_deliver = opts.maxDeliver;
    if (Object.keys(update).length > 0) await jsm.consumers.update(s.workStream, name, update);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await jsm.consumers.add(s.workStream, {
      durable_name: name,
      filter_subject: s.work(queue),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(opts.ackWaitMs ?? DEFAULT_ACK_WAIT_MS),
      max_deliver: opts.maxDeliver ?? DEFAULT_MAX_DELIVER,
      // Delivered-but-unacked jobs across all consumers of the queue; bounds work held by crashed actors.
      max_ack_pending: 10_000,
    });
  }
}

export interface PublishOptions {
  /** JetStream de-duplication id: a second publish with the same id within the window is dropped. */
  msgID?: string;
}

/**
 * How long a publish with a msgID is tried again while no stream confirms it: a restarting server
 * (JetStream still loading its store) or a cluster electing a new stream leader answers with a
 * timeout or no responders for a while, and the de-duplication id makes a repeat harmless.
 */
export const PUBLISH_RETRY_MS = 60_000;

function retryablePublishError(err: unknown): boolean {
  const name = (err as { name?: string })?.name;
  return name === "TimeoutError" || name === "JetStreamNotEnabled";
}

async function publishConfirmed(
  js: JetStreamClient,
  subject: string,
  data: Uint8Array,
  msgID: string | undefined,
  retryMs: number,
): Promise<PubAck> {
  if (!msgID) return js.publish(subject, data);
  const deadline = Date.now() + retryMs;
  for (let attempt = 0; ; attempt++) {
    try {
      // A request sent while the client reconnects, to a server that has not loaded its streams
      // yet, or to a stream electing its leader gets no answer at all, however long it waits: short
      // waits try again soon after the stream is back; a slowly growing one leaves room for a slow link.
      return await js.publish(subject, data, { msgID, timeout: Math.min(5000, 1000 + 500 * attempt) });
    } catch (err) {
      if (!retryablePublishError(err) || Date.now() >= deadline) throw err;
      await new Promise((r) => setTimeout(r, Math.min(1000, 100 * 2 ** attempt)));
    }
  }
}

export async function enqueue(
  js: JetStreamClient,
  run: string,
  queue: QueueName,
  env: Envelope,
  opts: PublishOptions & { retryMs?: number } = {},
): Promise<PubAck> {
  return publishConfirmed(
    js,
    subjects(run).work(queue),
    encodeEnvelope(env),
    opts.msgID,
    opts.retryMs ?? PUBLISH_RETRY_MS,
  );
}

/** Publishes a result; pass a msgID derived from the job id so redelivered jobs store one result. */
export async function publishResult(
  js: JetStreamClient,
  run: string,
  kind: ResultKind,
  env: Envelope,
  msgID: string,
  retryMs = PUBLISH_RETRY_MS,
): Promise<PubAck> {
  return publishConfirmed(js, subjects(run).result(kind), encodeEnvelope(env), msgID, retryMs);
}

/** The msgID of the result a job yields; `part` tells apart several results of one job. */
export function resultMsgID(jobId: string, part?: string | number): string {
  return part === undefined ? `${jobId}:result` : `${jobId}:result:${part}`;
}

export interface JobControl {
  /** Tells the server the job is still being worked on (resets ack_wait). Also sent automatically. */
  working(): void;
  /** 1 on the first delivery. */
  deliveryCount: number;
  subject: string;
  /** Aborted when the consumer stops and the grace period ran out: abandon the job. */
  signal: AbortSignal;
}

export type JobHandler = (msg: Envelope, ctl: JobControl) => Promise<void>;

export interface ConsumeOptions extends WorkConsumerOptions {
  /** Jobs handled at the same time by this process (default 1). */
  concurrency?: number;
  /** Delay before a failed job is redelivered, by delivery count (default 1 s doubling, max 30 s). */
  nakDelayMs?: (deliveryCount: number) => number;
  /** How long stop() lets in-flight jobs finish before nak'ing them (default 10 s). */
  graceMs?: number;
  /** Longest wait of one pull request (default 2 s); bounds how long stop() waits for idle pulls. */
  pullExpiresMs?: number;
  /** Who dead-letters and logs (defaults: the queue's consumer name). */
  producer?: Producer;
  log?: Logger;
  stats?: BusStats;
  /**
   * Create/update the durable consumer before consuming (default true). Workers pass false: only
   * the trainer may create consumers (bus/permissions.ts), so they wait for it instead.
   */
  ensure?: boolean;
  /** Ends the wait for a consumer that does not exist yet (with `ensure: false`). */
  signal?: AbortSignal;
  /** The one message type this queue carries (bus/protocol.ts); any other is dead-lettered at once. */
  expectType?: string;
}

export interface ConsumeHandle {
  /** Stops pulling, lets in-flight handlers finish (nak'ing them after graceMs), resolves when done. */
  stop(): Promise<void>;
  /** Resolves when the consume loop ended (after stop(), or on a fatal error, which it rejects with). */
  done: Promise<void>;
  stats: BusStats;
  /** Jobs waiting in the queue and jobs delivered but not yet acked (all consumers). */
  lag(): Promise<{ pending: number; ackPending: number }>;
}

const defaultNakDelay = (n: number) => Math.min(30_000, 1000 * 2 ** Math.max(0, n - 1));

export async function consume(
  js: JetStreamClient,
  run: string,
  queue: QueueName,
  handler: JobHandler,
  opts: ConsumeOptions = {},
): Promise<ConsumeHandle> {
  const s = subjects(run);
  const nakDelay = opts.nakDelayMs ?? defaultNakDelay;
  const graceMs = opts.graceMs ?? 10_000;
  const expires = Math.max(1000, opts.pullExpiresMs ?? 2000);
  const stats = opts.stats ?? createStats();
  const producer = opts.producer ?? { actor: s.workConsumer(queue), instance: "0" };
  const log = opts.log;
  const dl = { js, run, producer, log, stats };

  if (opts.ensure !== false) await ensureWorkConsumer(await js.jetstreamManager(), run, queue, opts);
  const consumer: Consumer = await bindWorkConsumer(js, run, queue, { log, signal: opts.signal });
  // The server's settings rule (another process may have configured the run).
  const { config } = await consumer.info(true);
  const ackWaitMs = millis(config.ack_wait ?? nanos(DEFAULT_ACK_WAIT_MS));
  const maxDeliver =
    config.max_deliver && config.max_deliver > 0 ? config.max_deliver : Number.POSITIVE_INFINITY;

  let stopping = false;
  const abort = new AbortController();
  const held = new Set<JsMsg>();

  async function handle(m: JsMsg): Promise<void> {
    const decoded = decodeEnvelope(m.subject, m.data);
    if (!decoded.ok) {
      deadLetter(dl, m.subject, m.data, decoded.reason);
      // No reason argument: nats-server 2.9 does not understand `+TERM <reason>` and ignores it.
      m.term();
      return;
    }
    if (opts.expectType !== undefined && decoded.msg.type !== opts.expectType) {
      // Retrying cannot make a message of the wrong type right: no handler is called for it.
      deadLetter(
        dl,
        m.subject,
        m.data,
        `${decoded.msg.type} on ${m.subject}, which carries ${opts.expectType}`,
      );
      m.term();
      return;
    }
    const deliveryCount = m.info.deliveryCount;
    held.add(m);
    markActivity(stats, 1);
    const beat = setInterval(() => m.working(), Math.max(250, Math.floor(ackWaitMs / 3)));
    try {
      await handler(decoded.msg, {
        working: () => m.working(),
        deliveryCount,
        subject: m.subject,
        signal: abort.signal,
      });
      if (held.has(m)) {
        m.ack();
        stats.processed++;
      }
    } catch (err) {
      stats.failed++;
      const message = err instanceof Error ? err.message : String(err);
      if (!held.has(m)) {
        // stop() already nak'd this job after the grace period.
      } else if (deliveryCount >= maxDeliver) {
        deadLetter(
          dl,
          m.subject,
          m.data,
          `job ${decoded.msg.id} failed on all ${deliveryCount} deliveries; last error: ${message}`,
        );
        m.term();
      } else {
        const delay = nakDelay(deliveryCount);
        log?.warn(
          { queue, job: decoded.msg.id, deliveryCount, delay, err: message },
          "job failed; will be redelivered",
        );
        m.nak(delay);
      }
    } finally {
      clearInterval(beat);
      held.delete(m);
      markActivity(stats, -1);
    }
  }

  async function slot(): Promise<void> {
    while (!stopping) {
      let m: JsMsg | null;
      try {
        m = await consumer.next({ expires });
      } catch (err) {
        if (stopping) return;
        log?.warn({ queue, err: (err as Error).message }, "pull failed; retrying");
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      if (!m) continue;
      if (stopping) {
        m.nak();
        return;
      }
      await handle(m);
    }
  }

  const slots = Array.from({ length: Math.max(1, opts.concurrency ?? 1) }, () => slot());
  const done = Promise.all(slots).then(() => undefined);

  async function stop(): Promise<void> {
    if (stopping) return done;
    stopping = true;
    const finished = await Promise.race([
      done.then(() => true),
      new Promise<boolean>((r) => setTimeout(() => r(false), graceMs).unref()),
    ]);
    if (!finished) {
      for (const m of held) {
        log?.warn(
          { queue, subject: m.subject, seq: m.seq },
          "job still running at stop; nak'd for redelivery",
        );
        m.nak();
      }
      held.clear();
      abort.abort(new Error(`consumer of ${queue} stopped`));
      // A handler that ignores the abort signal must not hold the process forever.
      await Promise.race([done, new Promise((r) => setTimeout(r, graceMs).unref())]);
      return;
    }
    await done;
  }

  async function lag() {
    const info = await consumer.info();
    return { pending: info.num_pending, ackPending: info.num_ack_pending };
  }

  return { stop, done, stats, lag };
}

/** How often a worker waiting for the run's streams says so in its log. */
export const WAIT_LOG_EVERY_MS = 30_000;

/**
 * The queue's durable consumer, once it exists. A worker may start before the trainer has created
 * the run's streams (`srlm up` with the trainer started later, a generator on another host), so a
 * missing stream or consumer is waited for, with a log line now and then naming what is missing,
 * rather than created here with rights a worker does not have.
 */
export async function bindWorkConsumer(
  js: JetStreamClient,
  run: string,
  queue: QueueName,
  opts: { log?: Logger; signal?: AbortSignal; pollMs?: number } = {},
): Promise<Consumer> {
  const s = subjects(run);
  const started = Date.now();
  let lastLog = 0;
  for (;;) {
    try {
      return await js.consumers.get(s.workStream, s.workConsumer(queue));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (opts.signal?.aborted) {
      throw new Error(`stopped while waiting for consumer ${s.workConsumer(queue)} on ${s.workStream}`);
    }
    if (Date.now() - lastLog >= WAIT_LOG_EVERY_MS) {
      lastLog = Date.now();
      opts.log?.warn(
        { queue, stream: s.workStream, consumer: s.workConsumer(queue), waitedMs: lastLog - started },
        "the run's work queue does not exist yet; waiting for its trainer to create it",
      );
    }
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 1000));
  }
}

export interface ResultRecord {
  /** Stream sequence; resume after it with `fromSeq: seq + 1`. */
  seq: number;
  subject: string;
  msg: Envelope;
}

export interface ReadResultsOptions {
  /** First stream sequence to read (default 1: everything kept). */
  fromSeq?: number;
  producer?: Producer;
  log?: Logger;
  stats?: BusStats;
  /**
   * The connection `js` stands on. Given, a reconnect starts a fresh ordered consumer at once (see
   * readResults); without it only the heartbeats notice a lost consumer.
   */
  nc?: NatsConnection;
}

export interface ResultReader extends AsyncIterable<ResultRecord> {
  stop(): Promise<void>;
}

/**
 * Longest wait of one pull of a result reader. The server sends idle heartbeats every half of it,
 * and two missed heartbeats make the reader start over, so this bounds how long a consumer that
 * vanished without a disconnect (its cluster node died) goes unnoticed.
 */
export const RESULT_PULL_EXPIRES_MS = 4_000;

/**
 * Reads results of one kind in stream order with an ordered consumer. The trainer keeps the last
 * `seq` it used in its checkpoint and resumes with `fromSeq`, so a restart neither skips nor repeats.
 * Invalid messages are dead-lettered and skipped.
 *
 * An ordered consumer is ephemeral and held in memory: a restarted server has forgotten it, and a
 * client that reconnects to another cluster node may find it gone with its node. nats.js would
 * find out by missed heartbeats and then back off for a whole pull expiry between checks, while
 * the results of every job in flight wait. So on each reconnect (and on missed heartbeats) the
 * reader drops its consumer and makes a new one that starts after the last sequence it delivered;
 * anything delivered twice in the switch is skipped by sequence.
 */
export async function readResults(
  js: JetStreamClient,
  run: string,
  kind: ResultKind,
  opts: ReadResultsOptions = {},
): Promise<ResultReader> {
  const s = subjects(run);
  const dl = {
    js,
    run,
    producer: opts.producer ?? { actor: "results-reader", instance: "0" },
    log: opts.log,
    stats: opts.stats,
  };
  let next = opts.fromSeq && opts.fromSeq > 1 ? opts.fromSeq : 1;
  let stopped = false;
  const open = async (): Promise<ConsumerMessages> => {
    const consumer = await js.consumers.get(s.resultStream, {
      filter_subjects: s.result(kind),
      ...(next > 1
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: next }
        : { deliver_policy: DeliverPolicy.All }),
    });
    const messages = await consumer.consume({ expires: RESULT_PULL_EXPIRES_MS });
    void (async () => {
      for await (const status of messages.status()) {
        if (status.type === "heartbeats_missed") {
          opts.log?.warn({ kind, missed: status.count }, "result consumer missed heartbeats; starting over");
          void messages.stop();
          return;
        }
      }
    })().catch(() => {});
    return messages;
  };
  // The first consumer's failure is the caller's to see (no stream yet, no permission).
  let current: ConsumerMessages = await open();
  const reopen = async (): Promise<ConsumerMessages | null> => {
    for (let attempt = 0; !stopped && !opts.nc?.isClosed(); attempt++) {
      try {
        const messages = await open();
        if (!stopped) return messages;
        await messages.close();
        return null;
      } catch (err) {
        if (attempt % 20 === 0)
          opts.log?.warn(
            { kind, from: next, err: (err as Error).message },
            "result consumer not back yet; retrying",
          );
        await new Promise((r) => setTimeout(r, Math.min(1000, 100 * 2 ** attempt)));
      }
    }
    return null;
  };
  // A QueuedIterator at runtime: stop() takes it off the connection's listeners.
  const status = opts.nc?.status() as (AsyncIterable<{ type: string }> & { stop?: () => void }) | undefined;
  if (status) {
    void (async () => {
      for await (const st of status) {
        if (stopped) return;
        if (st.type === "reconnect") void current.stop();
      }
    })().catch(() => {});
  }
  async function* iterate(): AsyncGenerator<ResultRecord> {
    for (;;) {
      try {
        for await (const m of current) {
          if (m.seq < next) continue;
          next = m.seq + 1;
          const decoded = decodeEnvelope(m.subject, m.data);
          if (!decoded.ok) {
            deadLetter(dl, m.subject, m.data, decoded.reason);
            continue;
          }
          yield { seq: m.seq, subject: m.subject, msg: decoded.msg };
        }
      } catch (err) {
        // nats.js ends a consumer it could not recreate with an error; another one may well work.
        if (!stopped)
          opts.log?.warn({ kind, err: (err as Error).message }, "result consumer ended; starting over");
      }
      if (stopped || opts.nc?.isClosed()) return;
      const messages = await reopen();
      if (!messages) return;
      current = messages;
    }
  }
  return {
    [Symbol.asyncIterator]: iterate,
    async stop() {
      stopped = true;
      status?.stop?.();
      await current.close();
    },
  };
}

/**
 * Jobs whose last allowed delivery died with its process (SIGKILL, OOM) are never nak'd, so no
 * consumer dead-letters them; the server only announces them in a MAX_DELIVERIES advisory. This
 * watcher turns each such advisory into a dead letter carrying the job's bytes, and removes the job
 * from the work stream, so whoever waits on it learns it failed. One process per run should run it
 * (the trainer does).
 */
export function watchExhaustedJobs(
  nc: NatsConnection,
  jsm: JetStreamManager,
  dl: DeadLetterContext,
): { stop(): void } {
  const s = subjects(dl.run);
  const subject = `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${s.workStream}.*`;
  const sub = nc.subscribe(subject, {
    callback: (_err, m) => {
      void (async () => {
        let advisory: { stream_seq?: number; deliveries?: number; consumer?: string };
        try {
          advisory = JSON.parse(new TextDecoder().decode(m.data));
        } catch {
          return;
        }
        const seq = advisory.stream_seq;
        if (!seq) return;
        try {
          const job = await jsm.streams.getMessage(s.workStream, { seq });
          if (!job) return;
          deadLetter(
            dl,
            job.subject,
            job.data,
            `job exhausted its ${advisory.deliveries ?? "?"} deliveries on ${advisory.consumer ?? "?"} ` +
              "without an ack or nak (the process holding it died)",
          );
          await jsm.streams.deleteMessage(s.workStream, seq);
        } catch (err) {
          dl.log?.warn({ seq, err: (err as Error).message }, "could not dead-letter an exhausted job");
        }
      })();
    },
  });
  return { stop: () => sub.unsubscribe() };
}
