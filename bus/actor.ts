// The runtime every actor process stands on: connect, announce itself as a NATS service (discoverable with ping/info/stats), run the actor's start(), and on
// SIGINT/SIGTERM stop taking work, finish or nak what it holds, drain and exit 0. A crash exits
// non-zero without acking, so JetStream hands its jobs to another process.
import { hostname } from "node:os";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { type Service, Svcm } from "@nats-io/services";
import type { NatsConnection } from "@nats-io/transport-node";
import { type BusOptions, connectBus } from "./connect.ts";
import type { DeadLetterContext } from "./dead.ts";
import { type Envelope, encodeEnvelope, makeEnvelope, type Producer } from "./envelope.ts";
import { createLogger, type Logger } from "./log.ts";
import { ActorEvent, type ActorEventBody } from "./messages.ts";
import { type JobEnvelope, PROTOCOL } from "./protocol.ts";
import {
  type ConsumeHandle,
  type ConsumeOptions,
  consume as consumeQueue,
  type JobControl,
  type JobHandler,
} from "./queues.ts";
import { type BusStats, createStats, idleMs } from "./stats.ts";
import { assertRunId, type QueueName, subjects } from "./subjects.ts";

export interface ActorContext {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  log: Logger;
  run: string;
  actor: string;
  instance: string;
  producer: Producer;
  stats: BusStats;
  /** Where this actor's dead letters go (bus/dead.ts), for subscriptions outside the work queues. */
  deadLetters: DeadLetterContext;
  /**
   * Consumes a work queue with the job type of bus/protocol.ts (others are dead-lettered); the
   * runtime stops it (and naks held jobs) on shutdown.
   */
  consume<Q extends QueueName>(
    queue: Q,
    handler: (job: JobEnvelope<Q>, ctl: JobControl) => Promise<void>,
    opts?: ConsumeOptions,
  ): Promise<ConsumeHandle>;
  /** Wraps body in an envelope of `type` and publishes it through JetStream (all run subjects are stored). */
  publish(subject: string, type: string, body: unknown, extra?: PublishExtra): Promise<Envelope>;
  /** Runs fn on shutdown, after consumers stopped, in reverse order of registration. */
  onStop(fn: () => Promise<void> | void): void;
  /** Aborted when shutdown begins. */
  signal: AbortSignal;
}

export interface PublishExtra {
  policyVersion?: number;
  id?: string;
  /** JetStream de-duplication id. */
  msgID?: string;
}

export interface ActorSpec {
  actor: "generator" | "judge" | "reference" | "trainer" | (string & {});
  /** Which implementation of the actor role runs (e.g. "self-judge", "verifier", "http"). */
  impl: string;
  /** Defaults to `<host>-<pid>`. */
  instance?: string;
  run: string;
  bus: BusOptions;
  /** Semver of the actor implementation, reported by the services API. */
  version: string;
  start: (ctx: ActorContext) => Promise<void | (() => Promise<void>)>;
  /** Install SIGINT/SIGTERM and crash handlers that end the process (default true). */
  handleSignals?: boolean;
  /** Replaces the pino logger (tests). */
  log?: Logger;
}

export interface ActorHandle {
  ctx: ActorContext;
  /** Graceful shutdown; resolves once drained. Does not exit the process. */
  stop(reason?: string): Promise<void>;
  service: Service;
}

const NAME = /^[A-Za-z0-9_-]+$/;

function subjectToken(s: string): string {
  return s.replace(/[^A-Za-z0-9_-]/g, "_");
}

export async function runActor(spec: ActorSpec): Promise<ActorHandle> {
  const run = assertRunId(spec.run);
  if (!NAME.test(spec.actor)) throw new Error(`actor name ${JSON.stringify(spec.actor)} must match ${NAME}`);
  const instance = spec.instance ?? `${hostname()}-${process.pid}`;
  const producer: Producer = { actor: spec.actor, instance };
  const log = spec.log ?? createLogger({ run, actor: spec.actor, instance });
  const stats = createStats();
  const handleSignals = spec.handleSignals !== false;

  if (handleSignals) installCrashHandlers(log);

  const nc = await connectBus({ ...spec.bus, name: spec.bus.name ?? `srlm-${spec.actor}-${instance}` });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  // No stream is created here: only the trainer may (bus/permissions.ts), and it does at its start;
  // a worker's consume() waits for the queue it needs.
  const subj = subjects(run);

  const consumers: Array<{ queue: QueueName; handle: ConsumeHandle }> = [];
  const stopFns: Array<() => Promise<void> | void> = [];
  const shutdown = new AbortController();

  // @nats-io/services pins its own nats-core; the connection object is the same at runtime.
  const service = await new Svcm(nc as unknown as ConstructorParameters<typeof Svcm>[0]).add({
    name: `srlm-${spec.actor}`,
    version: spec.version,
    description: `srlm ${spec.actor} (${spec.impl}) of run ${run}`,
    metadata: { run, actor: spec.actor, impl: spec.impl, instance },
    statsHandler: async () => {
      const lag: Record<string, { pending: number; ackPending: number }> = {};
      for (const c of consumers)
        lag[c.queue] = await c.handle.lag().catch(() => ({ pending: -1, ackPending: -1 }));
      return { ...stats, idleMs: idleMs(stats), uptimeMs: Date.now() - stats.startedMs, lag };
    },
  });
  // One endpoint so the services `stats` verb has somewhere to report the counters.
  service.addEndpoint("status", {
    subject: `srlm.${run}.svc.${spec.actor}.${subjectToken(instance)}.status`,
    handler: (_err, msg) => {
      msg.respond(JSON.stringify({ ...stats, actor: spec.actor, impl: spec.impl, instance, run }));
    },
  });

  async function publish(
    subject: string,
    type: string,
    body: unknown,
    extra: PublishExtra = {},
  ): Promise<Envelope> {
    const env = makeEnvelope(type, body, { run, producer, policyVersion: extra.policyVersion, id: extra.id });
    await js.publish(subject, encodeEnvelope(env), extra.msgID ? { msgID: extra.msgID } : undefined);
    stats.published++;
    return env;
  }

  async function event(event: ActorEventBody["event"], detail?: string): Promise<void> {
    const body: ActorEventBody = { event, actor: spec.actor, instance, impl: spec.impl };
    if (detail) body.detail = detail;
    await publish(subj.events, ActorEvent.type, body).catch((err: Error) =>
      log.warn({ err: err.message, event }, "could not publish actor event"),
    );
  }

  const ctx: ActorContext = {
    nc,
    js,
    jsm,
    log,
    run,
    actor: spec.actor,
    instance,
    producer,
    stats,
    deadLetters: { js, run, producer, log, stats },
    signal: shutdown.signal,
    async consume(queue, handler, opts = {}) {
      if (shutdown.signal.aborted) throw new Error(`actor ${spec.actor} is stopping; not consuming ${queue}`);
      // The queue's type was checked (expectType) before the handler sees the envelope.
      const typed = handler as JobHandler;
      const handle = await consumeQueue(js, run, queue, typed, {
        producer,
        log,
        ...opts,
        stats,
        expectType: PROTOCOL[queue].job.type,
        ensure: false,
        signal: shutdown.signal,
      });
      consumers.push({ queue, handle });
      return handle;
    },
    publish,
    onStop(fn) {
      stopFns.push(fn);
    },
  };

  let stopping: Promise<void> | undefined;
  function stop(reason = "stop requested"): Promise<void> {
    stopping ??= (async () => {
      log.info({ reason }, "stopping");
      shutdown.abort(new Error(reason));
      await event("stopping", reason);
      await Promise.all(consumers.map((c) => c.handle.stop()));
      for (const fn of stopFns.reverse()) {
        try {
          await fn();
        } catch (err) {
          log.error({ err: (err as Error).message }, "stop hook failed");
        }
      }
      await event("stopped", reason);
      await service.stop().catch(() => undefined);
      await nc.drain();
      log.info("stopped");
    })();
    return stopping;
  }

  try {
    const userStop = await spec.start(ctx);
    // Registered last, so it runs first: the actor stops its own loops before its onStop hooks.
    if (userStop) stopFns.push(userStop);
  } catch (err) {
    log.error({ err: (err as Error).message }, "actor start failed");
    await stop(`start failed: ${(err as Error).message}`).catch(() => undefined);
    throw err;
  }
  await event("started");
  log.info({ impl: spec.impl, version: spec.version }, "started");

  if (handleSignals) {
    const onSignal = (sig: NodeJS.Signals) => {
      if (stopping) {
        // A second Ctrl-C is a person who will not wait. A second SIGTERM is not: a supervisor
        // stopping the run and an actor ending itself both send one, and the drain must finish.
        if (sig === "SIGTERM") return log.info("SIGTERM while already stopping; still draining");
        log.warn({ signal: sig }, "second signal during shutdown; exiting now");
        process.exit(130);
      }
      stop(`received ${sig}`).then(
        () => process.exit(0),
        (err: Error) => {
          log.fatal({ err: err.message }, "shutdown failed");
          process.exit(1);
        },
      );
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    nc.closed().then((err) => {
      if (!stopping) {
        log.fatal({ err: err?.message }, "NATS connection closed unexpectedly");
        process.exit(1);
      }
    });
  }

  return { ctx, stop, service };
}

function installCrashHandlers(log: Logger): void {
  const die = (kind: string) => (err: unknown) => {
    const e = err instanceof Error ? err : new Error(String(err));
    // Jobs held by this process are not acked; JetStream redelivers them after ack_wait.
    log.fatal({ err: e.message, stack: e.stack }, kind);
    log.flush?.();
    process.exit(1);
  };
  process.on("uncaughtException", die("uncaught exception"));
  process.on("unhandledRejection", die("unhandled rejection"));
}
