// `srlm actor NAME`: one actor process. It picks the tfjs backend, connects, and hands the actor
// runtime (bus/actor.ts) the role's start function; the runtime does the rest (service
// registration, stats, graceful stop, crash exit).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { z } from "zod";
import { type ActorContext, runActor } from "../bus/actor.ts";
import type { BusOptions } from "../bus/connect.ts";
import { makeEnvelope } from "../bus/envelope.ts";
import { inboxPrefix, type Role } from "../bus/permissions.ts";
import { type JobEnvelope, PROTOCOL, type ResultOf } from "../bus/protocol.ts";
import { publishResult, resultMsgID } from "../bus/queues.ts";
import type { QueueName } from "../bus/subjects.ts";
import { type Config, judgeImplOf } from "../config/schema.ts";
import { selectBackend } from "../model/backend.ts";

export const ACTORS = ["generator", "judge", "reference", "trainer"] as const;
const VERSION = "0.1.0";

/**
 * How `role` connects: the configured server and credentials, the role's own reply inboxes, and
 * with `nats.keysDir` the role's nkey seed from `<keysDir>/<role>.nk` (an explicit nats.nkeySeed
 * wins, so `srlm run` can hand each child its own).
 */
export function busOptions(cfg: Config, role?: Role): BusOptions {
  if (!cfg.nats.url) {
    throw new Error(
      "no NATS server configured for this actor: pass --nats nats://HOST:4222 (or set SRLM_NATS_URL); " +
        "`srlm up` and `srlm run` start an embedded one and pass it to the actors they start",
    );
  }
  let nkeySeed = cfg.nats.nkeySeed;
  if (nkeySeed === undefined && cfg.nats.keysDir && role) {
    const file = join(cfg.nats.keysDir, `${role}.nk`);
    try {
      nkeySeed = readFileSync(file, "utf8").trim();
    } catch (err) {
      throw new Error(
        `nats.keysDir: cannot read the ${role} key ${file} (${(err as Error).message}); ` +
          `\`srlm nats-config --run ${cfg.run} --out DIR\` writes one per role`,
      );
    }
  }
  return {
    servers: cfg.nats.url.split(",").map((s) => s.trim()),
    user: cfg.nats.user,
    pass: cfg.nats.pass,
    token: cfg.nats.token,
    nkeySeed,
    credsFile: cfg.nats.credsFile,
    tls: cfg.nats.tls,
    ...(role ? { inboxPrefix: inboxPrefix(cfg.run, role) } : {}),
  };
}

/**
 * Publishes the answer to `job` on its queue's result subject (bus/protocol.ts). The msgID names
 * the job and this instance: a redelivered job that runs twice here stores one result, and a
 * result from anyone else cannot take the place of this one before the trainer has checked both.
 */
export async function publishJobResult<Q extends QueueName>(
  ctx: ActorContext,
  queue: Q,
  job: JobEnvelope<Q>,
  body: Omit<ResultOf<Q>, "jobId">,
  policyVersion?: number,
): Promise<void> {
  const row = PROTOCOL[queue];
  const full = { ...body, jobId: job.id } as z.input<(typeof row)["result"]["schema"]>;
  const env = makeEnvelope(row.result, full, { run: ctx.run, producer: ctx.producer, policyVersion });
  await publishResult(ctx.js, ctx.run, row.resultKind, env, resultMsgID(job.id, ctx.instance));
}

/** Set by `srlm run` / `srlm up` on the actors they start: the supervisor's pid. */
export const SUPERVISOR_PID_ENV = "SRLM_SUPERVISOR_PID";

/**
 * An actor started by a supervisor stops (draining, as on SIGTERM) once that supervisor is gone,
 * so killing `srlm run` outright, or a closed pipe ending it, leaves no orphans holding jobs.
 */
function stopWhenOrphaned(): void {
  const supervisor = Number(process.env[SUPERVISOR_PID_ENV]);
  if (!Number.isInteger(supervisor) || supervisor <= 0) return;
  const timer = setInterval(() => {
    if (process.ppid !== supervisor) {
      clearInterval(timer);
      process.kill(process.pid, "SIGTERM");
    }
  }, 1000);
  timer.unref();
}

export async function startActor(
  name: string,
  cfg: Config,
  opts: { impl?: string; instance?: string },
): Promise<void> {
  if (!(ACTORS as readonly string[]).includes(name)) {
    throw new Error(`unknown actor ${JSON.stringify(name)}: use one of ${ACTORS.join(", ")}`);
  }
  const impl = opts.impl ?? (name === "judge" ? judgeImplOf(cfg) : "default");
  const bus = busOptions(cfg, name as Role);
  // Only processes that compute load TensorFlow.js; a verifier or HTTP judge never does.
  const needsModel = !(name === "judge" && (impl === "verifier" || impl === "openai" || impl === "answer"));
  const backend = needsModel ? (await selectBackend(cfg.model.backend)).name : "none";
  await runActor({
    actor: name,
    impl,
    instance: opts.instance,
    run: cfg.run,
    bus,
    version: VERSION,
    start: async (ctx) => {
      ctx.log.info({ backend }, "tfjs backend");
      stopWhenOrphaned();
      switch (name) {
        case "generator":
          return (await import("./generator/main.ts")).startGenerator(ctx, cfg);
        case "judge":
          return (await import("./judge/main.ts")).startJudge(ctx, cfg, impl);
        case "reference":
          return (await import("./reference/main.ts")).startReference(ctx, cfg);
        default:
          return (await import("./trainer/main.ts")).startTrainer(ctx, cfg, backend);
      }
    },
  });
}
