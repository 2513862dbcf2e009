// `srlm serve --run` on a server with srlm's per-role users (`srlm nats-config`): it follows the
// run's published weights holding the reader's key alone, the role that may read everything of a
// run and write nothing, and serves each new version as the trainer announces it.
import assert from "node:assert/strict";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { disposePolicy, policyToBlob } from "../../actors/policy.ts";
import { connectBus } from "../../bus/connect.ts";
import { encodeEnvelope, makeEnvelope } from "../../bus/envelope.ts";
import { WeightsPublished } from "../../bus/messages.ts";
import { putBlob } from "../../bus/objects.ts";
import { inboxPrefix, weightsBucket } from "../../bus/permissions.ts";
import { ensureStreams } from "../../bus/queues.ts";
import { subjects } from "../../bus/subjects.ts";
import { selectBackend } from "../../model/backend.ts";
import { presetConfig } from "../../model/config.ts";
import { Llama } from "../../model/llama.ts";
import { CharTokenizer } from "../../model/tokenizer.ts";
import { DOMAIN_CHARSET } from "../../tasks/index.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";
import { killAll, runSrlm, spawnSrlm } from "../helpers/srlm.ts";

const RUN = "serverun";
let dir: string;
let server: NatsServerHandle;
let trainer: NatsConnection;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "srlm-serverun-"));
  const made = await runSrlm(["nats-config", "--run", RUN, "--out", join(dir, "all")]);
  assert.equal(made.code, 0, made.stderr);
  server = await startNatsServer({ conf: readFileSync(join(dir, "all", "accounts.conf"), "utf8") });
  trainer = await connectBus({
    servers: [server.url],
    nkeySeed: readFileSync(join(dir, "all", "trainer.nk"), "utf8").trim(),
    inboxPrefix: inboxPrefix(RUN, "trainer"),
  });
  await ensureStreams(await jetstreamManager(trainer), RUN);
  await selectBackend("cpu", { info() {} });
});

after(async () => {
  killAll();
  await trainer?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** What the trainer does for a new version: the blob into the object store, then the announcement. */
async function publish(version: number): Promise<void> {
  const tokenizer = new CharTokenizer(DOMAIN_CHARSET);
  const policy = {
    version,
    model: Llama.init(presetConfig("tiny", tokenizer), { seed: version }),
    tokenizer,
  };
  const ref = await putBlob(trainer, weightsBucket(RUN), `v${version}`, policyToBlob(policy));
  disposePolicy(policy);
  const env = makeEnvelope(
    WeightsPublished,
    { version, bucket: ref.bucket, name: ref.name, digest: ref.digest, bytes: ref.bytes },
    { run: RUN, producer: { actor: "trainer", instance: "test" } },
  );
  await jetstream(trainer).publish(subjects(RUN).weights, encodeEnvelope(env));
}

async function fingerprint(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${url}/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: `srlm-${RUN}`, prompt: "Reverse: lamp", max_tokens: 2, temperature: 0 }),
  });
  const text = await res.text();
  return { status: res.status, body: res.status === 200 ? JSON.parse(text).system_fingerprint : text };
}

/** Asks until the server serves `want` (it loads a version in the background); bounded by tries. */
async function serving(url: string, want: string, output: () => string): Promise<void> {
  let last = { status: 0, body: "" };
  for (let i = 0; i < 300 && last.body !== want; i++) {
    last = await fingerprint(url);
    if (last.body !== want) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(last.body, want, `serve did not serve ${want} (HTTP ${last.status}):\n${output()}`);
}

test("srlm serve --run on a permissioned server follows the weights with the reader's key alone", {
  timeout: 120_000,
}, async () => {
  // Only the reader's key where serve looks for keys: no worker's, not the trainer's.
  const readerOnly = join(dir, "reader-only");
  mkdirSync(readerOnly, { mode: 0o700 });
  copyFileSync(join(dir, "all", "reader.nk"), join(readerOnly, "reader.nk"));
  await publish(1);
  const serve = spawnSrlm([
    "serve",
    "--run",
    RUN,
    "--nats",
    server.url,
    "--set",
    `nats.keysDir=${readerOnly}`,
    "--backend",
    "cpu",
    "--port",
    "0",
  ]);
  const { url } = await serve.jsonLine<{ url: string }>((x) => typeof x.url === "string");
  await serving(url, "srlm-v1", serve.output);
  await publish(2);
  await serving(url, "srlm-v2", serve.output);
  serve.proc.kill("SIGTERM");
  assert.equal(await serve.exit, 0, serve.output());
  assert.doesNotMatch(serve.output(), /Permissions Violation|authorization/i);
});
