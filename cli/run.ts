// `srlm run` (the whole loop) and `srlm up` (actors waiting for work): NATS, one process per actor,
// progress on the terminal, a clean stop on Ctrl-C.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { MultiBar, Presets, type SingleBar } from "cli-progress";
import { busOptions } from "../actors/start.ts";
import { type BusOptions, connectBus } from "../bus/connect.ts";
import { bodyOf, decodeEnvelope } from "../bus/envelope.ts";
import { RunDone, type RunDoneBody, StageProgress, type StageProgressBody } from "../bus/messages.ts";
import { deleteBlob } from "../bus/objects.ts";
import {
  accountsConfig,
  generateRoleKeys,
  ROLES,
  type Role,
  type RoleKey,
  weightsBucket,
} from "../bus/permissions.ts";
import { ensureStreams } from "../bus/queues.ts";
import { subjects } from "../bus/subjects.ts";
import { type Config, judgeImplOf } from "../config/schema.ts";
import { nkeyOnlyEnv, secretEnv, withoutSecrets } from "../config/secrets.ts";
import { type EmbeddedNats, startEmbeddedNats } from "./embeddedNats.ts";
import { type ActorCommand, type ActorSpec, Supervisor } from "./supervisor.ts";

interface System {
  cfg: Config;
  /** How this process connects as `role` (the embedded server's per-run keys, or the config's). */
  bus(role: Role): BusOptions;
  nats: EmbeddedNats | null;
  supervisor: Supervisor;
  /** Resolves with the reason once the run cannot go on: a role is down, or the embedded NATS died. */
  failed: Promise<string>;
  stop(): Promise<void>;
}

export interface RunHooks {
  /** How an actor process is started (default `srlm actor NAME`); tests start small scripts. */
  command?: ActorCommand;
  /** Where srlm's own lines go (default stderr). */
  say?: (line: string) => void;
  /** Called with the embedded nats-server once it runs (tests end it to see the run fail). */
  onNats?: (nats: EmbeddedNats) => void;
}

const stderrLine = (line: string) => {
  process.stderr.write(`${line}\n`);
};

async function startSystem(
  input: Config,
  withTrainer: boolean,
  hooks: RunHooks,
  onTrainerExit?: (code: number | null) => void,
  /** An object of the run's bus to remove before any actor starts (an earlier run's resume point). */
  forget?: { bucket: string; name: string },
): Promise<System> {
  const say = hooks.say ?? stderrLine;
  const cfg: Config = { ...input, out: resolve(input.out), nats: { ...input.nats } };
  mkdirSync(cfg.out, { recursive: true });
  let fail: (reason: string) => void = () => {};
  const failed = new Promise<string>((r) => {
    fail = r;
  });
  let nats: EmbeddedNats | null = null;
  // Keys made for this run alone: the server gets their public halves, each actor its own seed
  // through its environment; no seed is written anywhere or outlives the run.
  let keys: Record<Role, RoleKey> | null = null;
  if (!cfg.nats.url && cfg.actors.judges === 0) {
    // Nothing outside this process can join the embedded server, so no judge ever would.
    throw new Error(
      "actors.judges=0 starts no judge, and no judge of your own can join the embedded nats-server: " +
        `run a server of your own (\`srlm nats-config --run ${cfg.run} --out DIR\`) and pass --nats URL --set nats.keysDir=DIR`,
    );
  }
  if (!cfg.nats.url && cfg.nats.replicas > 1) {
    throw new Error(
      `nats.replicas=${cfg.nats.replicas} needs a NATS cluster, and the embedded nats-server is a single server: ` +
        "pass --nats URL1,URL2,URL3 of a cluster, or leave nats.replicas at 1",
    );
  }
  if (!cfg.nats.url) {
    keys = generateRoleKeys();
    const publicKeys = Object.fromEntries(ROLES.map((r) => [r, keys?.[r].publicKey])) as Record<Role, string>;
    mkdirSync(join(cfg.out, "logs"), { recursive: true });
    nats = await startEmbeddedNats({
      conf: accountsConfig(cfg.run, publicKeys),
      logFile: join(cfg.out, "logs", "nats-server.log"),
    });
    // Only the embedded server's own users get in: whatever auth the config named is not for it.
    cfg.nats = { url: nats.url, replicas: 1 };
    say(`srlm: started nats-server with JetStream at ${nats.url}, one user per role (bus/permissions.ts)`);
    // Its store is a temporary folder and every actor holds connections to it: a restart would
    // lose the run's queues, so a dead embedded server ends the run.
    void nats.died.then((why) => fail(`the embedded ${why}; the run cannot go on without its bus`));
  }
  const bus = (role: Role): BusOptions => {
    const opts = busOptions(cfg, role);
    return keys ? { ...opts, nkeySeed: keys[role].seed } : opts;
  };
  // The run's streams and consumers exist before any worker looks for them; only the trainer's
  // user may create them, so this connects as the trainer (the trainer itself checks them again).
  await setUpStreams(bus("trainer"), cfg, forget).catch(async (err: Error) => {
    await nats?.stop();
    throw err;
  });
  if (nats) hooks.onNats?.(nats);
  // Secrets reach the actors through their environment only; the file is private anyway.
  const configFile = join(cfg.out, "config.json");
  writeFileSync(configFile, `${JSON.stringify(withoutSecrets(cfg), null, 2)}\n`, { mode: 0o600 });
  chmodSync(configFile, 0o600);
  // config.json names the embedded server's address, which dies with this process: `--resume`
  // reads here that it must start a new one.
  writeFileSync(
    join(cfg.out, RUN_FILE),
    `${JSON.stringify({ run: cfg.run, embeddedNats: nats !== null })}\n`,
  );
  const logOf = (spec: ActorSpec) => join(cfg.out, "logs", `${spec.actor}-${spec.instance}.log`);
  const supervisor = new Supervisor(
    join(cfg.out, "logs"),
    {
      onExit(spec, code, signal, restart) {
        if (code !== 0 || signal) {
          const next = restart
            ? `, restarting in ${(restart.delayMs / 1000).toFixed(1)} s (restart ${restart.inWindow} of at most ` +
              `${cfg.actors.restartBudget} within ${Math.round(cfg.actors.restartWindowMs / 1000)} s)`
            : "";
          say(
            `srlm: ${spec.actor}/${spec.instance} exited (${signal ?? `code ${code}`})${next}; log: ${logOf(spec)}`,
          );
        }
        // A restarted trainer goes on from its resume point; only one that stays down ends the run.
        if (spec.actor === "trainer" && !restart) onTrainerExit?.(code);
      },
      onGiveUp(spec, reason) {
        say(`srlm: ${reason}; log: ${logOf(spec)}`);
      },
      onRoleDown(role, reason) {
        fail(`the ${role} role is down: ${reason}`);
      },
    },
    {
      command: hooks.command,
      env: secretEnv(cfg),
      policy: {
        budget: cfg.actors.restartBudget,
        windowMs: cfg.actors.restartWindowMs,
        roleDownMs: cfg.actors.roleDownMs,
      },
    },
  );
  const env = (role: Role) => (keys ? { env: nkeyOnlyEnv(keys[role].seed) } : {});
  const specs: ActorSpec[] = [{ actor: "reference", instance: "r0", configFile, ...env("reference") }];
  for (let i = 0; i < cfg.actors.generators; i++)
    specs.push({ actor: "generator", instance: `g${i}`, configFile, ...env("generator") });
  for (let i = 0; i < cfg.actors.judges; i++)
    specs.push({
      actor: "judge",
      instance: `j${i}`,
      configFile,
      impl: judgeImplOf(cfg),
      ...env("judge"),
    });
  if (withTrainer) specs.push({ actor: "trainer", instance: "t0", configFile, ...env("trainer") });
  for (const spec of specs) supervisor.start(spec);
  if (cfg.actors.judges === 0)
    say(
      `srlm: actors.judges=0: no judge started; the run waits for yours: \`srlm actor judge --nats ${cfg.nats.url} ` +
        `--run ${cfg.run}${cfg.nats.keysDir ? ` --set nats.keysDir=${cfg.nats.keysDir}` : ""} --impl IMPL\``,
    );
  return {
    cfg,
    bus,
    nats,
    supervisor,
    failed,
    async stop() {
      await supervisor.stopAll();
      await nats?.stop();
    },
  };
}

async function setUpStreams(
  opts: BusOptions,
  cfg: Config,
  forget?: { bucket: string; name: string },
): Promise<void> {
  const nc = await connectBus({ ...opts, name: "srlm-setup" });
  try {
    await ensureStreams(await jetstreamManager(nc), cfg.run, {
      ackWaitMs: cfg.actors.ackWaitMs,
      maxDeliver: cfg.actors.maxDeliver,
      replicas: cfg.nats.replicas,
    });
    // A missing bucket or object is what a fresh bus has: nothing to remove.
    if (forget) await deleteBlob(nc, forget).catch(() => undefined);
  } finally {
    await nc.close();
  }
}

class ProgressView {
  private multibar: MultiBar | null = process.stdout.isTTY
    ? new MultiBar(
        { format: " {stage} |{bar}| {value}/{total} {detail}", hideCursor: true, clearOnComplete: false },
        Presets.shades_classic,
      )
    : null;
  private bars = new Map<string, SingleBar>();
  private finished = new Set<string>();
  // Without a terminal, a long stage still shows it is alive: a line every half minute.
  private lastLine = new Map<string, number>();

  update(p: StageProgressBody): void {
    const key = `${p.iteration}:${p.stage}`;
    if (this.multibar) {
      let bar = this.bars.get(key);
      if (!bar) {
        bar = this.multibar.create(p.total, 0, { stage: p.stage.padEnd(16), detail: "" });
        this.bars.set(key, bar);
      }
      bar.setTotal(p.total);
      bar.update(p.done, { detail: p.detail ?? "" });
    } else if (p.done >= p.total && !this.finished.has(key)) {
      this.finished.add(key);
      process.stdout.write(`srlm: ${p.stage} done (${p.total})${p.detail ? ` ${p.detail}` : ""}\n`);
    } else if (p.done < p.total && Date.now() - (this.lastLine.get(key) ?? 0) >= 30_000) {
      this.lastLine.set(key, Date.now());
      process.stdout.write(`srlm: ${p.stage} ${p.done}/${p.total}${p.detail ? ` ${p.detail}` : ""}\n`);
    }
  }

  stop(): void {
    this.multibar?.stop();
  }
}

/** Resolves on Ctrl-C, a SIGTERM, or a closed stdout (`srlm run | head`); dispose() unhooks it. */
function interruption(): { interrupted: Promise<"interrupted">; dispose(): void } {
  let fire: () => void = () => {};
  const interrupted = new Promise<"interrupted">((r) => {
    fire = () => r("interrupted");
  });
  process.once("SIGINT", fire);
  process.once("SIGTERM", fire);
  process.stdout.once("error", fire);
  return {
    interrupted,
    dispose() {
      process.off("SIGINT", fire);
      process.off("SIGTERM", fire);
      process.stdout.off("error", fire);
    },
  };
}

/** Written beside config.json by `srlm run` / `srlm up`: how the run's bus was set up. */
export const RUN_FILE = "srlm-run.json";

/** Whether the run in `out` had srlm's embedded nats-server (so a resumed run starts a new one). */
export function hadEmbeddedNats(out: string): boolean {
  try {
    return (
      (JSON.parse(readFileSync(join(out, RUN_FILE), "utf8")) as { embeddedNats?: boolean }).embeddedNats ===
      true
    );
  } catch {
    return false;
  }
}

export interface RunOptions {
  /** Go on from the resume point in `out` (it must exist and fit the config); without it a resume
   * point left there by an earlier run is set aside and the run starts over. */
  resume?: boolean;
}

export async function runLoop(
  input: Config,
  hooks: RunHooks = {},
  options: RunOptions = {},
): Promise<number> {
  const say = hooks.say ?? stderrLine;
  const out = resolve(input.out);
  // Loaded here only: the checkpoint reader brings the model code along.
  const { RESUME_OBJECT, readResumePoint, resumeFile, setAsideResumePoint } = await import(
    "../actors/trainer/resume.ts"
  );
  if (options.resume) {
    // Checked before anything starts, so a wrong folder or a changed config fails at once.
    const point = readResumePoint({ ...input, out });
    if (!point)
      throw new Error(
        `--resume: ${out} holds no resume point (${resumeFile(out)}); the trainer writes one after M1 and after each iteration (ReFT: after the reranker and each PPO update)`,
      );
    const at =
      point.method === "reft"
        ? `update ${point.loop.updates.length + 1} of ${input.reft.updates}`
        : `iteration ${point.loop.nextIteration} of ${input.selfReward.iterations}`;
    say(`srlm: resuming run ${input.run} from ${point.loop.checkpoint}: ${at}`);
  } else {
    const aside = setAsideResumePoint(out);
    if (aside)
      say(
        `srlm: starting run ${input.run} over; the earlier run's resume point was moved to ${aside} (--resume continues a run)`,
      );
  }
  let trainerExit: (code: number | null) => void = () => {};
  const trainerExited = new Promise<number | null>((r) => {
    trainerExit = r;
  });
  // A fresh run starts over on the bus too: a trainer must not find the earlier run's copy there.
  const forget = options.resume ? undefined : { bucket: weightsBucket(input.run), name: RESUME_OBJECT };
  const system = await startSystem(input, true, hooks, (code) => trainerExit(code), forget);
  const { cfg } = system;
  let nc: NatsConnection;
  try {
    nc = await connectBus(system.bus("reader"));
  } catch (err) {
    // A bus that died under the connection is the run's failure, said as such, not a connect error.
    const died = await Promise.race([
      system.failed,
      new Promise<null>((r) => setTimeout(() => r(null), 3000)),
    ]);
    await system.stop();
    if (died === null) throw err;
    say(`srlm: the run failed: ${died}; actors stopped; logs: ${join(cfg.out, "logs")}`);
    return 1;
  }
  const view = new ProgressView();
  let done: RunDoneBody | null = null;
  const finished = new Promise<void>((resolveDone) => {
    nc.subscribe(subjects(cfg.run).events, {
      callback: (_err, m) => {
        const decoded = decodeEnvelope(m.subject, m.data);
        if (!decoded.ok) return;
        const progress = bodyOf(StageProgress, decoded.msg);
        if (progress) view.update(progress);
        const ended = bodyOf(RunDone, decoded.msg);
        if (ended) {
          done = ended;
          resolveDone();
        }
      },
    });
  });
  const stopSignal = interruption();
  let failure = "";
  const outcome = await Promise.race([
    finished.then(() => "done" as const),
    stopSignal.interrupted,
    trainerExited.then(() => "trainer-exit" as const),
    system.failed.then((reason) => {
      failure = reason;
      return "failed" as const;
    }),
  ]);
  stopSignal.dispose();
  if (outcome === "trainer-exit") await Promise.race([finished, new Promise((r) => setTimeout(r, 2000))]);
  view.stop();
  await nc.close();
  await system.stop();
  const result = done as RunDoneBody | null;
  if (outcome === "interrupted") {
    say("srlm: interrupted; actors stopped");
    return 130;
  }
  if (outcome === "failed") {
    say(`srlm: the run failed: ${failure}; actors stopped; logs: ${join(cfg.out, "logs")}`);
    return 1;
  }
  if (!result) {
    say(`srlm: the trainer exited before finishing the run; see ${join(cfg.out, "logs", "trainer-t0.log")}`);
    return 1;
  }
  if (!result.ok) {
    say(`srlm: the run failed: ${result.error}; see ${join(cfg.out, "logs")}`);
    return 1;
  }
  if (result.stopped)
    process.stderr.write(
      "srlm: stopped by `srlm control stop`; the report holds the iterations that finished\n",
    );
  process.stdout.write(`\n${result.summary}\nreport: ${result.report}\n`);
  return 0;
}

export async function up(input: Config, hooks: RunHooks = {}): Promise<number> {
  const say = hooks.say ?? stderrLine;
  const system = await startSystem(input, false, hooks);
  const { run, nats } = system.cfg;
  say(
    system.nats
      ? `srlm: actors of run ${run} are up against the embedded ${nats.url}, which admits only the ` +
          "processes srlm started (keys made for this run, held in their environment); to add a trainer " +
          `or other actors from elsewhere, run a server of your own: \`srlm nats-config --run ${run} --out DIR\`, ` +
          `\`nats-server -js -c DIR/server.conf\`, then \`srlm up --nats URL --run ${run} --set nats.keysDir=DIR\`; ` +
          "Ctrl-C stops everything"
      : `srlm: actors of run ${run} are up against ${nats.url}; start a trainer with ` +
          `\`srlm actor trainer --nats ${nats.url} --run ${run}${nats.keysDir ? ` --set nats.keysDir=${nats.keysDir}` : ""}\`; ` +
          "Ctrl-C stops everything",
  );
  const stopSignal = interruption();
  const outcome = await Promise.race([stopSignal.interrupted, system.failed]);
  stopSignal.dispose();
  await system.stop();
  if (outcome === "interrupted") return 0;
  say(`srlm: ${outcome}; actors stopped; logs: ${join(system.cfg.out, "logs")}`);
  return 1;
}
