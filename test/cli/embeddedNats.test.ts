// The embedded nats-server must not outlive srlm, even when srlm gets no chance to stop it.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { test } from "node:test";
import { accepts, startEmbeddedNats } from "../../cli/embeddedNats.ts";

async function closesWithin(port: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!(await accepts(port))) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
  return false;
}

test("stop() ends the embedded server", async () => {
  const nats = await startEmbeddedNats();
  const port = Number(new URL(nats.url).port);
  assert.ok(await accepts(port));
  await nats.stop();
  assert.ok(await closesWithin(port, 1000), "server still accepting after stop()");
});

test("a SIGKILLed owner takes its embedded server with it", async () => {
  const owner = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      `import { startEmbeddedNats } from ${JSON.stringify(new URL("../../cli/embeddedNats.ts", import.meta.url).href)};
       const nats = await startEmbeddedNats();
       console.log(nats.url);
       setInterval(() => {}, 1000);`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: owner.stdout! }).once("line", resolve);
    owner.once("exit", (code) => reject(new Error(`owner exited ${code} before printing its URL`)));
  });
  const port = Number(new URL(url).port);
  assert.ok(await accepts(port), "server up");
  owner.kill("SIGKILL");
  assert.ok(await closesWithin(port, 5000), "embedded nats-server outlived its SIGKILLed owner");
});
