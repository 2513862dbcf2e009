// The whole self-rewarding loop, as a user runs it: `srlm run --preset tiny` with its embedded
// nats-server, one process per actor, each connected as its own role's user with the least
// permissions of bus/permissions.ts. It checks that the loop completes, that pairs were trained,
// that the weights advanced, that the report is complete, and that the server refused nothing
// (a permission the table lacks shows up as a violation in the server's log); it does not
// assert gains (the tiny preset is far too small for them).
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { runSrlm } from "../helpers/srlm.ts";

let out: string;

before(() => {
  out = mkdtempSync(join(tmpdir(), "srlm-run-"));
});

after(() => {
  rmSync(out, { recursive: true, force: true });
});

test("srlm run --preset tiny: M1 → M2 → M3 over NATS with trained pairs and a complete report", async () => {
  const { code, stdout, stderr } = await runSrlm(["run", "--preset", "tiny", "--run", "ci", "--out", out]);
  assert.equal(code, 0, `srlm run failed:\n${stdout}\n${stderr}`);
  assert.match(stderr, /started nats-server .* one user per role/);
  const serverLog = readFileSync(join(out, "logs", "nats-server.log"), "utf8");
  const violations = serverLog.split("\n").filter((l) => /Violation/.test(l));
  assert.deepEqual(violations, [], "the server refused an actor something its role needs");
  // Service discovery answered across users: the trainer collected the judge's stats.
  assert.match(stdout, /judge\/j0 idle [\d.]+ of [\d.]+ s \([1-9]\d* jobs\)/);
  const report = JSON.parse(readFileSync(join(out, "report.json"), "utf8"));
  assert.equal(report.method, "self-rewarding");
  // Nothing the bus refused or lost goes uncounted; an undisturbed run loses nothing.
  assert.equal(report.bus.timedOutJobs, 0);
  assert.equal(report.bus.droppedUnknownResults, 0);
  assert.equal(typeof report.bus.deadLetters, "object");
  assert.equal(report.preset, "tiny");
  assert.ok(typeof report.backend === "string" && report.backend.length > 0);
  assert.deepEqual(
    report.iterations.map((it: { model: string }) => it.model),
    ["M1", "M2", "M3"],
  );
  for (const it of report.iterations) {
    assert.ok(it.heldOutAccuracy >= 0 && it.heldOutAccuracy <= 1, `${it.model} heldOutAccuracy`);
    assert.ok(Number.isFinite(it.judge.pairwiseAccuracy), `${it.model} judge.pairwiseAccuracy`);
    assert.ok(it.judge.parseFailureRate >= 0 && it.judge.parseFailureRate <= 1);
    assert.ok(it.wallSeconds > 0);
  }
  for (const it of report.iterations.slice(1)) {
    assert.ok(it.winRateVsPrevious, `${it.model} has a win rate against the model before`);
    const { win, loss, tie } = it.winRateVsPrevious;
    assert.ok(Math.abs(win + loss + tie - 1) < 1e-9);
    assert.ok(it.pairs > 0, `${it.model}: no preference pairs were trained`);
    assert.ok(it.dpo && Number.isFinite(it.dpo.loss), `${it.model}: DPO ran`);
    // The paired gain over M1 agrees with the two accuracies it pairs.
    const m1 = report.iterations[0];
    assert.equal(it.gainOverFirst.model, "M1");
    assert.ok(Math.abs(it.gainOverFirst.gain - (it.heldOutAccuracy - m1.heldOutAccuracy)) < 1e-9);
    assert.ok(
      it.gainOverFirst.ci95[0] <= it.gainOverFirst.gain && it.gainOverFirst.gain <= it.gainOverFirst.ci95[1],
    );
  }
  assert.equal(report.iterations[0].gainOverFirst, null);
  // The weights advanced: each published version is a different model.
  const weights = (label: string) => readFileSync(join(out, "checkpoints", label, "model.safetensors"));
  assert.ok(existsSync(join(out, "checkpoints", "M3", "config.json")));
  assert.notDeepEqual(weights("M1"), weights("M2"));
  assert.notDeepEqual(weights("M2"), weights("M3"));
  assert.match(stdout, /M3/);
  assert.ok(readFileSync(join(out, "summary.txt"), "utf8").includes("held-out acc"));
});
