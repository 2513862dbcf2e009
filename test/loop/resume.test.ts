// Resume points (actors/trainer/resume.ts): written atomically beside the checkpoints, read back
// only for the run and the config inputs they were written for, with an error naming the field
// that changed, and refused when the checkpoint they name was replaced.
import assert from "node:assert/strict";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { connect } from "@nats-io/transport-node";
import { policyToBlob } from "../../actors/policy.ts";
import {
  type LoopState,
  RESUME_OBJECT,
  type ReftLoopState,
  readBusResumePoint,
  readResumePoint,
  resumeFile,
  setAsideResumePoint,
  writeResumePoint,
} from "../../actors/trainer/resume.ts";
import { putBlob } from "../../bus/objects.ts";
import { weightsBucket } from "../../bus/permissions.ts";
import { loadConfig } from "../../config/load.ts";
import { presetConfig } from "../../model/config.ts";
import { Llama } from "../../model/llama.ts";
import { CharTokenizer } from "../../model/tokenizer.ts";
import { DOMAIN_CHARSET } from "../../tasks/index.ts";
import { startNatsServer } from "../helpers/nats.ts";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function setUp() {
  const out = mkdtempSync(join(tmpdir(), "srlm-resume-"));
  dirs.push(out);
  mkdirSync(join(out, "checkpoints", "M2"), { recursive: true });
  writeFileSync(join(out, "checkpoints", "M2", "model.safetensors"), "weights of M2");
  const config = (flags: Record<string, string> = {}) =>
    loadConfig({ preset: "tiny", env: {}, flags: { out, run: "exp1", ...flags } });
  const state: LoopState = {
    nextIteration: 2,
    weights: { version: 2, bucket: "srlm-exp1-weights", name: "v2", digest: `sha256:${"0".repeat(64)}` },
    checkpoint: "M2",
    seenPrompts: ["Reverse: garden", "Add 17 and 25"],
    previousAnswers: null,
    previousHeldOutScores: [5, 3],
    firstHeldOutCorrect: { model: "M1", correct: [true, false] },
    trainingSeconds: 12.5,
    elapsedSeconds: 30,
    iterations: [],
  };
  return { out, config, state };
}

test("a resume point reads back for its run and config, also with more iterations or other actors", () => {
  const { out, config, state } = setUp();
  assert.equal(readResumePoint(config()), null, "no resume point yet");
  writeResumePoint(config(), { method: "self-rewarding", loop: state }, 41);
  assert.deepEqual(
    readdirSync(out).filter((f) => f.includes("tmp")),
    [],
    "no temporary file is left behind",
  );
  const point = readResumePoint(config());
  assert.ok(point?.method === "self-rewarding");
  assert.deepEqual(point.loop, state);
  assert.equal(point.jobsSubmitted, 41);
  // More iterations, other actors or another backend do not change what the iterations so far computed.
  assert.ok(
    readResumePoint(
      config({ "selfReward.iterations": "5", "actors.generators": "3", "model.backend": "wasm" }),
    ),
  );
});

test("a changed config input is refused, naming the field and both values", () => {
  const { config, state } = setUp();
  writeResumePoint(config(), { method: "self-rewarding", loop: state }, 0);
  assert.throws(
    () => readResumePoint(config({ "selfReward.beta": "0.2" })),
    /written for another config: selfReward\.beta was 0\.1, is now 0\.2; continue with the config it was written for/,
  );
  assert.throws(
    () => readResumePoint(config({ "train.sft.steps": "7", "data.heldOutSize": "9" })),
    /data\.heldOutSize was 40, is now 9; train\.sft\.steps was 250, is now 7/,
  );
  assert.throws(
    () => readResumePoint(config({ "actors.judgeImpl": "verifier" })),
    /actors\.judgeImpl was "auto", is now "verifier"/,
  );
  assert.throws(() => readResumePoint(config({ run: "exp2" })), /written by run "exp1", this is run "exp2"/);
});

test("a replaced checkpoint or a damaged file is refused; a fresh run sets the point aside", () => {
  const { out, config, state } = setUp();
  writeResumePoint(config(), { method: "self-rewarding", loop: state }, 0);
  writeFileSync(join(out, "checkpoints", "M2", "model.safetensors"), "other weights");
  assert.throws(() => readResumePoint(config()), /model\.safetensors is not the checkpoint it recorded/);
  rmSync(join(out, "checkpoints", "M2"), { recursive: true });
  assert.throws(() => readResumePoint(config()), /its checkpoint .*M2.*model\.safetensors is missing/);
  writeFileSync(resumeFile(out), "{ not json");
  assert.throws(() => readResumePoint(config()), /resume\.json: not valid JSON/);
  const aside = setAsideResumePoint(out);
  assert.ok(aside && existsSync(aside), "the old point is kept under another name");
  assert.equal(existsSync(resumeFile(out)), false);
  assert.equal(setAsideResumePoint(out), null);
});

/** A ReFT resume point's files (stand-ins: only their digests are read) and its state. */
function setUpReft() {
  const { out, config, state } = setUp();
  for (const [folder, files] of Object.entries({
    "ReFT-update-2": ["model.safetensors", "trainer_state.json", "trainer_state.safetensors"],
    warmup: ["model.safetensors"],
    SFT: ["model.safetensors"],
    reranker: ["model.safetensors"],
  })) {
    mkdirSync(join(out, "checkpoints", folder), { recursive: true });
    for (const f of files) writeFileSync(join(out, "checkpoints", folder, f), `${f} of ${folder}`);
  }
  const ref = (version: number) => ({ ...state.weights, version, name: `v${version}` });
  const reft: ReftLoopState = {
    weights: ref(5),
    checkpoint: "ReFT-update-2",
    referenceWeights: ref(1),
    sftWeights: ref(2),
    warmupCheckpoint: "warmup",
    sftCheckpoint: "SFT",
    rerankerCheckpoint: "reranker",
    questionOrder: [3, 0, 2],
    questionEpoch: 1,
    rewardJudges: ["answer"],
    sftLoss: { warmup: { first: 2, last: 1, steps: 4 }, sft: null },
    reranker: null,
    updates: [],
    stageSeconds: { ppo: 1.5 },
    trainingSeconds: 3,
    elapsedSeconds: 9,
  };
  const reftConfig = (flags: Record<string, string> = {}) => config({ method: "reft", ...flags });
  return { out, config, reftConfig, state, reft };
}

test("a ReFT point reads back for ReFT with more updates; another method's point is refused either way", () => {
  const { out, config, reftConfig, state, reft } = setUpReft();
  writeResumePoint(reftConfig(), { method: "reft", loop: reft }, 3);
  const point = readResumePoint(reftConfig({ "reft.updates": "60", "actors.generators": "4" }));
  assert.ok(point?.method === "reft");
  assert.deepEqual(point.loop, reft);
  assert.throws(
    () => readResumePoint(reftConfig({ "reft.klCoef": "0.1" })),
    /written for another config: reft\.klCoef was 0\.05, is now 0\.1/,
  );
  assert.throws(
    () => readResumePoint(reftConfig({ "actors.batchSize": "3" })),
    /actors\.batchSize was \d+, is now 3/,
    "a rollout job's seed depends on how many questions a job holds",
  );
  assert.throws(
    () => readResumePoint(config()),
    /written by a ReFT run, this run's method is self-rewarding \(method=self-rewarding\)/,
  );
  writeResumePoint(config(), { method: "self-rewarding", loop: state }, 0);
  assert.throws(
    () => readResumePoint(reftConfig()),
    /written by a self-rewarding run, this run's method is ReFT \(method=reft\)/,
  );
  // A point written before ReFT could resume has no method field: it is the self-rewarding loop's.
  const { method: _method, ...older } = JSON.parse(readFileSync(resumeFile(out), "utf8"));
  writeFileSync(resumeFile(out), JSON.stringify(older));
  assert.equal(readResumePoint(config())?.method, "self-rewarding");
  assert.throws(() => readResumePoint(reftConfig()), /written by a self-rewarding run/);
});

test("a ReFT point whose optimizer state or reranker was replaced or removed is refused", () => {
  const { out, reftConfig, reft } = setUpReft();
  writeResumePoint(reftConfig(), { method: "reft", loop: reft }, 0);
  const optimizer = join(out, "checkpoints", "ReFT-update-2", "trainer_state.safetensors");
  writeFileSync(optimizer, "another optimizer's moments");
  assert.throws(
    () => readResumePoint(reftConfig()),
    /ReFT-update-2.trainer_state\.safetensors is not the checkpoint it recorded/,
  );
  writeResumePoint(reftConfig(), { method: "reft", loop: reft }, 0);
  rmSync(join(out, "checkpoints", "reranker"), { recursive: true });
  assert.throws(
    () => readResumePoint(reftConfig()),
    /its checkpoint .*reranker.model\.safetensors is missing/,
  );
});

test("the bus copy in the weights bucket resumes a trainer whose --out holds none", async () => {
  const server = await startNatsServer();
  const nc = await connect({ servers: server.url });
  try {
    const { config, state } = setUp();
    const tokenizer = new CharTokenizer(DOMAIN_CHARSET);
    const model = Llama.init(presetConfig("tiny", tokenizer), { seed: 5 });
    const ref = await putBlob(
      nc,
      weightsBucket("exp1"),
      "v2",
      policyToBlob({ version: 2, model, tokenizer }),
    );
    const weights = { version: 2, bucket: ref.bucket, name: ref.name, digest: ref.digest };
    const text = writeResumePoint(config(), { method: "self-rewarding", loop: { ...state, weights } }, 7);
    const elsewhere = mkdtempSync(join(tmpdir(), "srlm-resume-elsewhere-"));
    dirs.push(elsewhere);
    const onAnotherHost = (flags: Record<string, string> = {}) =>
      loadConfig({ preset: "tiny", env: {}, flags: { out: elsewhere, run: "exp1", ...flags } });
    assert.equal(await readBusResumePoint(nc, onAnotherHost()), null, "no copy on the bus yet");
    await putBlob(nc, weightsBucket("exp1"), RESUME_OBJECT, new TextEncoder().encode(text));
    const found = await readBusResumePoint(nc, onAnotherHost());
    assert.ok(found?.point.method === "self-rewarding");
    assert.equal(found.point.jobsSubmitted, 7);
    assert.deepEqual(found.point.loop.seenPrompts, state.seenPrompts);
    assert.equal(found.policy.version, 2);
    const [name, w] = [...model.getWeights()][0];
    const restored = found.policy.model.getWeights().get(name);
    assert.deepEqual(restored?.data, w.data, "the weights are the published ones");
    await assert.rejects(
      readBusResumePoint(nc, onAnotherHost({ "selfReward.topP": "0.5" })),
      /resume point srlm-exp1-weights\/resume was written for another config: selfReward\.topP was 0\.9, is now 0\.5/,
    );
    // ReFT's point needs the files of its out folder: one found on the bus is refused.
    const { reftConfig, reft } = setUpReft();
    const reftText = writeResumePoint(reftConfig(), { method: "reft", loop: { ...reft, weights } }, 0);
    await putBlob(nc, weightsBucket("exp1"), RESUME_OBJECT, new TextEncoder().encode(reftText));
    await assert.rejects(
      readBusResumePoint(nc, onAnotherHost({ method: "reft" })),
      /a ReFT run resumes from the out folder that holds its optimizer state/,
    );
    model.dispose();
    found.policy.model.dispose();
  } finally {
    await nc.close();
    await server.stop();
  }
});
