// Counters an actor keeps about its bus traffic; reported through the NATS services `stats` verb.
export interface BusStats {
  /** Jobs handled successfully (acked). */
  processed: number;
  /** Handler failures (each nak or final dead letter counts once). */
  failed: number;
  /** Messages dead-lettered: undecodable, invalid, or out of deliveries. */
  deadLettered: number;
  /** Jobs currently held by a handler. */
  inFlight: number;
  /** Messages published by this process. */
  published: number;
  /** Epoch ms of the last job started or finished. */
  lastActivityMs: number;
  /** Epoch ms when the counters started. */
  startedMs: number;
  /** Total ms during which at least one job was held: uptime minus this is the actor's idle time. */
  busyMs: number;
}

/** Marks a job started or finished; busy time accrues while any job is held. */
export function markActivity(stats: BusStats, delta: 1 | -1): void {
  const now = Date.now();
  if (stats.inFlight > 0) stats.busyMs += now - stats.lastActivityMs;
  stats.inFlight += delta;
  stats.lastActivityMs = now;
}

/** Idle ms since the counters started (no job held). */
export function idleMs(stats: BusStats, now = Date.now()): number {
  const busy = stats.busyMs + (stats.inFlight > 0 ? now - stats.lastActivityMs : 0);
  return now - stats.startedMs - busy;
}

export function createStats(): BusStats {
  const now = Date.now();
  return {
    processed: 0,
    failed: 0,
    deadLettered: 0,
    inFlight: 0,
    published: 0,
    lastActivityMs: now,
    startedMs: now,
    busyMs: 0,
  };
}
