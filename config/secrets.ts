// Which config fields are secrets, and the three ways srlm handles them: left out of files it
// writes, masked where it prints, and handed to child processes through their environment (the
// SRLM_NATS__* variables config/load.ts reads), where no other user of the machine can read them.
import type { Config } from "./schema.ts";

const SECRET_FIELDS = ["pass", "token", "nkeySeed"] as const;
type SecretField = (typeof SECRET_FIELDS)[number];

const ENV_NAMES: Record<SecretField, string> = {
  pass: "SRLM_NATS__PASS",
  token: "SRLM_NATS__TOKEN",
  nkeySeed: "SRLM_NATS__NKEY_SEED",
};

export const MASK = "***";

function replaceSecrets(cfg: Config, by: string | undefined): Config {
  const nats: Config["nats"] = { ...cfg.nats };
  for (const field of SECRET_FIELDS) {
    if (nats[field] === undefined) continue;
    if (by === undefined) delete nats[field];
    else nats[field] = by;
  }
  return { ...cfg, nats };
}

/** The config as it may be written to disk: every secret left out. */
export function withoutSecrets(cfg: Config): Config {
  return replaceSecrets(cfg, undefined);
}

/** The config as it may be shown: every secret that is set reads "***". */
export function maskSecrets(cfg: Config): Config {
  return replaceSecrets(cfg, MASK);
}

/** Environment variables that give a child process the secrets withoutSecrets() left out. */
export function secretEnv(cfg: Config): Record<string, string> {
  const env: Record<string, string> = {};
  for (const field of SECRET_FIELDS) {
    const value = cfg.nats[field];
    if (value !== undefined) env[ENV_NAMES[field]] = value;
  }
  return env;
}

/**
 * The environment that makes a child connect as exactly one nkey user: the seed, and every other
 * way of authenticating the parent's own environment may carry removed (undefined), so a
 * SRLM_NATS__USER left in the shell cannot ride along and confuse the server.
 */
export function nkeyOnlyEnv(seed: string): Record<string, string | undefined> {
  return {
    SRLM_NATS__USER: undefined,
    SRLM_NATS__PASS: undefined,
    SRLM_NATS__TOKEN: undefined,
    SRLM_NATS__CREDS_FILE: undefined,
    SRLM_NATS__KEYS_DIR: undefined,
    [ENV_NAMES.nkeySeed]: seed,
  };
}
