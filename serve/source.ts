// Where `srlm serve` gets the model it answers with: a checkpoint folder, loaded once, or a run's
// weights over NATS, where every batch asks for the newest published version that verified, so
// the server follows training without a restart. Until a model is there, requests get a 503 that
// says what the server is waiting for.
import { hostname } from "node:os";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type { Policy } from "../actors/policy.ts";
import { busOptions } from "../actors/start.ts";
import { WeightCache } from "../actors/weights.ts";
import { connectBus } from "../bus/connect.ts";
import { acceptMessage } from "../bus/dead.ts";
import { type WeightRef, WeightsPublished } from "../bus/messages.ts";
import { subjects } from "../bus/subjects.ts";
import type { Config } from "../config/schema.ts";
import { loadCheckpoint } from "../model/checkpoint.ts";
import { ApiError } from "./api.ts";

export interface ModelSource {
  /** The model to answer with now; an ApiError 503 while there is none. */
  current(): Promise<Policy>;
  /** What is served, for logs: the folder, or the run and its newest version. */
  describe(): string;
  close(): Promise<void>;
}

const unavailable = (message: string, code: string) => new ApiError(503, message, "server_error", null, code);

/** A checkpoint folder, loaded after the server is listening (so callers see 503, not a refused
 * connection, while a large model loads). `loaded` settles when it is in memory or has failed. */
export function checkpointSource(dir: string, log: Logger): ModelSource & { loaded: Promise<void> } {
  let policy: Policy | null = null;
  let failure: string | null = null;
  const loaded = new Promise((r) => setImmediate(r)).then(() => {
    try {
      const { model, tokenizer } = loadCheckpoint(dir);
      policy = { version: 0, model, tokenizer };
      log.info({ dir, parameters: model.numParams() }, "checkpoint loaded");
    } catch (err) {
      failure = (err as Error).message;
      throw err;
    }
  });
  return {
    loaded,
    async current() {
      if (policy) return policy;
      if (failure) throw unavailable(`the checkpoint could not be loaded: ${failure}`, "model_load_failed");
      throw unavailable("the model is still loading; retry shortly", "model_loading");
    },
    describe: () => dir,
    async close() {
      policy?.model.dispose();
      policy = null;
    },
  };
}

/** The newest weights of run `cfg.run`, as the trainer publishes them (WeightCache.follow). */
export async function runWeightsSource(cfg: Config, log: Logger): Promise<ModelSource> {
  const nc: NatsConnection = await connectBus({
    // Serving reads and never writes the run: the reader role's rights are enough.
    ...busOptions(cfg, "reader"),
    name: `srlm-serve-${hostname()}-${process.pid}`,
  });
  const js = jetstream(nc);
  const s = subjects(cfg.run);
  const dl = {
    js,
    run: cfg.run,
    producer: { actor: "serve", instance: `${hostname()}-${process.pid}` },
    log,
  };
  const weights = new WeightCache(nc, log);
  // Subscribe first, then read what was announced before: a version published in between is
  // seen by both, and the cache takes the newer one.
  weights.follow(dl);
  let announced: WeightRef | undefined;
  try {
    const last = await (await jetstreamManager(nc)).streams.getMessage(s.eventStream, {
      last_by_subj: s.weights,
    });
    const msg = last && acceptMessage(dl, s.weights, last.data, WeightsPublished);
    if (msg) {
      const b = msg.body;
      announced = { version: b.version, bucket: b.bucket, name: b.name, digest: b.digest };
      log.info({ version: b.version }, "newest weights announced before serve started");
    }
  } catch (err) {
    // No events stream yet: the run has not started; the subscription will hear its first weights.
    log.info({ err: (err as Error).message }, "no weights announced on this run yet");
  }
  let version: number | null = null;
  return {
    async current() {
      try {
        const p = await weights.latest(announced);
        if (p.version !== version) {
          log.info({ version: p.version, previous: version }, "serving weights");
          version = p.version;
        }
        return p;
      } catch (err) {
        if (!announced && weights.latestVersion() === null) {
          throw unavailable(`no weights have been published on run ${cfg.run} yet`, "model_loading");
        }
        throw unavailable(
          `the run's weights could not be loaded: ${(err as Error).message}`,
          "model_load_failed",
        );
      }
    },
    describe: () => `run ${cfg.run}${version === null ? "" : ` v${version}`}`,
    async close() {
      weights.close();
      await nc.drain().catch(() => undefined);
    },
  };
}
