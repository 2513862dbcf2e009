// One pino logger per actor process: NDJSON on stderr (stdout stays free for data), human-readable
// only when a person is watching the terminal.
import pino, { type Logger } from "pino";

export type { Logger } from "pino";

export interface LogBindings {
  run: string;
  actor: string;
  instance: string;
}

const LEVELS = new Set(["fatal", "error", "warn", "info", "debug", "trace", "silent"]);

export function logLevel(env: NodeJS.ProcessEnv = process.env): string {
  const level = (env.SRLM_LOG_LEVEL ?? "info").toLowerCase();
  if (!LEVELS.has(level)) {
    throw new Error(
      `SRLM_LOG_LEVEL=${env.SRLM_LOG_LEVEL} is not a level; use one of ${[...LEVELS].join(", ")}`,
    );
  }
  return level;
}

export function createLogger(bindings: LogBindings): Logger {
  const level = logLevel();
  const destination = process.stderr.isTTY
    ? pino.transport({ target: "pino-pretty", options: { destination: 2, colorize: true } })
    : pino.destination({ dest: 2, sync: true });
  return pino({ level, base: { ...bindings, pid: process.pid } }, destination);
}
