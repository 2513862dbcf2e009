// Starts a throwaway JetStream nats-server for one test file: a free port on 127.0.0.1 and its
// own store directory, so tests never touch a server the machine may already run on 4222.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { accepts, freePort } from "../../cli/embeddedNats.ts";

export interface NatsServerOptions {
  /** Largest message the server accepts, in bytes (nats-server default: 1 MiB). */
  maxPayload?: number;
  /** More server config, e.g. an `authorization { ... }` block. */
  conf?: string;
}

export interface NatsServerHandle {
  url: string;
  port: number;
  stop(): Promise<void>;
}

function assertBinary(): void {
  const probe = spawnSync("nats-server", ["--version"], { encoding: "utf8" });
  if (probe.error) {
    throw new Error(
      "test harness: the `nats-server` binary was not found on PATH; install it (e.g. `apt-get install nats-server`) " +
        "to run the bus integration tests",
    );
  }
}

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServerHandle> {
  assertBinary();
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), "srlm-nats-"));
  const args = ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", join(dir, "store")];
  // max_payload and authorization are config-file-only settings.
  const lines: string[] = [];
  if (opts.maxPayload !== undefined) lines.push(`max_payload: ${opts.maxPayload}`);
  if (opts.conf) lines.push(opts.conf);
  if (lines.length > 0) {
    const conf = join(dir, "server.conf");
    await writeFile(conf, `${lines.join("\n")}\n`);
    args.push("-c", conf);
  }
  const child: ChildProcess = spawn("nats-server", args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once("exit", () => {
      exited = true;
      resolve();
    }),
  );

  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (exited || Date.now() > deadline) {
      child.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
      throw new Error(`test harness: nats-server on port ${port} did not start:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }

  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    async stop() {
      if (!exited) {
        child.kill("SIGTERM");
        const killer = setTimeout(() => child.kill("SIGKILL"), 3000);
        await exit;
        clearTimeout(killer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
