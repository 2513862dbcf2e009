// `srlm` child processes for integration tests: started with bin/srlm.js, output kept (the tail)
// for failure messages, stdout lines readable as they come, and every process killed at the end.
import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const SRLM = fileURLToPath(new URL("../../bin/srlm.js", import.meta.url));

export interface SrlmProcess {
  proc: ChildProcess;
  exit: Promise<number | null>;
  /** The last 8000 characters of stdout and stderr together. */
  output(): string;
  /** The first stdout line that parses as JSON and satisfies `pick`. */
  jsonLine<T>(pick: (x: T) => boolean, ms?: number): Promise<T>;
}

const running = new Set<ChildProcess>();

export function spawnSrlm(args: string[], env: Record<string, string> = {}): SrlmProcess {
  const proc = spawn(process.execPath, [SRLM, ...args], {
    env: { ...process.env, SRLM_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(proc);
  let out = "";
  let stdout = "";
  const keep = (c: Buffer) => {
    out = (out + c.toString()).slice(-8000);
  };
  proc.stdout?.on("data", (c: Buffer) => {
    stdout += c.toString();
    keep(c);
  });
  proc.stderr?.on("data", keep);
  const exit = new Promise<number | null>((resolve) =>
    proc.once("exit", (code) => {
      running.delete(proc);
      resolve(code);
    }),
  );
  return {
    proc,
    exit,
    output: () => out,
    async jsonLine<T>(pick: (x: T) => boolean, ms = 90_000): Promise<T> {
      const deadline = Date.now() + ms;
      for (;;) {
        for (const line of stdout.split("\n")) {
          try {
            const x = JSON.parse(line) as T;
            if (pick(x)) return x;
          } catch {
            // not a JSON line
          }
        }
        if (proc.exitCode !== null) throw new Error(`srlm ${args[0]} exited (${proc.exitCode}):\n${out}`);
        if (Date.now() > deadline)
          throw new Error(`srlm ${args[0]}: no such stdout line within ${ms} ms:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

/** Kills every process spawnSrlm started that is still running. */
export function killAll(): void {
  for (const p of running) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
}

export interface SrlmOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `srlm` to its end, as a user would, with its whole stdout and stderr. */
export function runSrlm(args: string[]): Promise<SrlmOutcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [SRLM, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    running.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (c: Buffer) => {
      stdout += c;
    });
    child.stderr?.on("data", (c: Buffer) => {
      stderr += c;
    });
    child.once("exit", (code) => {
      running.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

/** `--set` flags that shrink the tiny preset to one iteration on fewer steps, still enough training
 * for M1 to write parsable prompts and judgements: for tests and benches that need a whole run
 * but measure something else (restarts, failover, judge swaps). */
export const SHORT_TINY_RUN = [
  "selfReward.iterations=1",
  "data.heldOutSize=20",
  "train.pretrain.steps=150",
  "train.sft.steps=150",
].flatMap((s) => ["--set", s]);
