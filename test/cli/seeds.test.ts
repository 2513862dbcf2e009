// `srlm seeds` as a user runs it: the tiny preset for two seeds over real actors and NATS, measured
// on the dev split. Each seed's folder holds a whole run whose data, model and loop seeds moved
// together (offset 0 is exactly `srlm run`), and seeds.json has each seed's figures side by side.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { SelfRewardingLoop } from "../../actors/trainer/selfRewarding.ts";
import type { LoopIO } from "../../actors/trainer/workers.ts";
import { loadConfig } from "../../config/load.ts";
import { taskFromConfig } from "../../tasks/fromConfig.ts";
import { runSrlm } from "../helpers/srlm.ts";

const out = mkdtempSync(join(tmpdir(), "srlm-seeds-"));
after(() => rmSync(out, { recursive: true, force: true }));

test("srlm seeds --seeds 2: a whole run per seed and the table across them, on the dev split", async () => {
  const { code, stdout, stderr } = await runSrlm([
    "seeds",
    "--preset",
    "tiny",
    "--seeds",
    "2",
    "--run",
    "sd",
    "--out",
    out,
    "--set",
    "selfReward.iterations=1",
    "--set",
    "data.devSize=12",
    "--set",
    "selfReward.evalSplit=dev",
  ]);
  assert.equal(code, 0, `srlm seeds failed:\n${stdout}\n${stderr}`);
  const seeds = JSON.parse(readFileSync(join(out, "seeds.json"), "utf8"));
  assert.deepEqual(seeds.seeds, [7, 8]);
  assert.equal(seeds.split, "dev");
  assert.deepEqual(
    seeds.runs.map((r: { ok: boolean }) => r.ok),
    [true, true],
  );
  for (const [i, seed] of [7, 8].entries()) {
    const dir = join(out, `seed-${seed}`);
    const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
    assert.equal(cfg.data.seed, seed);
    assert.equal(cfg.model.seed, 1234 + i);
    assert.equal(cfg.selfReward.seed, i);
    assert.equal(cfg.run, `sd-s${seed}`);
    const report = JSON.parse(readFileSync(join(dir, "report.json"), "utf8"));
    assert.equal(report.evalSplit, "dev");
    assert.equal(report.iterations[0].heldOutN, 12);
    assert.match(readFileSync(join(dir, "summary.txt"), "utf8"), /dev acc \(95% CI\)/);
  }
  const gain = seeds.figures.find((f: { name: string }) => f.name === "M2 − M1");
  assert.equal(gain.perSeed.length, 2);
  assert.ok(gain.perSeed.every((g: number | null) => typeof g === "number"));
  assert.match(
    stdout,
    /srlm seeds: self-rewarding, preset tiny, 2 seeds; accuracies and gains on the dev prompts/,
  );
  assert.match(readFileSync(join(out, "seeds.txt"), "utf8"), /M2 − M1/);
});

test("the dev split is kept out of training and apart from held-out; asking for it without one is refused", () => {
  const cfg = loadConfig({ env: {}, preset: "tiny", flags: { "data.devSize": 12 } });
  const task = taskFromConfig(cfg);
  const dev = new Set(task.data.dev.map((d) => d.prompt));
  assert.equal(dev.size, 12);
  for (const h of task.data.heldOut) assert.ok(!dev.has(h.prompt), "a dev prompt is also held out");
  for (const x of task.data.ift) assert.ok(!dev.has(x.prompt), "a dev prompt is trained on");
  const none = loadConfig({ env: {}, preset: "tiny", flags: { "selfReward.evalSplit": "dev" } });
  assert.throws(
    () => new SelfRewardingLoop(none, taskFromConfig(none), {} as LoopIO),
    /selfReward\.evalSplit dev: task synthetic has no dev prompts \(set data\.devSize/,
  );
});
