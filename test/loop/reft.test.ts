// ReFT as a user runs it: `srlm run --method reft --preset tiny` with its embedded nats-server and
// one process per actor. The generator samples the rollouts, the `answer` judge computes their
// rewards, the reference actor their per-token log-probs, the trainer runs PPO and publishes each
// update; the report holds every model's held-out accuracy by each strategy and every update's
// statistics. Gains are not asserted: the tiny preset is far too small for them.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { ReftReport } from "../../actors/trainer/reftReport.ts";
import { runSrlm } from "../helpers/srlm.ts";

const out = mkdtempSync(join(tmpdir(), "srlm-reft-"));
after(() => rmSync(out, { recursive: true, force: true }));

test("srlm run --method reft --preset tiny: warm-up, SFT, PPO updates over NATS and a complete report", async () => {
  const { code, stdout, stderr } = await runSrlm([
    "run",
    "--method",
    "reft",
    "--preset",
    "tiny",
    "--run",
    "reftci",
    "--out",
    out,
  ]);
  assert.equal(code, 0, `srlm run failed:\n${stderr.slice(-3000)}`);
  assert.match(stdout, /ReFT \(ppo, strict\) on math/);
  assert.match(stdout, /\| ReFT \|/);

  const report = JSON.parse(readFileSync(join(out, "report.json"), "utf8")) as ReftReport;
  assert.equal(report.method, "reft");
  assert.equal(report.split, "heldOut");
  assert.deepEqual(report.rewardJudge, ["answer"]);
  assert.deepEqual(
    report.models.map((m) => [m.model, m.version]),
    [
      ["SFT", 2],
      ["warm-up", 1],
      ["ReFT", 5],
    ],
  );
  for (const m of report.models) {
    assert.equal(m.top1.n, 12, `${m.model}: every held-out problem is scored`);
    assert.equal(m.voteAtK.n, 12);
    assert.ok(m.top1.ci95[0] <= m.top1.accuracy && m.top1.accuracy <= m.top1.ci95[1]);
  }
  assert.ok(report.gainOverSft, "ReFT's gain over SFT is reported");
  assert.equal(report.gainOverSft.top1.n, 12);

  assert.equal(report.updates.length, 2);
  for (const [i, u] of report.updates.entries()) {
    assert.equal(u.update, i + 1);
    assert.equal(u.version, 4 + i, "each update publishes a new version");
    assert.equal(u.rollouts, 8, "one rollout per question, every one rewarded and referenced");
    assert.ok(u.tokens > 0);
    assert.ok(u.meanReward >= 0 && u.meanReward <= 1);
    assert.ok(Number.isFinite(u.entropy) && u.entropy > 0);
    assert.ok(Number.isFinite(u.policyLoss) && Number.isFinite(u.valueLoss));
    assert.equal(u.steps, 2, "ppoEpochs passes over the whole batch");
    assert.equal(u.skippedSteps, 0);
  }
  // Update 1 trains the warm-up itself, so its reference KL is 0 up to rounding; by update 2
  // the policy has moved away from it.
  assert.ok(Math.abs(report.updates[0].refKl) < 1e-3, `update 1 KL ${report.updates[0].refKl}`);
  assert.notEqual(report.updates[1].refKl, 0);

  assert.ok(report.failures.eval === undefined || report.failures.eval.failed === 0);
  assert.ok(report.bus, "the bus counts are reported");
  for (const label of ["M0", "warmup", "SFT", "ReFT"])
    assert.ok(existsSync(join(out, "checkpoints", label, "model.safetensors")), `checkpoint ${label}`);
});
