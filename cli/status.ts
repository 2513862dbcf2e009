// `srlm status` and `srlm tap`: looking into a running system from any host.

import { hostname } from "node:os";
import { jetstream } from "@nats-io/jetstream";
import { busOptions } from "../actors/start.ts";
import { connectBus } from "../bus/connect.ts";
import { encodeEnvelope, makeEnvelope } from "../bus/envelope.ts";
import { busStatus } from "../bus/status.ts";
import { subjects } from "../bus/subjects.ts";
import { tap } from "../bus/tap.ts";
import type { Config } from "../config/schema.ts";

export async function status(cfg: Config): Promise<number> {
  const nc = await connectBus(busOptions(cfg, "reader"));
  try {
    const st = await busStatus(nc, cfg.run);
    const out: string[] = [`run ${st.run}: ${st.actors.length} live actor(s)`];
    for (const a of st.actors) {
      const s = a.stats ?? {};
      out.push(
        `  ${a.actor.padEnd(10)} ${a.impl.padEnd(9)} ${a.instance.padEnd(24)} v${a.version}  processed=${s.processed ?? "?"} failed=${s.failed ?? "?"} inFlight=${s.inFlight ?? "?"} dead=${s.deadLettered ?? "?"} idleMs=${s.idleMs ?? "?"}`,
      );
    }
    out.push("queues:");
    for (const q of st.queues) {
      out.push(
        q.exists
          ? `  ${q.queue.padEnd(10)} pending=${q.pending} ackPending=${q.ackPending} redelivered=${q.redelivered} waiting=${q.waiting}`
          : `  ${q.queue.padEnd(10)} (no consumer yet)`,
      );
    }
    process.stdout.write(`${out.join("\n")}\n`);
    return 0;
  } finally {
    await nc.close();
  }
}

export async function tapCommand(
  cfg: Config,
  pattern: string | undefined,
  flags: { raw?: boolean; since?: string },
): Promise<number> {
  const nc = await connectBus(busOptions(cfg, "reader"));
  const since =
    flags.since === undefined ? undefined : /^\d+$/.test(flags.since) ? Number(flags.since) : flags.since;
  const stop = await tap(nc, pattern ?? `srlm.${cfg.run}.>`, {
    raw: flags.raw,
    since,
    out: (line) => process.stdout.write(`${line}\n`),
  });
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await stop();
  await nc.close();
  return 0;
}

export async function controlCommand(cfg: Config, command: string, reason?: string): Promise<number> {
  if (!["pause", "resume", "stop"].includes(command)) {
    throw new Error(`srlm control ${command}: use pause, resume or stop`);
  }
  const nc = await connectBus(busOptions(cfg, "operator"));
  try {
    const env = makeEnvelope(
      "control",
      { command: command as "pause" | "resume" | "stop", ...(reason ? { reason } : {}) },
      { run: cfg.run, producer: { actor: "cli", instance: `${hostname()}-${process.pid}` } },
    );
    await jetstream(nc).publish(subjects(cfg.run).control, encodeEnvelope(env));
    process.stdout.write(`sent ${command} to run ${cfg.run}\n`);
    return 0;
  } finally {
    await nc.close();
  }
}
