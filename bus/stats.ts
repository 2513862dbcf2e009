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
}

export function createStats(): BusStats {
  return { processed: 0, failed: 0, deadLettered: 0, inFlight: 0, published: 0, lastActivityMs: Date.now() };
}
