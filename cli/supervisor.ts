// Starts actors as child processes (`srlm actor NAME`) and restarts one that crashes, so that the
// jobs it held (never acked) are redelivered to it or its siblings. Logs go to <out>/logs/.
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { SUPERVISOR_PID_ENV } from "../actors/start.ts";

const srlmBin = fileURLToPath(new URL("../bin/srlm.js", import.meta.url));

export interface ActorSpec {
  actor: string;
  impl?: string;
  instance: string;
  configFile: string;
  /** Restart after a crash (default true); the trainer holds the schedule and is not restarted. */
  restart?: boolean;
}

export interface SupervisorEvents {
  onExit?(spec: ActorSpec, code: number | null, signal: NodeJS.Signals | null, restarting: boolean): void;
}

interface Running {
  spec: ActorSpec;
  child: ChildProcess;
  restarts: number;
}

export class Supervisor {
  private running = new Map<string, Running>();
  private stopping = false;

  constructor(
    private logDir: string,
    private events: SupervisorEvents = {},
    private maxRestarts = 5,
  ) {
    mkdirSync(logDir, { recursive: true });
  }

  start(spec: ActorSpec, restarts = 0): void {
    const args = [srlmBin, "actor", spec.actor, "--config", spec.configFile, "--instance", spec.instance];
    if (spec.impl) args.push("--impl", spec.impl);
    const child = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, [SUPERVISOR_PID_ENV]: String(process.pid) },
    });
    const log = createWriteStream(join(this.logDir, `${spec.actor}-${spec.instance}.log`), { flags: "a" });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    const key = `${spec.actor}/${spec.instance}`;
    this.running.set(key, { spec, child, restarts });
    child.once("exit", (code, signal) => {
      log.end();
      const restarting =
        !this.stopping && code !== 0 && spec.restart !== false && restarts < this.maxRestarts;
      this.events.onExit?.(spec, code, signal, restarting);
      if (restarting) setTimeout(() => this.start(spec, restarts + 1), Math.min(5000, 250 * 2 ** restarts));
      else this.running.delete(key);
    });
  }

  pids(): Record<string, number | undefined> {
    return Object.fromEntries([...this.running].map(([key, r]) => [key, r.child.pid]));
  }

  // SIGTERM lets each actor finish or nak what it holds; SIGKILL only after a grace period.
  async stopAll(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    const exits = [...this.running.values()].map(
      ({ child }) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
          child.once("exit", () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill("SIGTERM");
        }),
    );
    await Promise.all(exits);
    this.running.clear();
  }
}
