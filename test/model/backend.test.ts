import assert from "node:assert/strict";
import { test } from "node:test";
import * as tf from "@tensorflow/tfjs";
import { currentBackend, selectBackend } from "../../model/backend.ts";

test("auto skips the absent tfjs-node packages and says why", async () => {
  const lines: string[] = [];
  const choice = await selectBackend("auto", { info: (_o, msg) => lines.push(msg) });
  assert.ok(["blas", "wasm", "cpu", "tfjs-node", "tfjs-node-gpu"].includes(choice.name));
  assert.equal(tf.getBackend(), choice.name.startsWith("tfjs-node") ? "tensorflow" : choice.name);
  for (const s of choice.skipped) assert.ok(s.reason.length > 0, `${s.name} skipped without a reason`);
  assert.equal(lines.length, 1);
  assert.deepEqual(currentBackend(), choice);
});

test("a named backend is used as asked and selecting it again is a no-op", async () => {
  const quiet = { info() {} };
  const first = await selectBackend("cpu", quiet);
  assert.equal(first.name, "cpu");
  assert.equal(tf.getBackend(), "cpu");
  assert.equal(await selectBackend("cpu", quiet), first);
  const wasm = await selectBackend("wasm", quiet);
  assert.equal(wasm.name, "wasm");
  assert.equal(tf.getBackend(), "wasm");
});

test("an unavailable named backend throws with the reason", async () => {
  await assert.rejects(selectBackend("tfjs-node-gpu", { info() {} }), /tfjs-node-gpu/);
  await assert.rejects(selectBackend("nope" as "cpu", { info() {} }), /unknown backend/);
});
