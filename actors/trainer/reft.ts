// ReFT (Reasoning with Reinforced Fine-Tuning, arXiv 2401.08967) as srlm runs it, over the same
// workers as the self-rewarding loop:
//   M0 ─ SFT for `warmupEpochs` ─→ warm-up ─ PPO on its own rollouts ─→ ReFT
//   M0 ─ SFT for `sftEpochs` ──────────────→ SFT baseline (the same data, trained longer)
// Each PPO update: the generators sample one chain of thought per question from the newest
// weights (T = 1, no top-k/top-p, so their behaviour log-probs are the policy's); the judge role
// scores each answer against the gold one (the `answer` judge; any judge on the 0..5 scale may
// stand in, reward = score / 5); the reference actor returns per-token log-probs under the frozen
// warm-up model for the KL penalty; the trainer takes `ppoEpochs` passes over the batch and
// publishes the new weights. Held-out evaluation: greedy Top-1, Vote@K and Rerank@K.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { JOB_LIMITS, type PromptFormat, type WeightRef } from "../../bus/messages.ts";
import type { Config } from "../../config/schema.ts";
import { initModel } from "../../model/api.ts";
import {
  loadCheckpoint,
  loadTrainerState,
  saveCheckpoint,
  saveTrainerState,
} from "../../model/checkpoint.ts";
import type { Llama } from "../../model/llama.ts";
import { mixedGroupShare } from "../../model/ppo.ts";
import type { PpoRollout, PpoStepStats } from "../../model/ppoBatch.ts";
import { PpoTrainer } from "../../model/ppoTrainer.ts";
import { type RerankerExample, RerankerTrainer, rerankerFrom, rerankerScores } from "../../model/reranker.ts";
import type { PromptResponse } from "../../model/score.ts";
import { CharTokenizer } from "../../model/tokenizer.ts";
import { pairedGain } from "../../tasks/eval.ts";
import { evaluateInference, type InferenceReport, isCorrect } from "../../tasks/inference.ts";
import { MAX_SCORE } from "../../tasks/judgement.ts";
import type { MathProblem } from "../../tasks/math.ts";
import { deriveSeed, makeRng } from "../../tasks/random.ts";
import { MATH_CHARSET, type ReasoningTask } from "../../tasks/reasoning.ts";
import { extractNumber } from "../../tasks/reward.ts";
import { type Policy, policyFromBlob, policyToBlob, type Sampling } from "../policy.ts";
import { type LossSummary, pretrain, supervisedFineTune, yieldToEventLoop } from "./loops.ts";
import type { PpoUpdateReport, ReftModelEval, ReftReport } from "./reftReport.ts";
import { reftSummaryTable } from "./reftReport.ts";
import { type ReftLoopState, resumeFile } from "./resume.ts";
import { recordStage, reftM0Inputs, reftSftInputs, reusedStage, stageKey } from "./stageCache.ts";
import { assertFiniteWeights, chunk, mean, StageBook } from "./stages.ts";
import { type LoopIO, RunStopped } from "./workers.ts";

/** One sampled chain of thought, as the trainer keeps it until the update that trains it. */
interface Rollout {
  problem: MathProblem;
  text: string;
  promptTokens: Int32Array<ArrayBuffer>;
  tokens: Int32Array<ArrayBuffer>;
  behaviourLogProbs: Float32Array<ArrayBuffer>;
  policyVersion: number;
}

/** The answers of one model to the held-out questions, per question. */
interface HeldOutAnswers {
  greedy: string[];
  samples: string[][];
  /** The samples as token ids, for the reranker to score. */
  sampleRows: PromptResponse[][];
}

/** Where PPO starts from (fresh, or a resume point) and what the rest of the run reads. */
interface PpoStart {
  warmup: Policy;
  /** The warm-up itself when the two are one model. */
  sftModel: Policy;
  sftWeights: WeightRef;
  rerank: { model: Llama; report: NonNullable<ReftReport["reranker"]> } | null;
  policy: Policy;
  ppo: PpoTrainer;
  /** The policy's newest published version. */
  weights: WeightRef;
  sftLoss: ReftReport["sftLoss"];
  updates: PpoUpdateReport[];
  /** The folder the last resume point named (null before the first). */
  checkpoint: string | null;
}

/** Resume points name the policy's folder `ReFT-update-<updates done>`. */
const UPDATE_CHECKPOINT_PREFIX = "ReFT-update-";
const RERANKER_CHECKPOINT = "reranker";

/** Positions of srlm's own ReFT model: the longest problem and solution with room to spare. */
const REFT_CONTEXT = 512;

const copyOf = (policy: Policy): Policy => policyFromBlob(policyToBlob(policy));

export class ReftLoop {
  private readonly book: StageBook;
  private referenceWeights!: WeightRef;
  private questionOrder: number[] = [];
  private questionEpoch = 0;
  /** The question order as it was before update u's batch was drawn, by u. */
  private readonly questionsBefore = new Map<number, { order: number[]; epoch: number }>();

  constructor(
    private readonly cfg: Config,
    private readonly task: ReasoningTask,
    private readonly io: LoopIO,
  ) {
    this.book = new StageBook(
      io,
      cfg.reft.maxFailedShare,
      new Set(["pretrain", "warm-up", "sft", "reranker", "ppo"]),
    );
    const r = cfg.reft;
    const perJob =
      cfg.actors.batchSize * Math.max(r.samplesPerQuestion, r.evalSamples, r.reranker.samplesPerQuestion);
    if (perJob > JOB_LIMITS.sequences)
      throw new Error(
        `actors.batchSize ${cfg.actors.batchSize} × the most samples per question of reft.samplesPerQuestion, ` +
          `reft.evalSamples and reft.reranker.samplesPerQuestion is ${perJob} sequences per job, above a worker's ` +
          `limit of ${JOB_LIMITS.sequences}: lower actors.batchSize`,
      );
    if (this.evalProblems.length === 0)
      throw new Error(
        `reft.evalSplit ${cfg.reft.evalSplit}: task ${task.name} has no ${cfg.reft.evalSplit} problems` +
          (cfg.reft.evalSplit === "dev" ? " (data.math.devSize is 0)" : ""),
      );
  }

  /** The problems every accuracy is measured on: held-out, or dev while settings are chosen. */
  private get evalProblems(): MathProblem[] {
    return this.cfg.reft.evalSplit === "dev" ? this.task.dev : this.task.heldOut;
  }

  private get format(): PromptFormat {
    return this.task.format;
  }

  private seed(label: string): number {
    const { seed } = this.cfg.reft;
    return deriveSeed(this.cfg.model.seed, seed === 0 ? `reft.${label}` : `reft.${label}#${seed}`);
  }

  private checkpointDir(label: string): string {
    return join(this.cfg.out, "checkpoints", label);
  }

  private async publish(policy: Policy, version: number, label?: string): Promise<WeightRef> {
    assertFiniteWeights(policy, version);
    policy.version = version;
    if (label) saveCheckpoint(this.checkpointDir(label), policy.model, policy.tokenizer);
    const ref = await this.io.publish(version, policy);
    this.io.log.info({ version, label }, "published weights");
    return ref;
  }

  /** The checkpoint an earlier run wrote for `label` from the same inputs, or null. */
  private reused(label: string, key: string): Policy | null {
    return reusedStage(this.checkpointDir(label), key, this.cfg.model.reuse, (dir) => {
      this.io.log.info({ dir }, `reusing ${label}: an earlier run made it from the same inputs`);
      this.io.progress(`reuse ${label}`, 0, 1, 1, "made by an earlier run from the same inputs");
    });
  }

  /** srlm's own M0 (a character model pretrained on the training problems), or model.base. */
  private async baseModel(): Promise<Policy> {
    const { cfg } = this;
    if (cfg.model.base) {
      const { model, tokenizer } = loadCheckpoint(cfg.model.base);
      return { version: 0, model, tokenizer };
    }
    const key = stageKey(reftM0Inputs(cfg));
    const reused = this.reused("M0", key);
    if (reused) return reused;
    const tokenizer = new CharTokenizer(MATH_CHARSET);
    // Room for a question, its chain of thought and an overlong sample: rotary positions cost
    // no weights, so a longer context than the preset's is free.
    const model = initModel(cfg.model.preset, tokenizer, {
      seed: cfg.model.seed,
      tieEmbeddings: cfg.model.tieEmbeddings,
      maxPositions: REFT_CONTEXT,
    });
    const policy = { version: 0, model, tokenizer };
    await pretrain(
      policy,
      this.task.pretrain,
      cfg.train.pretrain,
      deriveSeed(cfg.model.seed, "reft.pretrain"),
      (r) => this.io.progress("pretrain M0", 0, r.step, r.total, `loss ${r.loss.toFixed(3)}`),
    );
    const dir = this.checkpointDir("M0");
    saveCheckpoint(dir, model, tokenizer);
    recordStage(dir, key, reftM0Inputs(cfg));
    return policy;
  }

  /**
   * `label` (the warm-up, the SFT baseline): SFT of M0 on the training problems' chains of
   * thought for `epochs` (in expectation: minibatches are drawn at random), or the checkpoint an
   * earlier run made from the same inputs. Its seed is the model's, not the loop's, so runs that
   * vary reft.seed share it.
   */
  private async sftStage(
    m0: () => Promise<Policy>,
    epochs: number,
    stage: string,
    label: string,
  ): Promise<{ policy: Policy; loss: LossSummary | null }> {
    const key = stageKey(reftSftInputs(this.cfg, epochs));
    const reused = this.reused(label, key);
    if (reused) return { policy: reused, loss: null };
    const policy = await m0();
    const { sft } = this.cfg.reft;
    const steps = Math.ceil((epochs * this.task.train.length) / sft.batchSize);
    const examples = this.task.train.map((p) => ({ prompt: p.question, response: p.cot }));
    const loss = await this.book.timed(stage, () =>
      supervisedFineTune(
        policy,
        examples,
        { ...sft, steps },
        deriveSeed(this.cfg.model.seed, `reft.sft.${epochs}`),
        (r) => this.io.progress(stage, 0, r.step, r.total, `loss ${r.loss.toFixed(3)}`),
        this.format,
      ),
    );
    if (steps > 0 && !Number.isFinite(loss.last))
      throw new Error(`stage "${stage}": the loss is ${loss.last} after ${steps} steps`);
    const dir = this.checkpointDir(label);
    saveCheckpoint(dir, policy.model, policy.tokenizer);
    recordStage(dir, key, reftSftInputs(this.cfg, epochs));
    return { policy, loss };
  }

  /** The PpoTrainer of the policy being trained (one per trainer life; its state carries over). */
  private ppoTrainer(policy: Policy): PpoTrainer {
    const r = this.cfg.reft;
    return new PpoTrainer(policy.model, {
      algorithm: r.algorithm,
      ppoEpochs: r.ppoEpochs,
      minibatchSize: r.minibatchSize,
      hyper: {
        clip: r.clip,
        valueClip: r.valueClip,
        valueCoef: r.valueCoef,
        klCoef: r.klCoef,
        gamma: r.gamma,
        lambda: r.lambda,
        entropyCoef: r.entropyCoef,
        negativeAdvantageScale: r.negativeAdvantageScale,
      },
      schedule: { kind: "constant", peak: r.learningRate, warmupSteps: r.warmupSteps },
      maxGradNorm: r.gradClip,
      seed: this.seed("ppo"),
    });
  }

  /** Everything up to the first PPO update: the warm-up, the SFT baseline, the reranker, and the
   * policy (a copy of the warm-up) published as its own version. */
  private async freshStart(): Promise<PpoStart> {
    const r = this.cfg.reft;
    // M0 is loaded or trained only when a stage needs it, and once.
    const m0: { loading: Promise<Policy> | null } = { loading: null };
    const base = () => {
      m0.loading ??= this.book.timed("pretrain", () => this.baseModel());
      return m0.loading.then(copyOf);
    };
    const warm = await this.sftStage(base, r.warmupEpochs, "warm-up", "warmup");
    const warmup = warm.policy;
    this.referenceWeights = await this.publish(warmup, 1);
    // The generators sample the reranker's training data from the warm-up while the trainer
    // trains the SFT baseline.
    const rerankerData = this.rerankerSamples();
    rerankerData.catch(() => {});
    // With as many warm-up epochs as SFT ones, the warm-up is the SFT baseline: ReFT's gain is
    // then what PPO adds on the same questions, and the SFT is trained once.
    let sftModel = warmup;
    let sftWeights = this.referenceWeights;
    let sftLoss: LossSummary | null = null;
    if (r.sftEpochs !== r.warmupEpochs) {
      const sft = await this.sftStage(base, r.sftEpochs, "sft", "SFT");
      sftModel = sft.policy;
      sftLoss = sft.loss;
      sftWeights = await this.publish(sftModel, 2);
    }
    if (m0.loading) (await m0.loading).model.dispose();
    const rerank = await this.book.timed("reranker", async () =>
      this.trainReranker(warmup, await rerankerData),
    );
    // Saved for a resumed trainer, which must rerank with this one and not train another.
    if (rerank) saveCheckpoint(this.checkpointDir(RERANKER_CHECKPOINT), rerank.model, warmup.tokenizer);
    // PPO starts from the warm-up, as its own version, so that "the newest weights" a streaming
    // generator picks are always the policy's and never the SFT baseline's.
    const policy = copyOf(warmup);
    const weights = await this.publish(policy, 3);
    const ppo = this.ppoTrainer(policy);
    return {
      warmup,
      sftModel,
      sftWeights,
      rerank,
      policy,
      ppo,
      weights,
      sftLoss: { warmup: warm.loss, sft: sftLoss },
      updates: [],
      checkpoint: null,
    };
  }

  /** The start of the next update from a resume point: the checkpoints it names, loaded and
   * published again as the versions they were (workers of a new bus hold none of them), and the
   * loop's own state as it was. */
  private async resumedStart(state: ReftLoopState, policy: Policy): Promise<PpoStart> {
    const { updates } = state;
    if (updates.length > this.cfg.reft.updates)
      throw new Error(
        `resume point ${resumeFile(this.cfg.out)}: ${updates.length} PPO updates are done, but reft.updates is ` +
          `${this.cfg.reft.updates}; set reft.updates to at least ${updates.length}, or start the run over`,
      );
    const load = (folder: string): Policy => {
      const { model, tokenizer } = loadCheckpoint(this.checkpointDir(folder));
      return { version: 0, model, tokenizer };
    };
    const warmup = load(state.warmupCheckpoint);
    this.referenceWeights = await this.publish(warmup, state.referenceWeights.version);
    let sftModel = warmup;
    let sftWeights = this.referenceWeights;
    if (state.sftCheckpoint) {
      sftModel = load(state.sftCheckpoint);
      sftWeights = await this.publish(sftModel, state.sftWeights.version);
    }
    const rerank =
      state.rerankerCheckpoint && state.reranker
        ? { model: load(state.rerankerCheckpoint).model, report: state.reranker }
        : null;
    const ppo = this.ppoTrainer(policy);
    const dir = this.checkpointDir(state.checkpoint);
    const trainerState = loadTrainerState(dir);
    if (!trainerState)
      throw new Error(`resume point ${resumeFile(this.cfg.out)}: ${dir} holds no PpoTrainer state`);
    ppo.loadState(trainerState);
    this.questionOrder = [...state.questionOrder];
    this.questionEpoch = state.questionEpoch;
    for (const judge of state.rewardJudges) this.rewardJudges.add(judge);
    this.book.seconds = { ...state.stageSeconds };
    this.book.trainingSeconds = state.trainingSeconds;
    const weights = await this.publish(policy, state.weights.version);
    this.io.log.info(
      { updates: updates.length, version: weights.version, checkpoint: state.checkpoint },
      `resuming ReFT at update ${updates.length + 1}`,
    );
    return {
      warmup,
      sftModel,
      sftWeights,
      rerank,
      policy,
      ppo,
      weights,
      sftLoss: state.sftLoss,
      updates: [...updates],
      checkpoint: state.checkpoint,
    };
  }

  /**
   * Records where the run is, after the reranker and after each update: the policy with its
   * value head and the PpoTrainer's state in a folder of their own (the one the last point named
   * stays whole until the new point names the new folder, then goes), then the resume point.
   * Without io.resume (in-process probes and tests) nothing is recorded.
   */
  private recordResumePoint(start: PpoStart, elapsedSeconds: number): void {
    const { resume } = this.io;
    if (!resume) return;
    const label = `${UPDATE_CHECKPOINT_PREFIX}${start.updates.length}`;
    const dir = this.checkpointDir(label);
    // A folder of this name can only be a leftover of a life killed while writing it.
    rmSync(dir, { recursive: true, force: true });
    saveCheckpoint(dir, start.policy.model, start.policy.tokenizer);
    saveTrainerState(dir, start.ppo.state());
    // The questions of a batch drawn ahead (streaming) are drawn again by a resumed trainer.
    const next = this.questionsBefore.get(start.updates.length + 1) ?? {
      order: this.questionOrder,
      epoch: this.questionEpoch,
    };
    const recorded = resume.save({
      method: "reft",
      loop: {
        weights: start.weights,
        checkpoint: label,
        referenceWeights: this.referenceWeights,
        sftWeights: start.sftWeights,
        warmupCheckpoint: "warmup",
        sftCheckpoint: start.sftModel === start.warmup ? null : "SFT",
        rerankerCheckpoint: start.rerank ? RERANKER_CHECKPOINT : null,
        questionOrder: [...next.order],
        questionEpoch: next.epoch,
        rewardJudges: [...this.rewardJudges],
        sftLoss: start.sftLoss,
        reranker: start.rerank?.report ?? null,
        updates: start.updates,
        stageSeconds: { ...this.book.seconds },
        trainingSeconds: this.book.trainingSeconds,
        elapsedSeconds,
      },
    });
    if (!recorded) {
      // The point on disk still names the folder before, which a restarted trainer goes on from.
      rmSync(dir, { recursive: true, force: true });
      return;
    }
    if (start.checkpoint && start.checkpoint !== label)
      rmSync(this.checkpointDir(start.checkpoint), { recursive: true, force: true });
    start.checkpoint = label;
  }

  async run(): Promise<ReftReport> {
    const started = performance.now();
    await yieldToEventLoop();
    const { cfg, io } = this;
    const r = cfg.reft;
    let updates: PpoUpdateReport[] = [];
    let stopped = false;
    let sftLoss: ReftReport["sftLoss"] = { warmup: null, sft: null };
    let reranker: ReftReport["reranker"] = null;
    const models: ReftModelEval[] = [];
    let gainOverSft: ReftReport["gainOverSft"] = null;
    let elapsedBefore = 0;
    const elapsed = () => elapsedBefore + (performance.now() - started) / 1000;
    try {
      const resumed = (await io.resume?.load()) ?? null;
      if (resumed && resumed.method !== "reft")
        throw new Error(`the ReFT loop was given a ${resumed.method} resume point`);
      if (resumed) elapsedBefore = resumed.loop.elapsedSeconds;
      const start = resumed ? await this.resumedStart(resumed.loop, resumed.policy) : await this.freshStart();
      const { warmup, sftModel, sftWeights, rerank, policy, ppo } = start;
      let { weights } = start;
      updates = start.updates;
      sftLoss = start.sftLoss;
      reranker = rerank?.report ?? null;
      const sftIsWarmup = sftModel === warmup;
      try {
        if (!resumed) this.recordResumePoint(start, elapsed());
        const streaming = r.mode === "streaming" && r.maxStaleness > 0;
        const first = updates.length + 1;
        let next = first <= r.updates ? this.rollouts(first, weights, streaming) : null;
        for (let u = first; u <= r.updates && next; u++) {
          const t0 = performance.now();
          const batch = await next;
          // Streaming: the next batch is sampled while this one trains (its failure, if any, is
          // reported when it is awaited, not as an unhandled rejection meanwhile).
          if (streaming && u < r.updates) {
            next = this.rollouts(u + 1, weights, true);
            next.catch(() => {});
          }
          const report = await this.update(ppo, u, batch, weights.version);
          weights = await this.publish(policy, weights.version + 1);
          report.version = weights.version;
          report.seconds = (performance.now() - t0) / 1000;
          report.failures = this.book.takeFailures();
          updates.push(report);
          start.weights = weights;
          // Strict: recorded before the next batch is drawn, so the point's question order is
          // the one that batch starts from.
          this.recordResumePoint(start, elapsed());
          if (!streaming && u < r.updates) next = this.rollouts(u + 1, weights, false);
          io.metrics(u, {
            meanReward: report.meanReward,
            correctShare: report.correctShare,
            mixedGroupShare: report.mixedGroupShare,
            refKl: report.refKl,
            policyLoss: report.policyLoss,
            valueLoss: report.valueLoss,
            clipFraction: report.clipFraction,
            approxKl: report.approxKl,
            entropy: report.entropy,
            explainedVariance: report.explainedVariance,
          });
        }
      } finally {
        ppo.dispose();
      }
      saveCheckpoint(this.checkpointDir("ReFT"), policy.model, policy.tokenizer);

      const evaluated = await this.book.timed("eval", () =>
        this.heldOutAnswers(
          sftIsWarmup
            ? [
                { model: "SFT (warm-up)", weights: sftWeights },
                { model: "ReFT", weights },
              ]
            : [
                { model: "SFT", weights: sftWeights },
                { model: "warm-up", weights: this.referenceWeights },
                { model: "ReFT", weights },
              ],
        ),
      );
      const inference = evaluated.map((e) => {
        const scored = this.inference(e.answers, rerank?.model ?? null);
        models.push(this.modelEval(e.model, e.weights.version, e.answers, scored));
        return scored;
      });
      const [sftEval, reftEval] = [inference[0], inference[inference.length - 1]];
      gainOverSft = {
        top1: pairedGain(reftEval.top1, sftEval.top1),
        voteAtK: pairedGain(reftEval.voteAtK, sftEval.voteAtK),
        rerankAtK:
          reftEval.rerankAtK && sftEval.rerankAtK ? pairedGain(reftEval.rerankAtK, sftEval.rerankAtK) : null,
      };
      for (const p of new Set([policy, warmup, sftModel])) p.model.dispose();
      rerank?.model.dispose();
    } catch (err) {
      if (!(err instanceof RunStopped)) throw err;
      stopped = true;
      io.log.info({ updates: updates.length }, "stopped by the operator; reporting what ran");
    }
    const report: ReftReport = {
      method: "reft",
      preset: cfg.preset,
      task: this.task.name,
      algorithm: r.algorithm,
      mode: r.mode,
      backend: io.backend,
      run: cfg.run,
      ...(stopped ? { stopped: true } : {}),
      split: r.evalSplit,
      k: r.evalSamples,
      trainQuestions: this.task.train.length,
      sftLoss,
      rewardJudge: [...this.rewardJudges],
      reranker,
      models,
      gainOverSft,
      updates,
      wallSeconds: elapsed(),
      trainerBusySeconds: this.book.trainingSeconds,
      stageSeconds: this.book.takeSeconds(),
      failures: this.book.takeFailures(),
      actors: await io.actorStats(),
      bus: io.busCounts?.() ?? null,
    };
    mkdirSync(cfg.out, { recursive: true });
    writeFileSync(join(cfg.out, "report.json"), `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(join(cfg.out, "summary.txt"), reftSummaryTable(report));
    return report;
  }

  private readonly rewardJudges = new Set<string>();

  /** The next `n` training questions: epochs of the training set, each in a fresh seeded order. */
  private nextQuestions(n: number): MathProblem[] {
    const out: MathProblem[] = [];
    while (out.length < n) {
      if (this.questionOrder.length === 0) {
        const indices = this.task.train.map((_, i) => i);
        this.questionOrder = makeRng(this.seed(`questions.${this.questionEpoch++}`)).shuffle(indices);
      }
      out.push(this.task.train[this.questionOrder.shift()!]);
    }
    return out;
  }

  private rolloutSampling(u: number, job: number): Sampling {
    const r = this.cfg.reft;
    return {
      temperature: r.temperature,
      topP: 1,
      topK: 0,
      maxNewTokens: r.maxNewTokens,
      seed: this.seed(`rollout.${u}.${job}`),
    };
  }

  /** Update `u`'s rollouts: sampled by the generators (from `weights`, or the newest they have). */
  private async rollouts(u: number, weights: WeightRef, latest: boolean): Promise<Rollout[]> {
    const { cfg } = this;
    this.questionsBefore.delete(u - 1);
    this.questionsBefore.set(u, { order: [...this.questionOrder], epoch: this.questionEpoch });
    const questions = this.nextQuestions(cfg.reft.questionsPerUpdate);
    const groups = chunk(questions, cfg.actors.batchSize);
    const outcomes = await this.book.jobs(
      "rollouts",
      "samples",
      groups.map((qs, j) => ({
        iteration: u,
        purpose: "train" as const,
        prompts: qs.map((q) => q.question),
        format: this.format,
        n: cfg.reft.samplesPerQuestion,
        weights,
        ...(latest ? { latest: true } : {}),
        sampling: this.rolloutSampling(u, j),
      })),
      (d, n) => this.io.progress("rollouts", u, d, n),
    );
    const out: Rollout[] = [];
    outcomes.forEach((o, j) => {
      if (!o.ok) return;
      o.result.results.forEach((p, i) => {
        for (const s of p.responses)
          out.push({
            problem: groups[j][i],
            text: s.text,
            promptTokens: p.promptTokens,
            tokens: s.tokens,
            behaviourLogProbs: s.logProbs,
            policyVersion: o.result.policyVersion,
          });
      });
    });
    return out;
  }

  /** Rewards from the judge role and per-token reference log-probs, then one PPO update. */
  private async update(
    ppo: PpoTrainer,
    u: number,
    sampled: Rollout[],
    version: number,
  ): Promise<PpoUpdateReport> {
    const { cfg, io } = this;
    const r = cfg.reft;
    // Streaming: a rollout more than maxStaleness versions behind the weights it would train is dropped.
    const fresh = sampled.filter((x) => x.tokens.length > 0 && version - x.policyVersion <= r.maxStaleness);
    const droppedStale = sampled.length - fresh.length;
    const byQuestion = new Map<string, Rollout[]>();
    for (const x of fresh)
      byQuestion.set(x.problem.question, [...(byQuestion.get(x.problem.question) ?? []), x]);
    const questions = [...byQuestion.values()];
    const refGroups = chunk(fresh, cfg.actors.batchSize);
    const [judged, referenced] = await Promise.all([
      this.book.jobs(
        "rewards",
        "judge",
        questions.map((rs, q) => ({
          iteration: u,
          purpose: "train" as const,
          task: this.task.name,
          prompt: rs[0].problem.question,
          candidates: rs.map((x) => x.text),
          judgePrompts: rs.map((x) => this.task.judgePrompt(x.problem.question, x.text)),
          format: this.format,
          parser: "last-score" as const,
          gold: String(rs[0].problem.answer),
          trigger: this.task.trigger,
          samples: 1,
          weights: this.referenceWeights,
          sampling: {
            temperature: 0,
            topP: 1,
            topK: 0,
            maxNewTokens: r.maxNewTokens,
            seed: this.seed(`judge.${u}.${q}`),
          },
        })),
        (d, n) => io.progress("rewards", u, d, n),
      ),
      this.book.jobs(
        "reference",
        "logprobs",
        refGroups.map((rs) => ({
          iteration: u,
          weights: this.referenceWeights,
          sequences: rs.map((x) => ({ prompt: x.promptTokens, completion: x.tokens })),
        })),
        (d, n) => io.progress("reference", u, d, n),
      ),
    ]);
    const reward = new Map<Rollout, number>();
    let unscored = 0;
    judged.forEach((o, q) => {
      if (!o.ok) return;
      const judge = o.result.judge;
      this.rewardJudges.add(judge.model ? `${judge.impl} (${judge.model})` : judge.impl);
      o.result.scores.forEach((scores, c) => {
        const valid = scores.filter((s): s is number => s !== null);
        if (valid.length === 0) unscored++;
        else reward.set(questions[q][c], mean(valid) / MAX_SCORE);
      });
    });
    const refLogProbs = new Map<Rollout, Float32Array>();
    referenced.forEach((o, g) => {
      if (!o.ok) return;
      for (const [i, row] of o.result.logProbs.entries()) refLogProbs.set(refGroups[g][i], row);
    });
    const batch: PpoRollout[] = [];
    const kept: Rollout[] = [];
    for (const x of fresh) {
      const rw = reward.get(x);
      const ref = refLogProbs.get(x);
      if (rw === undefined || ref === undefined) continue;
      kept.push(x);
      batch.push({
        prompt: Array.from(x.promptTokens),
        response: Array.from(x.tokens),
        refLogProbs: Array.from(ref),
        reward: rw,
        group: x.problem.question,
        // On-policy rollouts are scored again under the batch's weights, off-policy ones keep
        // the log-probs of the weights that sampled them.
        ...(x.policyVersion !== version ? { behaviourLogProbs: Array.from(x.behaviourLogProbs) } : {}),
      });
    }
    if (batch.length === 0)
      throw new Error(
        `update ${u}: no rollout to train on (${sampled.length} sampled, ${droppedStale} stale, ${unscored} unscored; failed jobs are in the report)`,
      );
    const steps = await this.book.timed("ppo", async () => {
      const prepared = ppo.prepare(batch);
      const plan = ppo.plan(prepared);
      const out: PpoStepStats[] = [];
      for (const [i, rows] of plan.entries()) {
        out.push(ppo.stepOn(prepared, rows));
        io.progress("PPO", u, i + 1, plan.length, `reward ${prepared.stats.meanReward.toFixed(3)}`);
        await yieldToEventLoop();
      }
      return { prepared, out };
    });
    const done = steps.out.filter((s) => !s.skipped);
    const stepMean = (f: (s: PpoStepStats) => number) => (done.length ? mean(done.map(f)) : Number.NaN);
    const rewards = batch.map((b) => b.reward);
    const staleness = kept.map((x) => version - x.policyVersion);
    return {
      update: u,
      version,
      rollouts: batch.length,
      tokens: steps.prepared.stats.tokens,
      meanReward: steps.prepared.stats.meanReward,
      correctShare: mean(rewards.map((x) => (x >= 1 - 1e-9 ? 1 : 0))),
      answeredShare: mean(kept.map((x) => (extractNumber(x.text, this.task.trigger) === null ? 0 : 1))),
      mixedGroupShare: mixedGroupShare(
        rewards,
        batch.map((b) => b.group ?? b.prompt.join(",")),
      ),
      refKl: steps.prepared.stats.refKl,
      policyLoss: stepMean((s) => s.policyLoss),
      valueLoss: stepMean((s) => s.valueLoss),
      clipFraction: stepMean((s) => s.clipFraction),
      approxKl: stepMean((s) => s.approxKl),
      entropy: stepMean((s) => s.entropy),
      explainedVariance: steps.prepared.stats.explainedVariance,
      steps: steps.out.length,
      skippedSteps: steps.out.length - done.length,
      staleness: { max: Math.max(0, ...staleness), mean: mean(staleness) },
      droppedStale,
      unscored,
      failures: {},
      seconds: 0,
    };
  }

  /** Greedy answers and K samples of each model to every held-out question, in one batch of jobs. */
  private async heldOutAnswers(
    models: { model: string; weights: WeightRef }[],
  ): Promise<{ model: string; weights: WeightRef; answers: HeldOutAnswers }[]> {
    const { cfg } = this;
    const r = cfg.reft;
    const groups = chunk(this.evalProblems, cfg.actors.batchSize);
    const jobs = models.flatMap((m) =>
      groups.flatMap((qs, j) => [
        {
          iteration: m.weights.version,
          purpose: "eval" as const,
          prompts: qs.map((q) => q.question),
          format: this.format,
          n: 1,
          weights: m.weights,
          sampling: {
            temperature: 0,
            topP: 1,
            topK: 0,
            maxNewTokens: r.maxNewTokens,
            seed: this.seed(`eval.greedy.${j}`),
          },
        },
        {
          iteration: m.weights.version,
          purpose: "eval" as const,
          prompts: qs.map((q) => q.question),
          format: this.format,
          n: r.evalSamples,
          weights: m.weights,
          sampling: {
            temperature: r.evalTemperature,
            topP: 1,
            topK: 0,
            maxNewTokens: r.maxNewTokens,
            seed: this.seed(`eval.samples.${j}`),
          },
        },
      ]),
    );
    const outcomes = await this.book.jobs("eval", "samples", jobs, (d, n) =>
      this.io.progress("held-out eval", 0, d, n),
    );
    // A question whose job failed is answered by no one: every model is scored on the same
    // questions, so paired gains stay paired (the failures are counted in the report).
    const perModel = groups.length * 2;
    return models.map((m, k) => {
      const answers: HeldOutAnswers = { greedy: [], samples: [], sampleRows: [] };
      groups.forEach((qs, j) => {
        const greedy = outcomes[k * perModel + 2 * j];
        const sampled = outcomes[k * perModel + 2 * j + 1];
        qs.forEach((_, i) => {
          answers.greedy.push(greedy.ok ? greedy.result.results[i].responses[0].text : "");
          // A failed job leaves K empty answers: none readable, so wrong by every strategy.
          const p = sampled.ok ? sampled.result.results[i] : null;
          answers.samples.push(p ? p.responses.map((x) => x.text) : Array(r.evalSamples).fill(""));
          answers.sampleRows.push(
            p
              ? p.responses.map((x) => ({
                  prompt: Array.from(p.promptTokens),
                  response: Array.from(x.tokens),
                }))
              : [],
          );
        });
      });
      return { ...m, answers };
    });
  }

  /** Top-1, Vote@K and (with a reranker) Rerank@K per held-out question. */
  private inference(answers: HeldOutAnswers, reranker: Llama | null): InferenceReport {
    const questions = this.evalProblems.map((p, i) => {
      const rows = answers.sampleRows[i];
      // A question whose samples failed has no rows; its K empty answers are wrong whatever the scores.
      const scores = reranker
        ? rows.length
          ? rerankerScores(reranker, rows)
          : answers.samples[i].map(() => Number.NaN)
        : undefined;
      return {
        gold: p.answer,
        greedy: answers.greedy[i],
        samples: answers.samples[i],
        ...(scores ? { scores } : {}),
      };
    });
    return evaluateInference(questions, { trigger: this.task.trigger });
  }

  private modelEval(
    model: string,
    version: number,
    answers: HeldOutAnswers,
    c: InferenceReport,
  ): ReftModelEval {
    return {
      model,
      version,
      top1: c.accuracy.top1,
      voteAtK: c.accuracy.voteAtK,
      rerankAtK: c.accuracy.rerankAtK,
      answeredShare: mean(answers.greedy.map((t) => (extractNumber(t, this.task.trigger) === null ? 0 : 1))),
      samples: this.evalProblems
        .slice(0, 5)
        .map((p, i) => ({ question: p.question, response: answers.greedy[i], gold: p.answer })),
    };
  }

  /** Samples of the warm-up model on training questions, labelled by answer correctness: the
   * reranker's training data (none when reft.reranker.samplesPerQuestion is 0). */
  private async rerankerSamples(): Promise<RerankerExample[]> {
    const { cfg } = this;
    const rr = cfg.reft.reranker;
    if (rr.samplesPerQuestion === 0) return [];
    const questions = makeRng(this.seed("reranker.questions"))
      .shuffle(this.task.train)
      .slice(0, rr.questions);
    const groups = chunk(questions, cfg.actors.batchSize);
    const outcomes = await this.book.jobs(
      "reranker samples",
      "samples",
      groups.map((qs, j) => ({
        iteration: 0,
        purpose: "train" as const,
        prompts: qs.map((q) => q.question),
        format: this.format,
        n: rr.samplesPerQuestion,
        weights: this.referenceWeights,
        sampling: { ...this.rolloutSampling(0, j), seed: this.seed(`reranker.samples.${j}`) },
      })),
      (d, n) => this.io.progress("reranker samples", 0, d, n),
    );
    const examples: RerankerExample[] = [];
    outcomes.forEach((o, j) => {
      if (!o.ok) return;
      o.result.results.forEach((p, i) => {
        for (const x of p.responses)
          examples.push({
            prompt: Array.from(p.promptTokens),
            response: Array.from(x.tokens),
            label: isCorrect(x.text, groups[j][i].answer, { trigger: this.task.trigger }) ? 1 : 0,
          });
      });
    });
    return examples;
  }

  /** The reranker: a copy of the warm-up with a scoring head, trained on its own labelled samples. */
  private async trainReranker(
    warmup: Policy,
    examples: RerankerExample[],
  ): Promise<{ model: Llama; report: NonNullable<ReftReport["reranker"]> } | null> {
    if (examples.length === 0) return null;
    const rr = this.cfg.reft.reranker;
    const model = rerankerFrom(warmup.model);
    const trainer = new RerankerTrainer(model, {
      epochs: rr.epochs,
      batchSize: rr.batchSize,
      schedule: { kind: "constant", peak: rr.learningRate },
      maxGradNorm: this.cfg.reft.gradClip,
      seed: this.seed("reranker"),
    });
    const losses: number[] = [];
    try {
      const plan = trainer.plan(examples.length);
      for (const [k, indices] of plan.entries()) {
        const stats = trainer.stepOn(examples, indices);
        if (!stats.skipped) losses.push(stats.loss);
        this.io.progress("reranker", 0, k + 1, plan.length, `loss ${stats.loss.toFixed(3)}`);
        await yieldToEventLoop();
      }
    } finally {
      trainer.dispose();
    }
    const tenth = Math.max(1, Math.floor(losses.length / 10));
    return {
      model,
      report: {
        examples: examples.length,
        positiveShare: mean(examples.map((e) => e.label)),
        loss: { first: mean(losses.slice(0, tenth)), last: mean(losses.slice(-tenth)), steps: losses.length },
        skippedSteps: trainer.skippedSteps,
      },
    };
  }
}
