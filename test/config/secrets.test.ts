// Secrets never reach a file srlm writes or a config it prints; child processes get them through
// the environment, which config/load.ts reads back.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../../config/load.ts";
import { MASK, maskSecrets, secretEnv, withoutSecrets } from "../../config/secrets.ts";

const srlm = fileURLToPath(new URL("../../bin/srlm.js", import.meta.url));
const flags = {
  "nats.user": "alice",
  "nats.pass": "hunter2",
  "nats.token": "tok-1",
  "nats.nkeySeed": "SUAFAKE",
};

test("a config written without secrets plus the secret environment loads back the same", () => {
  const cfg = loadConfig({ env: {}, flags });
  const stored = withoutSecrets(cfg);
  const text = JSON.stringify(stored);
  for (const secret of ["hunter2", "tok-1", "SUAFAKE"])
    assert.ok(!text.includes(secret), `${secret} in ${text}`);
  assert.equal(stored.nats.user, "alice", "a user name is not a secret");
  const dir = mkdtempSync(join(tmpdir(), "srlm-secrets-"));
  try {
    const file = join(dir, "config.json");
    writeFileSync(file, text);
    const back = loadConfig({ file, env: secretEnv(cfg) });
    assert.deepEqual(back.nats, cfg.nats);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a password of digits read from the environment stays a string", () => {
  const cfg = loadConfig({ env: { SRLM_NATS__PASS: "012345", SRLM_NATS__USER: "42" } });
  assert.equal(cfg.nats.pass, "012345");
  assert.equal(cfg.nats.user, "42");
});

test("maskSecrets masks only what is set", () => {
  const masked = maskSecrets(loadConfig({ env: {}, flags: { "nats.pass": "hunter2" } }));
  assert.equal(masked.nats.pass, MASK);
  assert.equal(masked.nats.token, undefined);
});

test("`srlm config` prints secrets masked", () => {
  const r = spawnSync(
    process.execPath,
    [srlm, "config", ...Object.entries(flags).flatMap(([k, v]) => ["--set", `${k}=${v}`])],
    { encoding: "utf8" },
  );
  assert.equal(r.status, 0, r.stderr);
  for (const secret of ["hunter2", "tok-1", "SUAFAKE"]) assert.ok(!r.stdout.includes(secret), r.stdout);
  const printed = JSON.parse(r.stdout);
  assert.deepEqual(
    {
      pass: printed.nats.pass,
      token: printed.nats.token,
      nkeySeed: printed.nats.nkeySeed,
      user: printed.nats.user,
    },
    { pass: MASK, token: MASK, nkeySeed: MASK, user: "alice" },
  );
});
