import assert from "node:assert/strict";
import { test } from "node:test";
import { decode, encode, TYPED_ARRAY_EXT } from "../../bus/codec.ts";
import { decodeEnvelope, encodeEnvelope, makeEnvelope } from "../../bus/envelope.ts";
import { DeadLetter, WeightsPublished } from "../../bus/messages.ts";
import { assertRunId, describeSubjects, subjects } from "../../bus/subjects.ts";
import { TestJob } from "./fixtures/messages.ts";

function bits(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function roundTrip<T extends ArrayBufferView>(a: T): T {
  const back = (decode(encode({ a })) as { a: T }).a;
  assert.equal(back.constructor, a.constructor, "element type survives");
  assert.ok(bits(back).equals(bits(a)), `${a.constructor.name} bytes identical`);
  return back;
}

test("float32 round-trips bit-exact: NaN payloads, -0, subnormals, infinities", () => {
  const u = new Uint32Array([
    0x7fc00001, 0xffc01234, 0x7f800001, 0x80000000, 0x00000001, 0x007fffff, 0x7f800000,
  ]);
  const f = new Float32Array(u.buffer);
  const back = roundTrip(f);
  assert.deepEqual(Array.from(new Uint32Array(back.buffer)), Array.from(u));
  assert.ok(Object.is(back[3], -0));
});

test("float64, int32, int16, uint32, int8 and uint8 round-trip bit-exact", () => {
  const d = new Float64Array(4);
  new DataView(d.buffer).setBigUint64(0, 0x7ff8000000000abcn, true);
  d[1] = -0;
  d[2] = 5e-324;
  d[3] = Math.PI;
  roundTrip(d);
  roundTrip(new Int32Array([0, -1, 2 ** 31 - 1, -(2 ** 31)]));
  roundTrip(new Int16Array([-32768, 32767]));
  roundTrip(new Uint32Array([0xffffffff, 1]));
  roundTrip(new Int8Array([-128, 127]));
  roundTrip(new Uint8Array([0, 255, 7]));
});

test("large and unaligned typed arrays round-trip", () => {
  const big = new Float32Array(1 << 20);
  for (let i = 0; i < big.length; i++) big[i] = Math.sin(i) * 1e-38;
  roundTrip(big);
  const base = new Float32Array(9).map((_, i) => i + 0.5);
  roundTrip(base.subarray(3, 7));
  roundTrip(new Float32Array(0));
});

test("the wire is standard MessagePack: plain maps and the documented typed-array ext", () => {
  const bytes = encode({ x: new Float32Array([1]) });
  // fixmap(1), fixstr "x", ext8 len 5 type 0x54, dtype 7 (float32), 1.0f little-endian
  assert.deepEqual(Array.from(bytes), [0x81, 0xa1, 0x78, 0xc7, 0x05, TYPED_ARRAY_EXT, 7, 0, 0, 0x80, 0x3f]);
  // undefined properties are left out, not written as a private extension
  assert.deepEqual(Array.from(encode({ a: undefined, b: 1 })), [0x81, 0xa1, 0x62, 0x01]);
  const raw = decode(encode({ r: new Uint8Array([1, 2]) })) as { r: Uint8Array };
  assert.equal(raw.r.constructor, Uint8Array);
});

test("decode throws on garbage", () => {
  assert.throws(() => decode(new Uint8Array([0xc1])));
  assert.throws(() => decode(new Uint8Array([0x92, 0x01])));
  assert.throws(() => decode(new Uint8Array([0xc7, 0x02, TYPED_ARRAY_EXT, 99, 0])), /unknown dtype/);
});

const ctx = { run: "r1", producer: { actor: "test", instance: "1" } };

test("envelopes validate on both ends", () => {
  const env = makeEnvelope(
    TestJob,
    { n: 1, sleepMs: 0, payload: new Float32Array([Number.NaN]) },
    { ...ctx, policyVersion: 3 },
  );
  assert.equal(env.v, 1);
  assert.equal(env.type, "test.job");
  assert.equal(env.policyVersion, 3);
  const d = decodeEnvelope("srlm.r1.work.judge", encodeEnvelope(env));
  assert.ok(d.ok);
  assert.deepEqual(d.msg, env);

  assert.throws(() => makeEnvelope(TestJob, { n: 1.5, sleepMs: 0 }, ctx), /body of test\.job is invalid/);
  assert.throws(() => makeEnvelope("no.such", {}, ctx), /unknown message type/);
});

test("decodeEnvelope names what is wrong", () => {
  const reason = (subject: string, bytes: Uint8Array) => {
    const d = decodeEnvelope(subject, bytes);
    assert.equal(d.ok, false);
    return (d as { reason: string }).reason;
  };
  assert.match(
    reason("srlm.r1.work.judge", new Uint8Array([0xc1, 0x00])),
    /bad msgpack on srlm\.r1\.work\.judge/,
  );
  assert.match(reason("srlm.r1.work.judge", encode({ hello: 1 })), /bad envelope/);
  const env = makeEnvelope(
    WeightsPublished,
    { version: 1, bucket: "b", name: "n", digest: "d", bytes: 1 },
    ctx,
  );
  assert.match(reason("srlm.r1.weights", encode({ ...env, type: "nope" })), /unknown message type "nope"/);
  assert.match(
    reason("srlm.r1.weights", encode({ ...env, body: { version: -1 } })),
    /bad weights\.published body/,
  );
  assert.match(reason("srlm.r2.weights", encodeEnvelope(env)), /run r1 arrived on srlm\.r2\.weights/);
  const dead = makeEnvelope(
    DeadLetter,
    { reason: "x", subject: "s", raw: new Uint8Array([1]), actor: "a" },
    ctx,
  );
  assert.ok(decodeEnvelope("srlm.r1.dead", encodeEnvelope(dead)).ok);
});

test("subjects live under srlm.<run> and run ids are validated", () => {
  const s = subjects("run_1-a");
  assert.equal(s.work("samples"), "srlm.run_1-a.work.samples");
  assert.equal(s.result("reflogprobs"), "srlm.run_1-a.result.reflogprobs");
  assert.equal(s.deadAll, "srlm.run_1-a.dead.>");
  assert.equal(s.deadOf("judge"), "srlm.run_1-a.dead.judge");
  assert.throws(() => s.deadOf("a.b"), /invalid actor name/);
  assert.equal(s.workStream, "SRLM_run_1-a_WORK");
  assert.throws(() => assertRunId("a.b"), /invalid run id/);
  assert.throws(() => subjects("a b"), /invalid run id/);
  assert.throws(() => s.work("nope" as never), /unknown work queue/);
  const table = describeSubjects();
  assert.ok(table.every((r) => r.subject.startsWith("srlm.<run>.")));
  assert.ok(table.some((r) => r.subject === "srlm.<run>.control"));
});
