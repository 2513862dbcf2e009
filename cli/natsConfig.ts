// `srlm nats-config --run NAME --out DIR`: what a user's own nats-server (or cluster) needs to host a
// run with the same per-role permissions as the embedded one: the accounts block, a minimal server
// config including it, and one nkey seed per role. The seeds are the secrets: written owner-only
// into DIR, never printed; the config holds only public keys.
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import {
  accountName,
  accountsConfig,
  generateRoleKeys,
  permissionTable,
  ROLES,
  type Role,
} from "../bus/permissions.ts";
import { assertRunId } from "../bus/subjects.ts";

export interface NatsConfigResult {
  dir: string;
  files: string[];
  /** The how-to printed to the user (also written as DIR/README.txt). */
  guide: string;
}

const USED_BY: Record<Role, string> = {
  trainer: "srlm actor trainer",
  generator: "srlm actor generator",
  judge: "srlm actor judge",
  reference: "srlm actor reference",
  reader: "srlm tap, srlm status, srlm serve --run",
  operator: "srlm control",
};

export function writeNatsConfig(run: string, dir: string, opts: { force?: boolean } = {}): NatsConfigResult {
  assertRunId(run);
  const out = resolve(dir);
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const seedFiles = ROLES.map((role) => join(out, `${role}.nk`));
  const existing = seedFiles.filter((f) => existsSync(f));
  // New keys would lock out every process still holding the old ones; say so instead.
  if (existing.length > 0 && !opts.force) {
    throw new Error(
      `nats-config: ${existing.join(", ")} already exist; new keys would lock out processes using them ` +
        "(pass --force to replace them)",
    );
  }
  const keys = generateRoleKeys();
  const publicKeys = Object.fromEntries(ROLES.map((r) => [r, keys[r].publicKey])) as Record<Role, string>;
  const accounts = join(out, "accounts.conf");
  const server = join(out, "server.conf");
  writeFileSync(
    accounts,
    `# srlm run ${run}: account ${accountName(run)}, one nkey user per role (written by srlm nats-config).\n` +
      `${accountsConfig(run, publicKeys)}\n`,
  );
  writeFileSync(
    server,
    "# A minimal server for the run; on a server of your own, include accounts.conf in its config.\n" +
      'jetstream: { store_dir: "./jetstream" }\ninclude ./accounts.conf\n',
  );
  for (const role of ROLES) {
    const file = join(out, `${role}.nk`);
    writeFileSync(file, `${keys[role].seed}\n`, { mode: 0o600 });
    // mode applies only to a new file; a replaced one (--force) may have been readable.
    chmodSync(file, 0o600);
  }
  const guide = natsConfigGuide(run, out);
  writeFileSync(join(out, "README.txt"), `${guide}\n`);
  return { dir: out, files: [server, accounts, ...seedFiles, join(out, "README.txt")], guide };
}

export function natsConfigGuide(run: string, dir: string): string {
  const table = permissionTable(run);
  const lines = [
    `srlm run ${run}: server config and one nkey per role in ${dir}`,
    "",
    `  nats-server -c ${join(dir, "server.conf")}    # or include accounts.conf in your own server's config`,
    "",
    "Each command connects as its role's user with --set nats.keysDir=DIR (it reads DIR/<role>.nk),",
    'or with the seed in its environment: SRLM_NATS__NKEY_SEED="$(cat DIR/<role>.nk)".',
    "",
  ];
  for (const role of ROLES) {
    lines.push(`  ${`${role}.nk`.padEnd(14)} ${USED_BY[role].padEnd(22)} ${table[role].purpose}`);
  }
  lines.push(
    "",
    `  srlm up   --nats URL --run ${run} --set nats.keysDir=${dir}    # workers, each with its own key`,
    `  srlm run  --nats URL --run ${run} --set nats.keysDir=${dir}    # the whole loop`,
    `  srlm actor judge --nats URL --run ${run} --set nats.keysDir=${dir}`,
    "",
    "The .nk files are secrets (owner-only); copy each host only the keys of the roles it runs.",
  );
  return lines.join("\n");
}
