// The trainer actor: owns the iteration schedule and the weights being trained. It runs the
// schedule in the background so the actor runtime can answer pings and stop it meanwhile; when
// the schedule ends it announces run.done and stops its own process.

import { join } from "node:path";
import type { ActorContext } from "../../bus/actor.ts";
import { putBlob } from "../../bus/objects.ts";
import { ensureStreams } from "../../bus/queues.ts";
import { busStatus } from "../../bus/status.ts";
import { subjects } from "../../bus/subjects.ts";
import type { Config } from "../../config/schema.ts";
import { taskFromConfig } from "../../tasks/fromConfig.ts";
import { reasoningTaskFromConfig } from "../../tasks/reasoning.ts";
import { policyToBlob } from "../policy.ts";
import { followControl, RunControl } from "./control.ts";
import { JobBoard } from "./jobs.ts";
import { ReftLoop } from "./reft.ts";
import { reftSummaryTable } from "./reftReport.ts";
import { type ActorUsage, summaryTable } from "./report.ts";
import { type LoopIO, SelfRewardingLoop } from "./selfRewarding.ts";

export async function startTrainer(
  ctx: ActorContext,
  cfg: Config,
  backend: string,
): Promise<() => Promise<void>> {
  const s = subjects(ctx.run);
  // The trainer owns the run, so its retry settings are the queues' (workers only create them).
  await ensureStreams(ctx.jsm, ctx.run, {
    ackWaitMs: cfg.actors.ackWaitMs,
    maxDeliver: cfg.actors.maxDeliver,
    replicas: cfg.nats.replicas,
  });
  const board = await JobBoard.open(ctx.nc, ctx.js, ctx.run, ctx.producer, {
    timeoutMs: cfg.actors.jobTimeoutMs,
    log: ctx.log,
  });
  const lastProgress = new Map<string, number>();
  const control = new RunControl();
  const unfollowControl = followControl(ctx.nc, ctx.deadLetters, control, ctx.log);
  const io: LoopIO = {
    workers: board,
    log: ctx.log,
    backend,
    async publish(version, policy) {
      const ref = await putBlob(ctx.nc, `srlm-${cfg.run}-weights`, `v${version}`, policyToBlob(policy), {
        replicas: cfg.nats.replicas,
      });
      const weights = { version, bucket: ref.bucket, name: ref.name, digest: ref.digest };
      await ctx.publish(
        s.weights,
        "weights.published",
        { ...weights, bytes: ref.bytes },
        { policyVersion: version },
      );
      return weights;
    },
    gate: () => control.gate(),
    progress(stage, iteration, done, total, detail) {
      // Training steps come fast; a few updates a second are enough for a progress bar.
      const now = Date.now();
      if (done < total && now - (lastProgress.get(stage) ?? 0) < 250) return;
      lastProgress.set(stage, now);
      // The log keeps a coarse trace of progress (every ~10%) for runs nobody watches live.
      const tenth = Math.max(1, Math.floor(total / 10));
      if (done === total || done % tenth === 0)
        ctx.log.info({ stage, iteration, done, total, detail }, "progress");
      void ctx.publish(s.events, "stage.progress", { stage, iteration, done, total, detail }).catch(() => {});
    },
    metrics(iteration, values) {
      const finite = Object.fromEntries(Object.entries(values).filter(([, v]) => Number.isFinite(v)));
      void ctx.publish(s.metrics, "metrics", { iteration, values: finite }).catch(() => {});
    },
    actorStats: () => actorStats(ctx),
    busCounts: () => ({
      deadLetters: { ...board.counts.deadLetters },
      timedOutJobs: board.counts.timedOut,
      droppedUnknownResults: board.counts.earlyDropped,
    }),
  };
  // Both methods run over the same workers and report the same way: report.json and a summary.
  const method =
    cfg.method === "reft"
      ? new ReftLoop(cfg, reasoningTaskFromConfig(cfg), io)
          .run()
          .then((r) => ({ r, summary: reftSummaryTable(r) }))
      : new SelfRewardingLoop(cfg, taskFromConfig(cfg), io)
          .run()
          .then((r) => ({ r, summary: summaryTable(r) }));
  const done = method.then(
    async ({ r, summary }) => {
      await ctx.publish(s.events, "run.done", {
        ok: true,
        ...(r.stopped ? { stopped: true } : {}),
        report: join(cfg.out, "report.json"),
        summary,
      });
    },
    async (err: Error) => {
      ctx.log.error({ err: err.message, stack: err.stack }, "schedule failed");
      await ctx.publish(s.events, "run.done", { ok: false, report: "", summary: "", error: err.message });
      process.exitCode = 1;
    },
  );
  void done.finally(() => process.kill(process.pid, "SIGTERM"));
  return async () => {
    unfollowControl();
    control.apply("resume");
    await board.close();
  };
}

/** How busy each live actor was over the run (from the services API), to see what overlap hides. */
async function actorStats(ctx: ActorContext): Promise<ActorUsage[]> {
  try {
    const status = await busStatus(ctx.nc, ctx.run, { waitMs: 1000 });
    return status.actors.map((a) => {
      const st = (a.stats ?? {}) as {
        processed?: number;
        failed?: number;
        idleMs?: number;
        uptimeMs?: number;
      };
      return {
        actor: a.actor,
        impl: a.impl,
        instance: a.instance,
        processed: st.processed ?? 0,
        failed: st.failed ?? 0,
        idleSeconds: (st.idleMs ?? 0) / 1000,
        uptimeSeconds: (st.uptimeMs ?? 0) / 1000,
      };
    });
  } catch (err) {
    ctx.log.warn({ err: (err as Error).message }, "could not collect actor stats");
    return [];
  }
}
