// The trainer actor: owns the iteration schedule and the weights being trained. It runs the
// schedule in the background so the actor runtime can answer pings and stop it meanwhile; when
// the schedule ends it announces run.done and stops its own process.

import { join } from "node:path";
import type { ActorContext } from "../../bus/actor.ts";
import { ensureStreams } from "../../bus/queues.ts";
import { subjects } from "../../bus/subjects.ts";
import type { Config } from "../../config/schema.ts";
import { followControl, RunControl } from "./control.ts";
import { JobBoard } from "./jobs.ts";
import { summaryTable } from "./report.ts";
import { SelfRewardingSchedule } from "./schedule.ts";

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
  });
  const board = await JobBoard.open(ctx.nc, ctx.js, ctx.run, ctx.producer, {
    timeoutMs: cfg.actors.jobTimeoutMs,
    log: ctx.log,
  });
  const lastProgress = new Map<string, number>();
  const control = new RunControl();
  const unfollowControl = followControl(ctx.nc, ctx.deadLetters, control, ctx.log);
  const schedule = new SelfRewardingSchedule(cfg, {
    nc: ctx.nc,
    js: ctx.js,
    run: ctx.run,
    log: ctx.log,
    board,
    backend,
    async announceWeights(ref) {
      await ctx.publish(s.weights, "weights.published", ref, { policyVersion: ref.version });
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
  });
  const done = schedule.run().then(
    async (report) => {
      await ctx.publish(s.events, "run.done", {
        ok: true,
        report: join(cfg.out, "report.json"),
        summary: summaryTable(report),
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
