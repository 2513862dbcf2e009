import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectBus } from "../../bus/connect.ts";
import { getBlob, putBlob, sha256Digest } from "../../bus/objects.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";

const MAX_PAYLOAD = 64 * 1024;
let server: NatsServerHandle;
let nc: NatsConnection;

before(async () => {
  server = await startNatsServer({ maxPayload: MAX_PAYLOAD });
  nc = await connectBus({ servers: [server.url] });
});

after(async () => {
  await nc.close();
  await server.stop();
});

test("a payload far larger than max_payload round-trips through the object store", async () => {
  assert.equal(nc.info?.max_payload, MAX_PAYLOAD);
  const weights = new Float32Array(1 << 18); // 1 MiB
  for (let i = 0; i < weights.length; i++) weights[i] = Math.cos(i) / (i + 1);
  const bytes = new Uint8Array(weights.buffer);
  const ref = await putBlob(nc, "srlm-test-weights", "v1", bytes);
  assert.equal(ref.bytes, 1 << 20);
  assert.equal(ref.digest, sha256Digest(bytes));
  const back = await getBlob(nc, ref);
  assert.ok(Buffer.from(back).equals(Buffer.from(bytes)));
});

test("getBlob refuses bytes that no longer match the ref, and names missing objects", async () => {
  const ref = await putBlob(nc, "srlm-test-weights", "v2", new Uint8Array([1, 2, 3]));
  await putBlob(nc, "srlm-test-weights", "v2", new Uint8Array([9]));
  await assert.rejects(getBlob(nc, ref), /does not match its ref/);
  await assert.rejects(
    getBlob(nc, { ...ref, name: "nope" }),
    /object nope is not in bucket srlm-test-weights/,
  );
  await assert.rejects(getBlob(nc, { ...ref, bucket: "missing" }), /bucket missing cannot be opened/);
});
