// `srlm nats-config`: the config it writes runs a real server on which each role's key file, found
// through nats.keysDir, admits that role with that role's permissions; the keys are owner-only and
// never replaced by accident.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { busOptions } from "../../actors/start.ts";
import { connectBus } from "../../bus/connect.ts";
import { ROLES } from "../../bus/permissions.ts";
import { ensureStreams } from "../../bus/queues.ts";
import { subjects } from "../../bus/subjects.ts";
import { writeNatsConfig } from "../../cli/natsConfig.ts";
import { loadConfig } from "../../config/load.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";

const RUN = "mine";
let dir: string;
let server: NatsServerHandle;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "srlm-natsconf-"));
  writeNatsConfig(RUN, dir);
  server = await startNatsServer({ conf: readFileSync(join(dir, "accounts.conf"), "utf8") });
});

after(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

test("the written keys are owner-only, listed in the guide, and not replaced without --force", () => {
  const again = () => writeNatsConfig(RUN, dir);
  for (const role of ROLES) {
    assert.equal(statSync(join(dir, `${role}.nk`)).mode & 0o777, 0o600, `${role}.nk is readable by others`);
  }
  const seed = readFileSync(join(dir, "judge.nk"), "utf8");
  assert.throws(again, /judge\.nk.* already exist; new keys would lock out processes using them/);
  assert.equal(readFileSync(join(dir, "judge.nk"), "utf8"), seed, "a refused write changed a key");
  const guide = readFileSync(join(dir, "README.txt"), "utf8");
  for (const role of ROLES) assert.match(guide, new RegExp(`${role}\\.nk`));
  assert.ok(
    !readFileSync(join(dir, "accounts.conf"), "utf8").includes(seed.trim()),
    "a seed is in the config",
  );
});

test("with nats.keysDir each role connects as its own user, with its own rights", async () => {
  const cfg = loadConfig({ env: {}, flags: { run: RUN, "nats.url": server.url, "nats.keysDir": dir } });
  const s = subjects(RUN);
  const trainer = await connectBus(busOptions(cfg, "trainer"));
  const judge = await connectBus(busOptions(cfg, "judge"));
  try {
    await ensureStreams(await jetstreamManager(trainer), RUN);
    const js = jetstream(judge, { timeout: 3000 });
    const ack = await js.publish(s.result("scores"), new Uint8Array([1]));
    assert.equal(ack.stream, s.resultStream);
    await assert.rejects(js.publish(s.weights, new Uint8Array([1])), /Permissions Violation for Publish/);
  } finally {
    await judge.close();
    await trainer.close();
  }
  const missing = loadConfig({
    env: {},
    flags: { run: RUN, "nats.url": server.url, "nats.keysDir": tmpdir() },
  });
  assert.throws(() => busOptions(missing, "judge"), /nats\.keysDir: cannot read the judge key .*judge\.nk/);
});
