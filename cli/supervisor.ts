// Starts actors as child processes (`srlm actor NAME`) and restarts one that crashes, so that the
// jobs it held (never acked) are redelivered to it or its siblings. Logs go to <out>/logs/.
//
// A crashed instance is restarted for as long as the run lives, with exponential backoff (reset
// once it stayed up a while), within a budget of restarts per time window: a crash loop ends in a
// verdict instead of burning the machine. A role that has had no running instance for too long, or
// whose every instance spent its budget, is reported through onRoleDown so the run can fail
// naming it rather than wait forever on work nobody will do.
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
  /** Restart after a crash (default true). */
  restart?: boolean;
  /**
   * This instance's own environment on top of the supervisor's (its role's credentials); a key set
   * to undefined is removed from what the child inherits.
   */
  env?: Record<string, string | undefined>;
}

export interface RestartPolicy {
  /** First backoff delay; doubles with each crash in a row. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** An instance that ran this long before exiting starts its backoff again from baseDelayMs. */
  stableMs: number;
  /** Restarts an instance may have within windowMs; one more and it is given up. */
  budget: number;
  windowMs: number;
  /** A restartable role with no running instance for this long is down. */
  roleDownMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = {
  baseDelayMs: 250,
  maxDelayMs: 30_000,
  stableMs: 60_000,
  budget: 10,
  windowMs: 300_000,
  roleDownMs: 120_000,
};

export interface Restart {
  delayMs: number;
  /** Restarts within the current window, this one included. */
  inWindow: number;
}

export interface SupervisorEvents {
  /** `restart` is null when the instance is not restarted (clean exit, stopping, no restart, budget spent). */
  onExit?(spec: ActorSpec, code: number | null, signal: NodeJS.Signals | null, restart: Restart | null): void;
  /** An instance crashed more than its budget allows and stays down. */
  onGiveUp?(spec: ActorSpec, reason: string): void;
  /** A role that should be running is not, and will not be; called once per role. */
  onRoleDown?(role: string, reason: string): void;
}

/** The process that runs one actor; tests put a small script here. */
export type ActorCommand = (spec: ActorSpec) => { command: string; args: string[] };

export const srlmActorCommand: ActorCommand = (spec) => {
  const args = [srlmBin, "actor", spec.actor, "--config", spec.configFile, "--instance", spec.instance];
  if (spec.impl) args.push("--impl", spec.impl);
  return { command: process.execPath, args };
};

export interface SupervisorOptions {
  policy?: Partial<RestartPolicy>;
  command?: ActorCommand;
  /** Added to the children's environment (secrets travel here, never in a file). */
  env?: Record<string, string | undefined>;
}

interface Instance {
  spec: ActorSpec;
  child: ChildProcess | null;
  startedMs: number;
  /** Crashes in a row without a stable run in between: the backoff exponent. */
  streak: number;
  restartTimes: number[];
  timer?: NodeJS.Timeout;
  givenUp: boolean;
}

export class Supervisor {
  private instances = new Map<string, Instance>();
  private roleTimers = new Map<string, NodeJS.Timeout>();
  private downRoles = new Set<string>();
  private stopping = false;
  private policy: RestartPolicy;
  private command: ActorCommand;
  private env: Record<string, string | undefined>;

  constructor(
    private logDir: string,
    private events: SupervisorEvents = {},
    options: SupervisorOptions = {},
  ) {
    mkdirSync(logDir, { recursive: true });
    this.policy = { ...DEFAULT_RESTART_POLICY, ...options.policy };
    this.command = options.command ?? srlmActorCommand;
    this.env = options.env ?? {};
  }

  start(spec: ActorSpec): void {
    const key = `${spec.actor}/${spec.instance}`;
    if (this.instances.has(key)) throw new Error(`supervisor: ${key} is already supervised`);
    const inst: Instance = { spec, child: null, startedMs: 0, streak: 0, restartTimes: [], givenUp: false };
    this.instances.set(key, inst);
    this.spawn(inst);
  }

  private spawn(inst: Instance): void {
    const { spec } = inst;
    const { command, args } = this.command(spec);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      ...this.env,
      ...spec.env,
      [SUPERVISOR_PID_ENV]: String(process.pid),
    };
    for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], env });
    const log = createWriteStream(join(this.logDir, `${spec.actor}-${spec.instance}.log`), { flags: "a" });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    inst.child = child;
    inst.startedMs = Date.now();
    this.roleUp(spec.actor);
    // A command that cannot be spawned emits 'error' and then (usually) 'exit'; handle it once.
    let ended = false;
    const finish = (code: number | null, signal: NodeJS.Signals | null) => {
      if (ended) return;
      ended = true;
      log.end();
      inst.child = null;
      this.exited(inst, code, signal);
    };
    child.once("error", (err) => {
      log.write(`supervisor: cannot start ${command}: ${err.message}\n`);
      finish(null, null);
    });
    child.once("exit", finish);
  }

  private exited(inst: Instance, code: number | null, signal: NodeJS.Signals | null): void {
    const { spec } = inst;
    const crashed = code !== 0 || signal !== null;
    if (this.stopping || !crashed || spec.restart === false) {
      this.events.onExit?.(spec, code, signal, null);
      this.roleMaybeDown(spec.actor);
      return;
    }
    const now = Date.now();
    if (now - inst.startedMs >= this.policy.stableMs) inst.streak = 0;
    inst.restartTimes = inst.restartTimes.filter((t) => now - t < this.policy.windowMs);
    if (inst.restartTimes.length >= this.policy.budget) {
      inst.givenUp = true;
      this.events.onExit?.(spec, code, signal, null);
      this.events.onGiveUp?.(
        spec,
        `${spec.actor}/${spec.instance} crashed after ${inst.restartTimes.length} restarts within ` +
          `${this.policy.windowMs / 1000} s (actors.restartBudget / actors.restartWindowMs); not restarting it`,
      );
      this.roleMaybeDown(spec.actor);
      return;
    }
    inst.restartTimes.push(now);
    const delayMs = Math.min(this.policy.maxDelayMs, this.policy.baseDelayMs * 2 ** inst.streak);
    inst.streak++;
    this.events.onExit?.(spec, code, signal, {
      delayMs,
      inWindow: inst.restartTimes.length,
    });
    this.roleMaybeDown(spec.actor);
    inst.timer = setTimeout(() => {
      inst.timer = undefined;
      if (!this.stopping) this.spawn(inst);
    }, delayMs);
  }

  private roleUp(role: string): void {
    clearTimeout(this.roleTimers.get(role));
    this.roleTimers.delete(role);
  }

  // Called whenever an instance of `role` stopped running: is anything of the role left?
  private roleMaybeDown(role: string): void {
    if (this.stopping || this.downRoles.has(role)) return;
    const of = [...this.instances.values()].filter((i) => i.spec.actor === role);
    if (of.some((i) => i.child !== null)) return;
    const restartable = of.filter((i) => i.spec.restart !== false);
    if (restartable.length === 0) return;
    if (restartable.every((i) => i.givenUp)) {
      this.roleDown(role, `every ${role} instance crashed past its restart budget`);
      return;
    }
    if (this.roleTimers.has(role)) return;
    this.roleTimers.set(
      role,
      setTimeout(() => {
        this.roleTimers.delete(role);
        this.roleDown(
          role,
          `no ${role} instance has been running for ${this.policy.roleDownMs / 1000} s (actors.roleDownMs)`,
        );
      }, this.policy.roleDownMs),
    );
  }

  private roleDown(role: string, reason: string): void {
    if (this.stopping || this.downRoles.has(role)) return;
    this.downRoles.add(role);
    this.events.onRoleDown?.(role, reason);
  }

  pids(): Record<string, number | undefined> {
    return Object.fromEntries(
      [...this.instances].filter(([, i]) => i.child).map(([key, i]) => [key, i.child?.pid]),
    );
  }

  // SIGTERM lets each actor finish or nak what it holds; SIGKILL only after a grace period.
  async stopAll(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    for (const timer of this.roleTimers.values()) clearTimeout(timer);
    this.roleTimers.clear();
    const exits = [...this.instances.values()].map((inst) => {
      clearTimeout(inst.timer);
      const child = inst.child;
      return new Promise<void>((resolve) => {
        if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
        const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
        child.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill("SIGTERM");
      });
    });
    await Promise.all(exits);
    this.instances.clear();
  }
}
