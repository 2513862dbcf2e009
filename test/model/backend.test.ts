import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
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

test("the cpu and blas backends print no tfjs 'install tfjs-node' banner", async () => {
  const { registerBlasBackend } = await import("../../model/backends/blas.ts");
  const names = (await registerBlasBackend()).ok ? ["cpu", "blas"] : ["cpu"];
  for (const name of names) {
    // A fresh process: the banner comes once per backend instance, on its first tensor write.
    const script = [
      `import * as tf from "@tensorflow/tfjs";`,
      `import { selectBackend } from "./model/backend.ts";`,
      `await selectBackend(${JSON.stringify(name)}, { info() {} });`,
      `tf.tensor([1, 2, 3]).square().dataSync();`,
      `console.warn("PROD=" + tf.env().getBool("PROD"));`,
    ].join("\n");
    const { stderr } = await promisify(execFile)(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", script],
      { cwd: fileURLToPath(new URL("../..", import.meta.url)) },
    );
    assert.ok(!/tfjs-node|Hi, looks like/.test(stderr), `${name}: ${stderr}`);
    // tfjs's warnings are back on afterwards.
    assert.match(stderr, /PROD=false/);
  }
});
