// The trainer actor: owns the iteration schedule and the weights being trained. It runs the
// schedule in the background so the actor runtime can answer pings and stop it meanwhile; when
// the schedule ends it announces run.done and stops its own process.

import { join } from "node:path";
import type { ActorContext } from "../../bus/actor.ts";
import { putBlob } from "../../bus/objects.ts";
import { weightsBucket } from "../../bus/permissions.ts";
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
import {
  RESUME_OBJECT,
  readBusResumePoint,
  readResumePoint,
  resumeFile,
  resumePolicy,
  writeResumePoint,
} from "./resume.ts";
import { SelfRewardingLoop } from "./selfRewarding.ts";
import type { LoopIO } from "./workers.ts";

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
  // Once the trainer is stopping, its outstanding jobs settle as failed ("trainer stopping"): an
  // iteration finished after that point is not the one an undisturbed run computes and must not
  // become the point a restarted trainer goes on from.
  let stopping = false;
  // Bus copies of the resume point go out one after another, so an older one never lands last.
  let busCopy: Promise<unknown> = Promise.resolve();
  const io: LoopIO = {
    workers: board,
    log: ctx.log,
    backend,
    async publish(version, policy) {
      const ref = await putBlob(ctx.nc, weightsBucket(cfg.run), `v${version}`, policyToBlob(policy), {
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
    resume: {
      async load() {
        // The out folder first: it is this host's own and the newest; the bus copy serves a
        // trainer started elsewhere.
        const onDisk = readResumePoint(cfg);
        const found = onDisk
          ? { point: onDisk, policy: resumePolicy(cfg, onDisk), from: resumeFile(cfg.out) }
          : await readBusResumePoint(ctx.nc, cfg).then((r) =>
              r ? { ...r, from: `${weightsBucket(cfg.run)}/${RESUME_OBJECT}` } : null,
            );
        if (!found) return null;
        const { point, policy, from } = found;
        board.resumeAt(point.jobsSubmitted);
        const at =
          point.method === "reft"
            ? `update ${point.loop.updates.length + 1}`
            : `iteration ${point.loop.nextIteration}`;
        ctx.log.info(
          { from, method: point.method, checkpoint: point.loop.checkpoint },
          `resuming run ${cfg.run} at ${at} from ${point.loop.checkpoint}`,
        );
        return { ...point, policy };
      },
      save(resume) {
        const at =
          resume.method === "reft"
            ? { updates: resume.loop.updates.length }
            : { iteration: resume.loop.nextIteration };
        if (stopping) {
          ctx.log.warn(at, "stopping: no resume point for work finished meanwhile");
          return false;
        }
        const text = writeResumePoint(cfg, resume, board.submitted);
        // A ReFT point needs the optimizer state and checkpoints of its out folder, so another
        // host could not go on from a bus copy.
        if (resume.method === "self-rewarding")
          busCopy = busCopy
            .then(() =>
              putBlob(ctx.nc, weightsBucket(cfg.run), RESUME_OBJECT, new TextEncoder().encode(text)),
            )
            .catch((err: Error) =>
              ctx.log.warn({ err: err.message }, "could not copy the resume point to the weights bucket"),
            );
        ctx.log.info({ ...at, checkpoint: resume.loop.checkpoint }, "resume point written");
        return true;
      },
    },
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
    stopping = true;
    await busCopy;
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
