// The loop's I/O over in-process workers for tests: weights published to the workers, nothing
// logged or shown, never paused. A test overrides only the hooks it watches (progress, gate,
// metrics, resume).
import pino from "pino";
import type { LocalWorkers } from "../../actors/trainer/localWorkers.ts";
import type { LoopIO } from "../../actors/trainer/workers.ts";

export function quietLoopIO(workers: LocalWorkers, overrides: Partial<LoopIO> = {}): LoopIO {
  return {
    workers,
    publish: async (version, policy) => workers.publish(version, policy),
    log: pino({ level: "silent" }),
    backend: "test",
    progress() {},
    gate: async () => {},
    metrics() {},
    actorStats: async () => [],
    ...overrides,
  };
}
