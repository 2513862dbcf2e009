// The embedded default: when no NATS URL is configured, srlm starts its own nats-server with
// JetStream on a free port and a temporary store, as a child process that dies with srlm.
//
// nats-server has no parent watch of its own, so a SIGKILLed srlm would leave it running. A
// POSIX-shell guard sits between them: it starts the server, stops it when srlm's pid is gone
// (checked every second) or when the guard itself gets SIGTERM, and exits with it.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface EmbeddedNats {
  url: string;
  /** The nats-server process itself (not its guard). */
  pid: number;
  /**
   * Resolves, with what is known of why, if the server ends without stop() having been called: the
   * run's whole bus is gone then, and its owner must say so rather than wait on it.
   */
  died: Promise<string>;
  stop(): Promise<void>;
}

const installHelp =
  "install it (Debian/Ubuntu: `sudo apt-get install nats-server`; or a release binary from the NATS project), " +
  "or point srlm at a running server with --nats nats://HOST:4222 (or SRLM_NATS_URL)";

export function natsServerBinary(): string | null {
  const found = spawnSync("nats-server", ["--version"], { encoding: "utf8" });
  return found.error ? null : "nats-server";
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
    socket.connect(port, "127.0.0.1");
  });
}

export interface EmbeddedOptions {
  maxPayload?: number;
  // Where the JetStream store lives; a fresh temporary folder (removed on stop) when absent.
  storeDir?: string;
  /**
   * Server config text (accounts, users and their permissions: bus/permissions.ts). It holds
   * public nkeys only, so the file it goes to is no secret; removed on stop all the same.
   */
  conf?: string;
  /** Where the server's own log goes too (permission violations are logged there). */
  logFile?: string;
}

export async function startEmbeddedNats(options: EmbeddedOptions = {}): Promise<EmbeddedNats> {
  if (!natsServerBinary()) throw new Error(`nats-server was not found on PATH: ${installHelp}`);
  const port = await freePort();
  const ownStore = !options.storeDir;
  const storeDir = options.storeDir ?? mkdtempSync(join(tmpdir(), "srlm-nats-"));
  const args = ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir];
  if (options.maxPayload) args.push("--max_payload", String(options.maxPayload));
  let confDir: string | null = null;
  if (options.conf !== undefined) {
    confDir = mkdtempSync(join(tmpdir(), "srlm-nats-conf-"));
    const confFile = join(confDir, "server.conf");
    writeFileSync(confFile, `${options.conf}\n`, { mode: 0o600 });
    args.push("-c", confFile);
  }
  const logStream = options.logFile ? createWriteStream(options.logFile, { flags: "a" }) : null;
  const guard = [
    `"$0" "$@" & server=$!`,
    `echo $server`,
    `trap 'kill $server 2>/dev/null; wait $server; exit 0' TERM INT`,
    `while kill -0 ${process.pid} 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 1; done`,
    `kill $server 2>/dev/null; wait $server`,
  ].join("\n");
  const child: ChildProcess = spawn("sh", ["-c", guard, "nats-server", ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
    logStream?.write(chunk);
  });
  // The guard's one line of output: the server's pid.
  let stdout = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  const serverPid = () => {
    const pid = Number.parseInt(stdout, 10);
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  };
  let exited = false;
  let stopping = false;
  let onDied: (why: string) => void = () => {};
  const died = new Promise<string>((resolve) => {
    onDied = resolve;
  });
  child.once("exit", (code, signal) => {
    exited = true;
    if (stopping) return;
    const last = stderr.trim().split("\n").slice(-3).join(" | ");
    onDied(
      `nats-server (pid ${serverPid() ?? "?"}, port ${port}) exited (${signal ?? `code ${code}`})` +
        (last ? `: ${last}` : ""),
    );
  });
  const stop = async () => {
    stopping = true;
    if (!exited) {
      const done = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      // The guard answers SIGTERM after its current one-second sleep at most.
      await Promise.race([done, new Promise((resolve) => setTimeout(resolve, 4000))]);
      if (!exited) child.kill("SIGKILL");
    }
    if (ownStore) rmSync(storeDir, { recursive: true, force: true });
    if (confDir) rmSync(confDir, { recursive: true, force: true });
    logStream?.end();
  };
  for (let i = 0; i < 100; i++) {
    if (exited) throw new Error(`nats-server exited at start: ${stderr.trim() || "no output"}`);
    const pid = serverPid();
    if (pid !== null && (await accepts(port))) return { url: `nats://127.0.0.1:${port}`, pid, died, stop };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stop();
  throw new Error(`nats-server did not accept connections on 127.0.0.1:${port} within 5 s: ${stderr.trim()}`);
}
