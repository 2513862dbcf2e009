// The weight cache trusts bytes, not version numbers: a forged ref cannot poison what a version
// means for later jobs, a ref whose digest does not match is refused, and an announcement that
// does not verify is dead-lettered and never becomes "latest".
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import pino from "pino";
import { disposePolicy, type Policy, policyToBlob } from "../../actors/policy.ts";
import { WeightCache } from "../../actors/weights.ts";
import { connectBus } from "../../bus/connect.ts";
import { decodeEnvelope, encodeEnvelope, makeEnvelope } from "../../bus/envelope.ts";
import type { DeadLetterBody, WeightRef } from "../../bus/messages.ts";
import { putBlob } from "../../bus/objects.ts";
import { ensureStreams } from "../../bus/queues.ts";
import { subjects } from "../../bus/subjects.ts";
import { selectBackend } from "../../model/backend.ts";
import { weightsToBytes } from "../../model/checkpoint.ts";
import { presetConfig } from "../../model/config.ts";
import { Llama } from "../../model/llama.ts";
import { CharTokenizer } from "../../model/tokenizer.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";

const RUN = "wcache";
const s = subjects(RUN);
const log = pino({ level: "silent" });
const trainer = { actor: "trainer", instance: "t0" };
let server: NatsServerHandle;
let nc: NatsConnection;
let js: JetStreamClient;
const dead: DeadLetterBody[] = [];

async function publishPolicy(
  bucket: string,
  name: string,
  version: number,
  seed: number,
): Promise<WeightRef> {
  const tokenizer = new CharTokenizer();
  const policy: Policy = { version, model: Llama.init(presetConfig("tiny", tokenizer), { seed }), tokenizer };
  const ref = await putBlob(nc, bucket, name, policyToBlob(policy));
  disposePolicy(policy);
  return { version, bucket: ref.bucket, name: ref.name, digest: ref.digest };
}

function announce(ref: WeightRef): void {
  const env = makeEnvelope("weights.published", { ...ref, bytes: 1 }, { run: RUN, producer: trainer });
  nc.publish(s.weights, encodeEnvelope(env));
}

const sameWeights = (a: Policy, b: Policy) =>
  Buffer.from(weightsToBytes(a.model)).equals(weightsToBytes(b.model));

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

before(async () => {
  await selectBackend("cpu", { info() {} });
  server = await startNatsServer();
  nc = await connectBus({ servers: [server.url] });
  js = jetstream(nc);
  await ensureStreams(await jetstreamManager(nc), RUN);
  nc.subscribe(s.deadAll, {
    callback: (_err, m) => {
      const d = decodeEnvelope(m.subject, m.data);
      if (d.ok && d.msg.type === "dead.letter") dead.push(d.msg.body as DeadLetterBody);
    },
  });
});
after(async () => {
  await nc?.close();
  await server?.stop();
});

test("a forged ref naming the same version in another bucket does not poison the run's version", async () => {
  const real = await publishPolicy(`srlm-${RUN}-weights`, "v2", 2, 1);
  const forged = await publishPolicy("attacker", "v2", 2, 99);
  const cache = new WeightCache(nc, log);
  const fromForged = await cache.get(forged);
  const fromReal = await cache.get(real);
  assert.notEqual(fromReal, fromForged, "the run's v2 is not the attacker's v2");
  assert.ok(!sameWeights(fromReal, fromForged), "and does not carry the attacker's weights");
  assert.equal(await cache.get(real), fromReal, "the real one is cached under its own bytes");
});

test("a ref whose digest does not match the bytes is refused with a clear error", async () => {
  const real = await publishPolicy(`srlm-${RUN}-weights`, "v3", 3, 2);
  const cache = new WeightCache(nc, log);
  const wrong = { ...real, digest: `sha256:${"ab".repeat(32)}` };
  await assert.rejects(
    cache.get(wrong),
    /object srlm-wcache-weights\/v3 does not match its ref: digest sha256:/,
  );
  await assert.rejects(cache.get({ ...real, digest: "md5:xyz" }), /not of the form sha256:<64 hex digits>/);
  await assert.rejects(cache.get({ ...real, version: 7 }), /hold version 3, but the ref names version 7/);
  assert.equal((await cache.get(real)).version, 3, "the right ref still loads after the refusals");
});

test("a forged announcement with a wrong digest is dead-lettered and never becomes latest", async () => {
  const v4 = await publishPolicy(`srlm-${RUN}-weights`, "v4", 4, 4);
  const v5 = await publishPolicy(`srlm-${RUN}-weights`, "v5", 5, 5);
  const cache = new WeightCache(nc, log);
  cache.follow({ js, run: RUN, producer: { actor: "generator", instance: "g0" } });
  await nc.flush();
  dead.length = 0;

  announce(v4);
  announce({ ...v4, version: 999, digest: `sha256:${"0".repeat(64)}` });
  nc.publish(s.weights, new Uint8Array([1, 2, 3]));
  await nc.flush();
  await new Promise((r) => setTimeout(r, 200));

  assert.equal((await cache.latest(v4)).version, 4, "latest stands on the newest version that verifies");
  assert.equal(cache.latestVersion(), 4);
  await until("two dead letters", () => dead.length >= 2);
  const refused = dead.find((d) => d.reason.includes("v999"));
  assert.ok(refused, JSON.stringify(dead.map((d) => d.reason)));
  assert.match(
    refused.reason,
    /weights\.published v999 .* refused: object srlm-wcache-weights\/v4 does not match/,
  );
  assert.equal(refused.subject, s.weights);
  assert.ok(
    dead.some((d) => /bad msgpack on srlm\.wcache\.weights/.test(d.reason)),
    "garbage dead-lettered too",
  );

  // The refused version is not retried, and a later genuine version still moves latest on.
  const before = dead.length;
  assert.equal((await cache.latest(v4)).version, 4);
  assert.equal(dead.length, before, "refused once, not on every call");
  announce(v5);
  await nc.flush();
  await new Promise((r) => setTimeout(r, 100));
  assert.equal((await cache.latest(v4)).version, 5);
  cache.close();
});
