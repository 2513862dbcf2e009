// Chaos: a `srlm run --preset tiny` whose processes are SIGKILLed at seeded moments (every actor
// role, the trainer twice, and the `srlm` process itself, continued with `srlm run --resume`)
// must end with the report and the checkpoint weights of the same run left alone, and with every
// job answered exactly once: the result streams of the two runs hold as many results, each for
// a job of its own, and no dead letter. The kills land at progress lines of the run, picked by a
// seeded generator after a first trainer kill in the middle of iteration 1; each run has its own
// nats-server, so both runs' streams can be read when they are over.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { decode } from "../../bus/codec.ts";
import { subjects } from "../../bus/subjects.ts";
import { makeRng } from "../../tasks/random.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";
import { comparableReport, IGNORED_REPORT_FIELDS, reportDifferences } from "../helpers/reports.ts";
import { killAll, runSrlm, type SrlmProcess, spawnSrlm } from "../helpers/srlm.ts";

const RUN = "chaos";
const ITERATIONS = 3;
// Both runs alike: the tiny preset with a third iteration, and a short ack wait so that a job
// held by a killed worker comes back soon (it changes when work is redone, not what it computes).
const RUN_FLAGS = [
  "--preset",
  "tiny",
  "--run",
  RUN,
  "--set",
  `selfReward.iterations=${ITERATIONS}`,
  "--set",
  "actors.ackWaitMs=3000",
];

const dirs: string[] = [];
const servers: NatsServerHandle[] = [];
after(async () => {
  killAll();
  for (const s of servers) await s.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(label: string): string {
  const d = mkdtempSync(join(tmpdir(), `srlm-chaos-${label}-`));
  dirs.push(d);
  return d;
}

/** The pid of the running `srlm actor ROLE` child of the `srlm` process `parent`, if any. */
function actorPid(parent: number, role: string): number | null {
  const ps = spawnSync("ps", ["-o", "pid=,args=", "--ppid", String(parent)], { encoding: "utf8" });
  for (const line of ps.stdout.split("\n")) {
    const m = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (m && new RegExp(`\\bactor ${role}\\b`).test(m[2])) return Number(m[1]);
  }
  return null;
}

/** How many processes have `text` in their command line. */
function processesWith(text: string): number {
  const ps = spawnSync("ps", ["-eo", "args="], { encoding: "utf8" });
  return ps.stdout.split("\n").filter((l) => l.includes(text)).length;
}

/** What a run left in its streams: results by job, and dead letters. */
async function streamCounts(server: NatsServerHandle) {
  const nc = await connect({ servers: server.url });
  try {
    const jsm = await jetstreamManager(nc);
    const s = subjects(RUN);
    const results = await jsm.streams.info(s.resultStream);
    const jobIds = new Map<string, number>();
    for (let seq = results.state.first_seq; seq <= results.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage(s.resultStream, { seq });
      assert.ok(m, `result ${seq} is missing from ${s.resultStream}`);
      const jobId = (decode(m.data) as { body?: { jobId?: string } }).body?.jobId;
      assert.ok(typeof jobId === "string", `result ${seq} of ${s.resultStream} names no job`);
      jobIds.set(jobId, (jobIds.get(jobId) ?? 0) + 1);
    }
    const events = await jsm.streams.info(s.eventStream, { subjects_filter: s.deadAll });
    const dead = Object.values(events.state.subjects ?? {}).reduce((a, n) => a + n, 0);
    const work = await jsm.streams.info(s.workStream);
    return {
      results: results.state.messages,
      jobsAnswered: jobIds.size,
      answeredTwice: [...jobIds].filter(([, n]) => n > 1).map(([id]) => id),
      deadLetters: dead,
      jobsLeftQueued: work.state.messages,
    };
  } finally {
    await nc.close();
  }
}

/** Resolves with the next stdout line of `p` that matches `pattern` (and the lines seen so far). */
function lines(p: SrlmProcess) {
  const seen: string[] = [];
  let buffer = "";
  const waiting: (() => void)[] = [];
  p.proc.stdout?.on("data", (c: Buffer) => {
    buffer += c.toString();
    const parts = buffer.split("\n");
    buffer = parts.pop() ?? "";
    seen.push(...parts.filter((l) => l.startsWith("srlm: ")));
    for (const w of waiting.splice(0)) w();
  });
  p.exit.then(() => {
    for (const w of waiting.splice(0)) w();
  });
  let read = 0;
  return {
    /** The next progress line after the ones already taken, or null once the process ended. */
    async next(): Promise<string | null> {
      while (read >= seen.length) {
        if (p.proc.exitCode !== null || p.proc.signalCode !== null) return null;
        await new Promise<void>((r) => waiting.push(r));
      }
      return seen[read++];
    },
  };
}

// The bound only keeps a hung run from holding CI: each job has a 30-minute deadline of its own.
test("a tiny run SIGKILLed in every role ends as the undisturbed run does", {
  timeout: 600_000,
}, async () => {
  const baseServer = await startNatsServer();
  const chaosServer = await startNatsServer();
  servers.push(baseServer, chaosServer);
  const baseOut = tempDir("base");
  const chaosOut = tempDir("killed");

  const started = Date.now();
  const base = await runSrlm(["run", ...RUN_FLAGS, "--nats", baseServer.url, "--out", baseOut]);
  assert.equal(base.code, 0, `the undisturbed run failed:\n${base.stdout}\n${base.stderr}`);
  // M0 is the same model for both runs (stage reuse); SFT, M1 and every iteration run again.
  cpSync(join(baseOut, "checkpoints", "M0"), join(chaosOut, "checkpoints", "M0"), { recursive: true });

  const baseSeconds = (Date.now() - started) / 1000;
  const rng = makeRng(20261201);
  // The first trainer kill lands in iteration 1 (after M1's resume point); the others follow at
  // 1 to 8 progress lines after the previous one (an iteration prints about a dozen), in a seeded
  // order, so they spread over the iterations.
  const later = rng.shuffle(["generator", "judge", "reference", "trainer", "srlm"]);
  const plan = ["trainer", ...later].map((target, i) => ({ target, after: i === 0 ? 0 : rng.int(1, 8) }));
  const kills: { target: string; at: string }[] = [];

  let srlm = spawnSrlm(["run", ...RUN_FLAGS, "--nats", chaosServer.url, "--out", chaosOut]);
  let progress = lines(srlm);
  // Into iteration 1: M1's evaluation is done and its resume point written.
  let line: string | null = await progress.next();
  while (line !== null && !/^srlm: (sample|judge) /.test(line)) line = await progress.next();
  let resumed = 0;
  for (const step of plan) {
    for (let i = 0; i < step.after && line !== null; i++) line = await progress.next();
    if (line === null) break;
    if (step.target === "srlm") {
      srlm.proc.kill("SIGKILL");
      await srlm.exit;
      kills.push({ target: "srlm", at: line });
      // Its actors notice they are orphans and stop; the resumed run starts its own once they are gone
      // (a dying trainer of the old run would otherwise announce its end to the new one).
      const configFile = join(chaosOut, "config.json");
      for (let tries = 0; tries < 300 && processesWith(configFile) > 0; tries++)
        await new Promise((r) => setTimeout(r, 100));
      assert.equal(processesWith(configFile), 0, "the killed srlm's actors did not stop");
      srlm = spawnSrlm(["run", "--resume", "--out", chaosOut]);
      progress = lines(srlm);
      resumed++;
      continue;
    }
    // A process being restarted is waited for: the kill is of a running one.
    let pid = actorPid(srlm.proc.pid ?? 0, step.target);
    for (let tries = 0; pid === null && tries < 100 && srlm.proc.exitCode === null; tries++) {
      await new Promise((r) => setTimeout(r, 100));
      pid = actorPid(srlm.proc.pid ?? 0, step.target);
    }
    if (pid === null) break;
    process.kill(pid, "SIGKILL");
    kills.push({ target: step.target, at: line });
  }
  const code = await srlm.exit;
  const killedSeconds = (Date.now() - started) / 1000 - baseSeconds;
  assert.equal(code, 0, `the killed run failed:\n${srlm.output()}`);
  assert.deepEqual(
    kills.map((k) => k.target),
    plan.map((p) => p.target),
    `the run ended before every planned kill: ${JSON.stringify(kills)}`,
  );
  assert.equal(resumed, 1);
  // Each trainer after the first went on from a resume point rather than starting over.
  const trainerLog = readFileSync(join(chaosOut, "logs", "trainer-t0.log"), "utf8");
  assert.equal(
    (trainerLog.match(/"msg":"resuming run chaos at iteration \d+ from M\d+"/g) ?? []).length,
    plan.filter((p) => p.target !== "generator" && p.target !== "judge" && p.target !== "reference").length,
    "a restarted trainer did not resume",
  );

  const report = (out: string) => JSON.parse(readFileSync(join(out, "report.json"), "utf8"));
  const differences = reportDifferences(
    comparableReport(report(baseOut)),
    comparableReport(report(chaosOut)),
  );
  assert.deepEqual(
    differences,
    [],
    `the killed run's report differs (ignoring ${Object.keys(IGNORED_REPORT_FIELDS).join(", ")})`,
  );
  for (let m = 1; m <= ITERATIONS + 1; m++) {
    const weights = (out: string) => readFileSync(join(out, "checkpoints", `M${m}`, "model.safetensors"));
    assert.ok(
      weights(baseOut).equals(weights(chaosOut)),
      `M${m}'s weights differ from the undisturbed run's`,
    );
  }

  const baseStreams = await streamCounts(baseServer);
  const chaosStreams = await streamCounts(chaosServer);
  assert.deepEqual(baseStreams.answeredTwice, []);
  assert.deepEqual(chaosStreams.answeredTwice, [], "jobs answered more than once");
  assert.equal(chaosStreams.deadLetters, 0, "dead letters in the killed run");
  assert.equal(chaosStreams.jobsLeftQueued, 0, "jobs left in the work queue");
  assert.equal(
    chaosStreams.results,
    baseStreams.results,
    "the killed run stored another number of results than the undisturbed one",
  );
  process.stderr.write(
    `chaos: ${JSON.stringify({ baseSeconds, killedSeconds, kills, base: baseStreams, chaos: chaosStreams })}\n`,
  );
});
