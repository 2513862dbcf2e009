// `srlm serve`: an OpenAI-compatible HTTP server over a checkpoint folder (--model DIR) or over
// the newest weights a run publishes (--run NAME --nats URL). It prints one JSON line with its URL
// on stdout once listening, logs to stderr, and stops cleanly on SIGINT/SIGTERM.
import { basename, resolve } from "node:path";
import { createLogger } from "../bus/log.ts";
import type { Config } from "../config/schema.ts";
import { selectBackend } from "../model/backend.ts";

export interface ServeFlags {
  model?: string;
  modelName?: string;
  host: string;
  port: string;
  apiKeyEnv?: string;
  maxBodyBytes: string;
  maxQueue: string;
  maxBatchRows: string;
  batchWindowMs: string;
}

function int(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${flag} must be an integer ≥ ${min}, got ${value}`);
  return n;
}

export async function serveCommand(cfg: Config, flags: ServeFlags): Promise<void> {
  const follow = flags.model === undefined;
  if (follow && !cfg.nats.url) {
    throw new Error(
      "serve: give --model DIR (a checkpoint folder), or --run NAME with --nats URL to follow a run's published weights",
    );
  }
  let apiKey: string | undefined;
  if (flags.apiKeyEnv) {
    apiKey = process.env[flags.apiKeyEnv];
    if (!apiKey)
      throw new Error(`serve --api-key-env ${flags.apiKeyEnv}: that environment variable is empty or unset`);
  }
  const log = createLogger({ run: cfg.run, actor: "serve", instance: `${process.pid}` });
  const backend = await selectBackend(cfg.model.backend, log);
  log.info({ backend: backend.name }, "tfjs backend");
  const { startServer } = await import("../serve/server.ts");
  const { checkpointSource, runWeightsSource } = await import("../serve/source.ts");
  const source = follow ? await runWeightsSource(cfg, log) : checkpointSource(resolve(flags.model!), log);
  const modelName = flags.modelName ?? (follow ? `srlm-${cfg.run}` : basename(resolve(flags.model!)));
  const server = await startServer({
    source,
    modelName,
    host: flags.host,
    port: int("port", flags.port, 0),
    apiKey,
    bodyLimit: int("max-body-bytes", flags.maxBodyBytes, 1),
    engine: {
      maxQueue: int("max-queue", flags.maxQueue, 1),
      maxBatchRows: int("max-batch-rows", flags.maxBatchRows, 1),
      batchWindowMs: int("batch-window-ms", flags.batchWindowMs, 0),
    },
    log,
  });
  process.stdout.write(
    `${JSON.stringify({ url: `${server.url}/v1`, model: modelName, serving: source.describe() })}\n`,
  );
  log.info({ url: server.url, model: modelName, auth: apiKey !== undefined }, "serving");
  if ("loaded" in source) {
    // A folder that does not load ends the server: it would only ever answer 503.
    (source.loaded as Promise<void>).catch(async (err: Error) => {
      log.fatal({ err: err.message }, "checkpoint failed to load");
      await server.close().catch(() => undefined);
      process.exit(1);
    });
  }
  await new Promise<void>((done) => {
    const stop = (signal: string) => {
      log.info({ signal }, "stopping");
      server.close().then(done, done);
    };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}
