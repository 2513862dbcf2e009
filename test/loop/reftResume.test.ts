// A ReFT trainer that dies mid-run goes on from its last resume point (actors/trainer/resume.ts):
// in strict mode the run it finishes is the run that was never interrupted, to the byte of the
// final weights, because the point carries everything an update reads that is not derived from
// the config (the policy with its value head, Adam's moments and step, the minibatch shuffler,
// the question order, the reranker).
import assert from "node:assert/strict";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { LocalWorkers } from "../../actors/trainer/localWorkers.ts";
import { ReftLoop } from "../../actors/trainer/reft.ts";
import type { ReftReport } from "../../actors/trainer/reftReport.ts";
import { readResumePoint, resumePolicy, writeResumePoint } from "../../actors/trainer/resume.ts";
import { loadConfig } from "../../config/load.ts";
import { selectBackend } from "../../model/backend.ts";
import { reasoningTaskFromConfig } from "../../tasks/reasoning.ts";
import { quietLoopIO } from "../helpers/loopIO.ts";
import { comparableReport, reportDifferences } from "../helpers/reports.ts";

before(() => selectBackend("auto", { info() {} }));

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "srlm-reft-resume-"));
  dirs.push(d);
  return d;
};

const config = (out: string, updates = 3) =>
  loadConfig({
    preset: "tiny",
    env: {},
    flags: {
      out,
      method: "reft",
      "train.pretrain.steps": "100",
      "reft.updates": String(updates),
      "reft.reranker.questions": "8",
      "reft.reranker.samplesPerQuestion": "2",
      // The tiny model answers no question right, so without an entropy bonus every advantage
      // is 0, no update moves the weights, and a resume that lost the optimizer state would pass.
      "reft.entropyCoef": "0.05",
    },
  });

/** A ReFT run in `out`; with `resumable`, its io.resume reads and writes `<out>/resume.json` as
 * the trainer actor's does; `crashAfterUpdate` makes the gate fail once that update is reported. */
async function runReft(
  out: string,
  opts: { resumable?: boolean; crashAfterUpdate?: number; updates?: number } = {},
) {
  const cfg = config(out, opts.updates);
  const workers = new LocalWorkers("answer");
  let crashing = false;
  let resumedFrom: number | null = null;
  const io = quietLoopIO(workers, {
    gate: async () => {
      // A plain Error, as a crash is: not the operator's RunStopped, which reports what ran.
      if (crashing) throw new Error("simulated trainer crash");
    },
    metrics(update) {
      if (update === opts.crashAfterUpdate) crashing = true;
    },
    ...(opts.resumable
      ? {
          resume: {
            async load() {
              const point = readResumePoint(cfg);
              if (!point) return null;
              if (point.method === "reft") resumedFrom = point.loop.updates.length;
              return { ...point, policy: resumePolicy(cfg, point) };
            },
            save(resume) {
              writeResumePoint(cfg, resume, 0);
              return true;
            },
          },
        }
      : {}),
  });
  const report = await new ReftLoop(cfg, reasoningTaskFromConfig(cfg), io).run();
  return { report, resumedFrom };
}

const reportOf = (out: string) => JSON.parse(readFileSync(join(out, "report.json"), "utf8"));
const finalWeights = (out: string) => readFileSync(join(out, "checkpoints", "ReFT", "model.safetensors"));

test("a ReFT trainer killed in update 2 of 3 resumes there and ends as an uninterrupted run does", async () => {
  const killedOut = tempDir();
  await assert.rejects(
    runReft(killedOut, { resumable: true, crashAfterUpdate: 1 }),
    /simulated trainer crash/,
  );
  assert.equal(existsSync(join(killedOut, "report.json")), false, "the crashed life wrote no report");
  const point = readResumePoint(config(killedOut));
  assert.ok(point?.method === "reft");
  assert.equal(point.loop.updates.length, 1);
  assert.equal(point.loop.checkpoint, "ReFT-update-1");
  assert.equal(
    existsSync(join(killedOut, "checkpoints", "ReFT-update-0")),
    false,
    "the folder of the point before is removed once a newer point names another",
  );

  const resumed = await runReft(killedOut, { resumable: true });
  assert.equal(resumed.resumedFrom, 1, "the second life went on from the point after update 1");
  assert.equal(resumed.report.updates.length, 3);
  for (const u of resumed.report.updates.slice(1))
    assert.ok(u.refKl > 0, `update ${u.update} trains a policy that moved off the warm-up`);
  assert.ok(resumed.report.sftLoss.warmup, "the warm-up's loss came through the resume point");
  assert.ok(resumed.report.reranker, "so did the reranker's report");

  // The uninterrupted run trains PPO and the reranker from the same M0, warm-up and SFT baseline
  // (the stage cache reuses them, so its report has no SFT losses of its own to compare).
  const wholeOut = tempDir();
  for (const stage of ["M0", "warmup", "SFT"])
    cpSync(join(killedOut, "checkpoints", stage), join(wholeOut, "checkpoints", stage), { recursive: true });
  const whole = await runReft(wholeOut);
  assert.deepEqual(whole.report.sftLoss, { warmup: null, sft: null }, "the stages were reused");

  const comparable = (r: ReftReport) => comparableReport({ ...JSON.parse(JSON.stringify(r)), sftLoss: null });
  const differences = reportDifferences(comparable(reportOf(killedOut)), comparable(reportOf(wholeOut)));
  assert.deepEqual(differences, [], "the resumed run's report differs from the uninterrupted run's");
  assert.ok(finalWeights(killedOut).equals(finalWeights(wholeOut)), "the final weights differ");

  // A finished run goes on for more updates from its last point; it cannot be cut shorter.
  await assert.rejects(
    runReft(killedOut, { resumable: true, updates: 2 }),
    /3 PPO updates are done, but reft\.updates is 2; set reft\.updates to at least 3/,
  );
  const extended = await runReft(killedOut, { resumable: true, updates: 4 });
  assert.equal(extended.resumedFrom, 3);
  assert.equal(extended.report.updates.length, 4);
  assert.deepEqual(
    reportDifferences(
      comparableReport({ updates: JSON.parse(JSON.stringify(extended.report.updates.slice(0, 3))) }),
      comparableReport({ updates: reportOf(wholeOut).updates }),
    ),
    [],
    "the updates before the extension are the run's own",
  );
});
