// Throwaway JetStream nats-servers for tests: free ports on 127.0.0.1 and their own store
// directories, so tests never touch a server the machine may already run on 4222. A single server
// can be restarted on its port and store (what an operator's restart looks like to clients); a
// cluster's nodes can be killed one by one.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
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
  /** Stops the server (SIGTERM) and starts it again on the same port and store; resolves once it accepts. */
  restart(): Promise<void>;
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

interface ServerProcess {
  child: ChildProcess;
  exited: boolean;
  exit: Promise<void>;
  stderr(): string;
}

function spawnServer(args: string[]): ServerProcess {
  const child = spawn("nats-server", args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const p: ServerProcess = {
    child,
    exited: false,
    exit: new Promise<void>((resolve) =>
      child.once("exit", () => {
        p.exited = true;
        resolve();
      }),
    ),
    stderr: () => stderr,
  };
  return p;
}

async function untilAccepting(p: ServerProcess, port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await accepts(port))) {
    if (p.exited || Date.now() > deadline) {
      p.child.kill("SIGKILL");
      throw new Error(`test harness: nats-server on port ${port} did not start:\n${p.stderr()}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function terminate(p: ServerProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (p.exited) return;
  p.child.kill(signal);
  const killer = setTimeout(() => p.child.kill("SIGKILL"), 3000);
  await p.exit;
  clearTimeout(killer);
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
  let server = spawnServer(args);
  try {
    await untilAccepting(server, port);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    async restart() {
      await terminate(server);
      server = spawnServer(args);
      await untilAccepting(server, port);
    },
    async stop() {
      await terminate(server);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface NatsClusterHandle {
  /** Client URLs, one per node. */
  urls: string[];
  /** SIGKILLs node `i` (no goodbye to its routes or clients, as a crashed host). */
  kill(i: number): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A JetStream cluster of `size` nodes on 127.0.0.1 with open auth, each with its own store.
 * Resolves once every node accepts clients and the cluster can place a stream on all of them, so
 * a test's first stream create does not race the election.
 */
export async function startNatsCluster(size = 3): Promise<NatsClusterHandle> {
  assertBinary();
  const dir = await mkdtemp(join(tmpdir(), "srlm-nats-cluster-"));
  const ports: number[] = [];
  const routes: number[] = [];
  for (let i = 0; i < size; i++) {
    ports.push(await freePort());
    routes.push(await freePort());
  }
  const nodes: ServerProcess[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => terminate(n)));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < size; i++) {
      const conf = join(dir, `n${i}.conf`);
      await writeFile(
        conf,
        [
          `server_name: n${i}`,
          `listen: 127.0.0.1:${ports[i]}`,
          `jetstream { store_dir: "${join(dir, `store${i}`)}" }`,
          "cluster {",
          "  name: srlm-test",
          `  listen: 127.0.0.1:${routes[i]}`,
          `  routes: [${routes.map((r) => `nats-route://127.0.0.1:${r}`).join(", ")}]`,
          "}",
          "",
        ].join("\n"),
      );
      nodes.push(spawnServer(["-c", conf]));
    }
    for (let i = 0; i < size; i++) await untilAccepting(nodes[i], ports[i]);
    const urls = ports.map((p) => `nats://127.0.0.1:${p}`);
    const nc = await connect({ servers: urls });
    try {
      // The API answers once a meta leader is elected; a stream of `size` replicas is placed once
      // every node has joined.
      const jsm = await jetstreamManager(nc, { checkAPI: false });
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          await jsm.streams.add({ name: "cluster-probe", subjects: ["cluster-probe"], num_replicas: size });
          await jsm.streams.delete("cluster-probe");
          break;
        } catch (err) {
          if (Date.now() > deadline)
            throw new Error(`test harness: the cluster did not come up: ${(err as Error).message}`);
          await new Promise((r) => setTimeout(r, 250));
        }
      }
    } finally {
      await nc.close();
    }
    return {
      urls,
      kill: (i) => terminate(nodes[i], "SIGKILL"),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
