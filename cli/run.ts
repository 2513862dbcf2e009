// `srlm run` (the whole loop) and `srlm up` (actors waiting for work): NATS, one process per actor,
// progress on the terminal, a clean stop on Ctrl-C.
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { MultiBar, Presets, type SingleBar } from "cli-progress";
import { busOptions } from "../actors/start.ts";
import { connectBus } from "../bus/connect.ts";
import { decodeEnvelope } from "../bus/envelope.ts";
import type { RunDoneBody, StageProgressBody } from "../bus/messages.ts";
import { subjects } from "../bus/subjects.ts";
import type { Config } from "../config/schema.ts";
import { type EmbeddedNats, startEmbeddedNats } from "./embeddedNats.ts";
import { type ActorSpec, Supervisor } from "./supervisor.ts";

interface System {
  cfg: Config;
  nats: EmbeddedNats | null;
  supervisor: Supervisor;
  stop(): Promise<void>;
}

async function startSystem(
  input: Config,
  withTrainer: boolean,
  onTrainerExit?: (code: number | null) => void,
): Promise<System> {
  const cfg: Config = { ...input, out: resolve(input.out), nats: { ...input.nats } };
  mkdirSync(cfg.out, { recursive: true });
  let nats: EmbeddedNats | null = null;
  if (!cfg.nats.url) {
    nats = await startEmbeddedNats({ storeDir: undefined });
    cfg.nats.url = nats.url;
    process.stderr.write(`srlm: started nats-server with JetStream at ${nats.url}\n`);
  }
  const configFile = join(cfg.out, "config.json");
  writeFileSync(configFile, `${JSON.stringify(cfg, null, 2)}\n`);
  const supervisor = new Supervisor(join(cfg.out, "logs"), {
    onExit(spec, code, signal, restarting) {
      if (code !== 0 || signal) {
        process.stderr.write(
          `srlm: ${spec.actor}/${spec.instance} exited (${signal ?? `code ${code}`})${restarting ? ", restarting" : ""}; log: ${join(cfg.out, "logs", `${spec.actor}-${spec.instance}.log`)}\n`,
        );
      }
      if (spec.actor === "trainer") onTrainerExit?.(code);
    },
  });
  const specs: ActorSpec[] = [{ actor: "reference", instance: "r0", configFile }];
  for (let i = 0; i < cfg.actors.generators; i++)
    specs.push({ actor: "generator", instance: `g${i}`, configFile });
  for (let i = 0; i < cfg.actors.judges; i++)
    specs.push({ actor: "judge", instance: `j${i}`, configFile, impl: cfg.actors.judgeImpl });
  if (withTrainer) specs.push({ actor: "trainer", instance: "t0", configFile, restart: false });
  for (const spec of specs) supervisor.start(spec);
  return {
    cfg,
    nats,
    supervisor,
    async stop() {
      await supervisor.stopAll();
      await nats?.stop();
    },
  };
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

export async function runLoop(input: Config): Promise<number> {
  let trainerExit: (code: number | null) => void = () => {};
  const trainerExited = new Promise<number | null>((r) => {
    trainerExit = r;
  });
  const system = await startSystem(input, true, (code) => trainerExit(code));
  const { cfg } = system;
  const nc = await connectBus(busOptions(cfg));
  const view = new ProgressView();
  let done: RunDoneBody | null = null;
  const finished = new Promise<void>((resolveDone) => {
    nc.subscribe(subjects(cfg.run).events, {
      callback: (_err, m) => {
        const decoded = decodeEnvelope(m.subject, m.data);
        if (!decoded.ok) return;
        if (decoded.msg.type === "stage.progress") view.update(decoded.msg.body as StageProgressBody);
        if (decoded.msg.type === "run.done") {
          done = decoded.msg.body as RunDoneBody;
          resolveDone();
        }
      },
    });
  });
  // Ctrl-C, a SIGTERM, or a closed stdout (`srlm run | head`) all stop the actors before exiting.
  const interrupted = new Promise<"interrupted">((r) => {
    process.once("SIGINT", () => r("interrupted"));
    process.once("SIGTERM", () => r("interrupted"));
    process.stdout.once("error", () => r("interrupted"));
  });
  const outcome = await Promise.race([
    finished.then(() => "done" as const),
    interrupted,
    trainerExited.then(() => "trainer-exit" as const),
  ]);
  if (outcome === "trainer-exit") await Promise.race([finished, new Promise((r) => setTimeout(r, 2000))]);
  view.stop();
  await nc.close();
  await system.stop();
  const result = done as RunDoneBody | null;
  if (outcome === "interrupted") {
    process.stderr.write("srlm: interrupted; actors stopped\n");
    return 130;
  }
  if (!result) {
    process.stderr.write(
      `srlm: the trainer exited before finishing the run; see ${join(cfg.out, "logs", "trainer-t0.log")}\n`,
    );
    return 1;
  }
  if (!result.ok) {
    process.stderr.write(`srlm: the run failed: ${result.error}; see ${join(cfg.out, "logs")}\n`);
    return 1;
  }
  if (result.stopped)
    process.stderr.write(
      "srlm: stopped by `srlm control stop`; the report holds the iterations that finished\n",
    );
  process.stdout.write(`\n${result.summary}\nreport: ${result.report}\n`);
  return 0;
}

export async function up(input: Config): Promise<number> {
  const system = await startSystem(input, false);
  process.stderr.write(
    `srlm: actors of run ${system.cfg.run} are up against ${system.cfg.nats.url}; start a trainer with ` +
      `\`srlm actor trainer --nats ${system.cfg.nats.url} --run ${system.cfg.run}\`; Ctrl-C stops everything\n`,
  );
  await new Promise<void>((r) => {
    process.once("SIGINT", () => r());
    process.once("SIGTERM", () => r());
  });
  await system.stop();
  return 0;
}
