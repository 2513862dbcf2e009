// What is alive in a run and how much work waits: actors found through the NATS services API
// (every actor registers `srlm-<actor>` with its run in the metadata) and per-queue depths from the
// work consumers. Returns data; the CLI formats it.
import { jetstreamManager } from "@nats-io/jetstream";
import { type ServiceInfo, type ServiceStats, Svcm } from "@nats-io/services";
import type { NatsConnection } from "@nats-io/transport-node";
import { QUEUES, type QueueName, subjects } from "./subjects.ts";

export interface ActorStatus {
  service: string;
  id: string;
  actor: string;
  impl: string;
  instance: string;
  version: string;
  started?: string;
  /** Counters from the actor's stats handler (processed, failed, inFlight, deadLettered, idleMs, lag). */
  stats?: Record<string, unknown>;
}

export interface QueueStatus {
  queue: QueueName;
  /** Jobs not yet delivered. */
  pending: number;
  /** Jobs delivered and not yet acked. */
  ackPending: number;
  /** Jobs delivered more than once and still unacked. */
  redelivered: number;
  /** Pull requests currently waiting (idle consumers). */
  waiting: number;
  /** False when the queue's consumer does not exist (streams not created yet). */
  exists: boolean;
}

export interface StreamStatus {
  name: string;
  messages: number;
  bytes: number;
}

export interface BusStatus {
  run: string;
  actors: ActorStatus[];
  queues: QueueStatus[];
  streams: StreamStatus[];
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  try {
    for await (const x of it) out.push(x);
  } catch (err) {
    // No service at all answers with "no responders": that simply means no actor is running.
    if (!/no responders/i.test((err as Error).message)) throw err;
  }
  return out;
}

export async function busStatus(
  nc: NatsConnection,
  run: string,
  opts: { waitMs?: number } = {},
): Promise<BusStatus> {
  const s = subjects(run);
  // @nats-io/services pins its own nats-core; the connection object is the same at runtime.
  const client = new Svcm(nc as unknown as ConstructorParameters<typeof Svcm>[0]).client({
    strategy: "stall",
    maxWait: opts.waitMs ?? 1000,
  });
  const [infos, stats] = await Promise.all([
    client.info().then(collect<ServiceInfo>),
    client.stats().then(collect<ServiceStats>),
  ]);
  const statsById = new Map(stats.map((st) => [st.id, st]));
  const actors: ActorStatus[] = infos
    .filter((i) => i.name.startsWith("srlm-") && i.metadata?.run === run)
    .map((i) => {
      const st = statsById.get(i.id);
      const data = st?.endpoints?.find((e) => e.data !== undefined)?.data;
      return {
        service: i.name,
        id: i.id,
        actor: i.metadata?.actor ?? i.name.slice("srlm-".length),
        impl: i.metadata?.impl ?? "",
        instance: i.metadata?.instance ?? "",
        version: i.version,
        started: st?.started,
        stats: data && typeof data === "object" ? (data as Record<string, unknown>) : undefined,
      };
    })
    .sort((a, b) => a.actor.localeCompare(b.actor) || a.instance.localeCompare(b.instance));

  const jsm = await jetstreamManager(nc);
  const queues: QueueStatus[] = [];
  for (const queue of QUEUES) {
    try {
      const ci = await jsm.consumers.info(s.workStream, s.workConsumer(queue));
      queues.push({
        queue,
        pending: ci.num_pending,
        ackPending: ci.num_ack_pending,
        redelivered: ci.num_redelivered,
        waiting: ci.num_waiting,
        exists: true,
      });
    } catch {
      queues.push({ queue, pending: 0, ackPending: 0, redelivered: 0, waiting: 0, exists: false });
    }
  }
  const streams: StreamStatus[] = [];
  for (const name of [s.workStream, s.resultStream, s.eventStream]) {
    try {
      const si = await jsm.streams.info(name);
      streams.push({ name, messages: si.state.messages, bytes: si.state.bytes });
    } catch {
      // Not created yet: the run has not started.
    }
  }
  return { run, actors, queues, streams };
}
