// Multi-process behaviour of the work queues: real actor processes (fixtures/worker.ts) against a
// real nats-server.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectBus } from "../../bus/connect.ts";
import { makeEnvelope } from "../../bus/envelope.ts";
import { consume, enqueue, ensureStreams, readResults } from "../../bus/queues.ts";
import { subjects } from "../../bus/subjects.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";
import { TestJob } from "./fixtures/messages.ts";

const WORKER = fileURLToPath(new URL("./fixtures/worker.ts", import.meta.url));

let server: NatsServerHandle;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
const children = new Set<ChildProcess>();

before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: [server.url] });
  js = jetstream(nc);
  jsm = await jetstreamManager(nc);
});

after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  await nc.close();
  await server.stop();
});

interface WorkerLine {
  pid: number;
  event: "ready" | "start" | "done";
  id?: string;
  n?: number;
  delivery?: number;
}

interface Worker {
  proc: ChildProcess;
  lines: WorkerLine[];
  exit: Promise<number | null>;
  waitFor(pred: (l: WorkerLine) => boolean, ms?: number): Promise<WorkerLine>;
}

function startWorker(run: string, env: Record<string, string> = {}): Worker {
  const proc = spawn(process.execPath, ["--import", "tsx", WORKER], {
    env: { ...process.env, SRLM_NATS_URL: server.url, SRLM_TEST_RUN: run, SRLM_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.add(proc);
  const lines: WorkerLine[] = [];
  const waiters: Array<() => void> = [];
  createInterface({ input: proc.stdout! }).on("line", (line) => {
    lines.push(JSON.parse(line) as WorkerLine);
    for (const w of waiters.splice(0)) w();
  });
  const exit = new Promise<number | null>((resolve) => proc.once("exit", (code) => resolve(code)));
  return {
    proc,
    lines,
    exit,
    async waitFor(pred, ms = 15_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const hit = lines.find(pred);
        if (hit) return hit;
        if (Date.now() > deadline || proc.exitCode !== null) {
          throw new Error(`worker ${proc.pid}: expected line not seen; got ${JSON.stringify(lines)}`);
        }
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 100);
        });
      }
    },
  };
}

async function resultsOf(run: string, count: number): Promise<number[]> {
  const reader = await readResults(js, run, "scores");
  const ns: number[] = [];
  for await (const r of reader) {
    ns.push((r.msg.body as { n: number }).n);
    if (ns.length === count) break;
  }
  await reader.stop();
  return ns;
}

const producer = { actor: "test", instance: "1" };

test("two worker processes split 40 jobs: none lost, none done twice", async () => {
  const run = "split";
  await ensureStreams(jsm, run, { ackWaitMs: 5000 });
  const a = startWorker(run);
  const b = startWorker(run);
  await Promise.all([a.waitFor((l) => l.event === "ready"), b.waitFor((l) => l.event === "ready")]);
  for (let n = 0; n < 40; n++) {
    await enqueue(js, run, "judge", makeEnvelope(TestJob, { n, sleepMs: 20 }, { run, producer }));
  }
  const done = () => [...a.lines, ...b.lines].filter((l) => l.event === "done");
  const deadline = Date.now() + 20_000;
  while (done().length < 40 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  a.proc.kill("SIGTERM");
  b.proc.kill("SIGTERM");
  assert.deepEqual(await Promise.all([a.exit, b.exit]), [0, 0]);

  const ns = done().map((l) => l.n!);
  assert.equal(ns.length, 40, "every job done exactly once");
  assert.deepEqual(
    [...new Set(ns)].sort((x, y) => x - y),
    [...Array(40).keys()],
  );
  const perWorker = [a, b].map((w) => w.lines.filter((l) => l.event === "done").length);
  assert.ok(
    perWorker.every((c) => c > 0),
    `both workers took work: ${perWorker}`,
  );
  assert.equal((await resultsOf(run, 40)).length, 40);
  assert.equal((await jsm.streams.info(subjects(run).resultStream)).state.messages, 40);
});

test("a worker SIGKILLed mid-job: the job completes exactly once on another process", async () => {
  const run = "kill";
  await ensureStreams(jsm, run, { ackWaitMs: 2000 });
  // The survivor starts only once the victim holds the job: with both up from the start, a
  // stalled first holder on a loaded machine could lose the job to ack_wait before the kill.
  const victim = startWorker(run);
  await victim.waitFor((l) => l.event === "ready");
  await enqueue(js, run, "judge", makeEnvelope(TestJob, { n: 1, sleepMs: 4000 }, { run, producer }));
  const started = await victim.waitFor((l) => l.event === "start");
  assert.equal(started.delivery, 1);
  const survivor = startWorker(run);
  await survivor.waitFor((l) => l.event === "ready");
  victim.proc.kill("SIGKILL");
  assert.notEqual(await victim.exit, 0);

  const done = await survivor.waitFor((l) => l.event === "done", 20_000);
  assert.equal(done.id, started.id);
  const redelivered = survivor.lines.find((l) => l.event === "start")!;
  assert.ok((redelivered.delivery ?? 0) >= 2, "redelivered after ack_wait");
  survivor.proc.kill("SIGTERM");
  assert.equal(await survivor.exit, 0);
  assert.ok(!victim.lines.some((l) => l.event === "done"));
  assert.deepEqual(await resultsOf(run, 1), [1]);
  assert.equal((await jsm.streams.info(subjects(run).resultStream)).state.messages, 1);
  assert.equal((await jsm.streams.info(subjects(run).workStream)).state.messages, 0);
});

test("SIGTERM on a busy actor exits 0 and naks its job for immediate redelivery", async () => {
  const run = "term";
  // A long ack_wait: a redelivery within it proves the job was nak'd, not timed out.
  await ensureStreams(jsm, run, { ackWaitMs: 30_000 });
  const a = startWorker(run, { SRLM_TEST_ACK_WAIT_MS: "30000", SRLM_TEST_GRACE_MS: "300" });
  await a.waitFor((l) => l.event === "ready");
  await enqueue(js, run, "judge", makeEnvelope(TestJob, { n: 5, sleepMs: 60_000 }, { run, producer }));
  await a.waitFor((l) => l.event === "start");
  const t0 = Date.now();
  a.proc.kill("SIGTERM");
  assert.equal(await a.exit, 0);
  assert.ok(!a.lines.some((l) => l.event === "done"));

  let delivery = 0;
  const h = await consume(
    js,
    run,
    "judge",
    async (_msg, ctl) => {
      delivery = ctl.deliveryCount;
    },
    { pullExpiresMs: 1000 },
  );
  const deadline = Date.now() + 10_000;
  while (delivery === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await h.stop();
  assert.equal(delivery, 2);
  assert.ok(Date.now() - t0 < 15_000, "redelivered well before ack_wait ran out");
});

test("a second SIGTERM while draining does not cut the drain short", async () => {
  const run = "term2";
  await ensureStreams(jsm, run, { ackWaitMs: 30_000 });
  // A supervisor stopping the run and an actor ending itself send a SIGTERM each.
  const a = startWorker(run, { SRLM_TEST_ACK_WAIT_MS: "30000", SRLM_TEST_GRACE_MS: "300" });
  await a.waitFor((l) => l.event === "ready");
  await enqueue(js, run, "judge", makeEnvelope(TestJob, { n: 6, sleepMs: 60_000 }, { run, producer }));
  await a.waitFor((l) => l.event === "start");
  a.proc.kill("SIGTERM");
  // Apart, or the kernel merges them into one pending signal.
  await new Promise((r) => setTimeout(r, 100));
  a.proc.kill("SIGTERM");
  assert.equal(await a.exit, 0, "exits as a drained actor does, not 130");
});
