// What a restart of the run's nats-server costs a whole `srlm run`: an external server with a file
// store, restarted on its port and store once the first self-rewarding iteration samples. Prints
// the longest silence in the trainer's progress events from the restart on (how long the run stood
// still) against the longest before it, the run's exit code and wall time, then one JSON line.
//
//   node --import tsx bench/natsRestart.ts [--set FIELD=VALUE ...]
//
// The run is the tiny preset shrunk as in test/cli/cluster.test.ts; --set adds to it.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { connectBus } from "../bus/connect.ts";
import { bodyOf, decodeEnvelope } from "../bus/envelope.ts";
import { StageProgress } from "../bus/messages.ts";
import { subjects } from "../bus/subjects.ts";
import { startNatsServer } from "../test/helpers/nats.ts";
import { killAll, SHORT_TINY_RUN, spawnSrlm } from "../test/helpers/srlm.ts";

const { values } = parseArgs({ options: { set: { type: "string", multiple: true } } });
const RUN = "restart";
const dir = mkdtempSync(join(tmpdir(), "srlm-nats-restart-"));
const server = await startNatsServer();
const nc = await connectBus({ servers: [server.url], name: "bench" });
const events: number[] = [];
let sampling: () => void = () => {};
const sampled = new Promise<void>((r) => {
  sampling = r;
});
nc.subscribe(subjects(RUN).events, {
  callback: (_err, m) => {
    const d = decodeEnvelope(m.subject, m.data);
    const p = d.ok ? bodyOf(StageProgress, d.msg) : null;
    if (!p) return;
    events.push(Date.now());
    if (p.stage === "sample" && p.done >= 1) sampling();
  },
});
const started = Date.now();
const sets = (values.set ?? []).flatMap((s) => ["--set", s]);
const out = join(dir, "out");
const run = spawnSrlm([
  "run",
  "--preset",
  "tiny",
  "--out",
  out,
  "--run",
  RUN,
  "--nats",
  server.url,
  ...SHORT_TINY_RUN,
  ...sets,
]);
try {
  await Promise.race([sampled, run.exit.then((c) => Promise.reject(new Error(`run exited ${c} early`)))]);
  const restartAt = Date.now();
  await server.restart();
  const code = await run.exit;
  const gap = (from: number, to: number) => {
    let longest = 0;
    const ts = events.filter((t) => t >= from && t <= to);
    for (let i = 1; i < ts.length; i++) longest = Math.max(longest, ts[i] - ts[i - 1]);
    return longest;
  };
  const result = {
    code,
    wallSeconds: (Date.now() - started) / 1000,
    restartAtSeconds: (restartAt - started) / 1000,
    // The run stands still while its bus is away: the longest wait between two progress events
    // from the restart on, against the longest before it.
    longestSilenceAfterSeconds: gap(restartAt, Date.now()) / 1000,
    longestSilenceBeforeSeconds: gap(started, restartAt) / 1000,
    report: code === 0 ? JSON.parse(readFileSync(join(out, "report.json"), "utf8")).bus : null,
  };
  console.error(
    `exit ${code}; longest silence in progress events after the restart ${result.longestSilenceAfterSeconds.toFixed(2)} s, ` +
      `before it ${result.longestSilenceBeforeSeconds.toFixed(2)} s; run ${result.wallSeconds.toFixed(1)} s`,
  );
  if (code !== 0) console.error(run.output());
  console.log(JSON.stringify(result));
} finally {
  killAll();
  await nc.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
