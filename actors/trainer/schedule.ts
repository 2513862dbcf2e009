// The iteration schedule of Self-Rewarding Language Models, owned by the trainer:
//   M0 (srlm's own pretrained base, or --base) → SFT on IFT + EFT → M1,
//   then per iteration t: M_t writes prompts → samples N answers each → judges each answer K times
//   → pairs best against worst → reference log-probs under frozen M_t → DPO → M_{t+1}.
// Every step but the training itself is a job on a queue, done by whichever actor process takes it.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { JetStreamClient } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "pino";
import type {
  CandidatesResultBody,
  PromptsResultBody,
  RefLogProbsResultBody,
  ScoresResultBody,
  WeightRef,
} from "../../bus/messages.ts";
import { putBlob } from "../../bus/objects.ts";
import { busStatus } from "../../bus/status.ts";
import type { Config } from "../../config/schema.ts";
import { loadCheckpoint, saveCheckpoint } from "../../model/checkpoint.ts";
import { presetConfig } from "../../model/config.ts";
import { Llama } from "../../model/llama.ts";
import { CharTokenizer } from "../../model/tokenizer.ts";
import {
  accuracy,
  buildSeedData,
  DOMAIN_CHARSET,
  deriveSeed,
  type JudgeEvalItem,
  makeRng,
  pairedGain,
  pairwiseAccuracy,
  type SeedData,
  spearman,
  trueScore,
  winRate,
  writePromptsInTurn,
} from "../../tasks/index.ts";
import { type Policy, policyToBlob } from "../policy.ts";
import type { JobBoard, JobOutcome } from "./jobs.ts";
import {
  type DpoSummary,
  directPreference,
  PreferenceTrainer,
  pretrain,
  supervisedFineTune,
  type TrainingPair,
  yieldToEventLoop,
} from "./loops.ts";
import {
  EvenDraws,
  isFreshEnough,
  type JudgedCandidate,
  type PreferencePair,
  pairFromJudged,
  stepsAllowed,
  strictDpoSteps,
} from "./pairs.ts";
import {
  type ActorUsage,
  type IterationReport,
  type ModelEval,
  type RunReport,
  summaryTable,
} from "./report.ts";
import { forgetStage, m0Inputs, m1Inputs, recordStage, stageKey, stageMatches } from "./stageCache.ts";

export interface ScheduleIO {
  nc: NatsConnection;
  js: JetStreamClient;
  run: string;
  log: Logger;
  board: JobBoard;
  backend: string;
  /** Announces a new weight version on srlm.<run>.weights. */
  announceWeights(ref: WeightRef & { bytes: number }): Promise<void>;
  progress(stage: string, iteration: number, done: number, total: number, detail?: string): void;
  /** Resolves when the run may go on: waits while an operator has paused it (srlm control pause). */
  gate(): Promise<void>;
  metrics(iteration: number, values: Record<string, number>): void;
}

const chunk = <T>(items: T[], size: number): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
};

function okResults<R>(outcomes: JobOutcome<R>[], stage: string, log: Logger): R[] {
  const failed = outcomes.filter((o) => !o.ok);
  for (const f of failed) if (!f.ok) log.error({ stage, jobId: f.jobId, reason: f.reason }, "job failed");
  return outcomes.flatMap((o) => (o.ok ? [o.result] : []));
}

export class SelfRewardingSchedule {
  private data: SeedData;
  private policy!: Policy;
  private weights!: WeightRef;
  private seenPrompts = new Set<string>();
  private previousHeldOutScores: number[] | null = null;
  private firstHeldOutCorrect: { model: string; correct: boolean[] } | null = null;
  private stageSeconds: Record<string, number> = {};
  // Seconds the trainer spent computing (pretraining, SFT, DPO); the rest of its time it waited.
  private trainingSeconds = 0;

  constructor(
    private cfg: Config,
    private io: ScheduleIO,
  ) {
    this.data = buildSeedData({ ...cfg.data, fewShot: cfg.selfReward.fewShot });
    for (const p of [...this.data.seedPrompts, ...this.data.heldOut.map((h) => h.prompt)])
      this.seenPrompts.add(p);
    for (const j of this.data.judgeEval) this.seenPrompts.add(j.prompt);
  }

  private async timed<T>(stage: string, fn: () => Promise<T> | T): Promise<T> {
    // Stage boundaries are where a pause takes effect: work already queued is finished first.
    await this.io.gate();
    const start = performance.now();
    try {
      return await fn();
    } finally {
      const seconds = (performance.now() - start) / 1000;
      this.stageSeconds[stage] = (this.stageSeconds[stage] ?? 0) + seconds;
      if (stage === "pretrain" || stage === "sft" || stage === "dpo") this.trainingSeconds += seconds;
    }
  }

  private sampling(temperature: number, topP: number, seedLabel: string) {
    const s = this.cfg.selfReward;
    return {
      temperature,
      topP,
      topK: s.topK,
      maxNewTokens: s.maxNewTokens,
      seed: this.loopSeed(seedLabel),
    };
  }

  /** Seeds of the self-rewarding iterations: the model's seed, varied by `selfReward.seed`. */
  private loopSeed(label: string): number {
    const { seed } = this.cfg.selfReward;
    return deriveSeed(this.cfg.model.seed, seed === 0 ? label : `${label}#${seed}`);
  }

  private checkpointDir(label: string): string {
    return join(this.cfg.out, "checkpoints", label);
  }

  /** Publishes the current weights as `version`; `label` (M1, M2…) also writes a checkpoint folder. */
  private async publish(version: number, label?: string): Promise<void> {
    this.policy.version = version;
    if (label) saveCheckpoint(this.checkpointDir(label), this.policy.model, this.policy.tokenizer);
    const blob = policyToBlob(this.policy);
    const ref = await putBlob(this.io.nc, `srlm-${this.cfg.run}-weights`, `v${version}`, blob);
    this.weights = { version, bucket: ref.bucket, name: ref.name, digest: ref.digest };
    await this.io.announceWeights({ ...this.weights, bytes: ref.bytes });
    this.io.log.info({ version, label, bytes: ref.bytes }, "published weights");
  }

  /** The checkpoint an earlier run wrote for `label` from the same inputs, or null (then the
   * folder's key is cleared, since the stage is about to be trained again). */
  private reusedStage(label: "M0" | "M1", key: string): Policy | null {
    const dir = this.checkpointDir(label);
    if (!this.cfg.model.reuse || !stageMatches(dir, key)) {
      forgetStage(dir);
      return null;
    }
    const { model, tokenizer } = loadCheckpoint(dir);
    this.io.log.info({ dir }, `reusing ${label}: an earlier run made it from the same inputs`);
    this.io.progress(`reuse ${label}`, 0, 1, 1, "made by an earlier run from the same inputs");
    return { version: 0, model, tokenizer };
  }

  /** M0: the configured base checkpoint, or a small model pretrained on the task domain's text. */
  private async baseModel(): Promise<Policy> {
    const { cfg } = this;
    if (cfg.model.base) {
      const { model, tokenizer } = loadCheckpoint(cfg.model.base);
      return { version: 0, model, tokenizer };
    }
    const dir = this.checkpointDir("M0");
    const key = stageKey(m0Inputs(cfg));
    const reused = this.reusedStage("M0", key);
    if (reused) return reused;
    const tokenizer = new CharTokenizer(DOMAIN_CHARSET);
    const config = presetConfig(cfg.model.preset, tokenizer);
    const model = Llama.init(config, { seed: cfg.model.seed });
    const policy = { version: 0, model, tokenizer };
    await pretrain(
      policy,
      this.data.pretrain,
      cfg.train.pretrain,
      deriveSeed(cfg.model.seed, "pretrain"),
      (r) => this.io.progress("pretrain M0", 0, r.step, r.total, `loss ${r.loss.toFixed(3)}`),
    );
    saveCheckpoint(dir, model, tokenizer);
    recordStage(dir, key, m0Inputs(cfg));
    return policy;
  }

  async run(): Promise<RunReport> {
    const { cfg, io } = this;
    const started = performance.now();
    // Return to the caller first: the actor finishes starting before the long work begins.
    await new Promise((resolve) => setImmediate(resolve));
    const m1Key = stageKey(m1Inputs(cfg));
    // Iterating on the self-rewarding stage alone: M1 depends only on what came before it.
    const reusedM1 = this.reusedStage("M1", m1Key);
    if (reusedM1) this.policy = reusedM1;
    else {
      this.policy = await this.timed("pretrain", () => this.baseModel());
      await this.timed("sft", () =>
        supervisedFineTune(
          this.policy,
          [...this.data.ift, ...this.data.eft, ...this.data.selfInstruct],
          cfg.train.sft,
          deriveSeed(cfg.model.seed, "sft"),
          (r) => io.progress("SFT → M1", 0, r.step, r.total, `loss ${r.loss.toFixed(3)}`),
        ),
      );
    }
    await this.publish(1, "M1");
    if (!reusedM1) recordStage(this.checkpointDir("M1"), m1Key, m1Inputs(cfg));
    const iterations: IterationReport[] = [];
    let evalM1 = await this.evaluate(1);
    iterations.push({
      model: "M1",
      ...evalM1,
      pairs: 0,
      prompts: 0,
      candidates: 0,
      dpo: null,
      staleness: null,
      wallSeconds: (performance.now() - started) / 1000,
      stageSeconds: { ...this.stageSeconds },
    });
    for (let t = 1; t <= cfg.selfReward.iterations; t++) {
      const iterStart = performance.now();
      this.stageSeconds = {};
      const stats = this.streaming ? await this.iterateStreaming(t) : await this.iterate(t);
      await this.publish(this.weights.version + 1, `M${t + 1}`);
      evalM1 = await this.evaluate(t + 1);
      const report: IterationReport = {
        model: `M${t + 1}`,
        ...evalM1,
        ...stats,
        wallSeconds: (performance.now() - iterStart) / 1000,
        stageSeconds: { ...this.stageSeconds },
      };
      iterations.push(report);
      io.metrics(t, {
        heldOutAccuracy: report.heldOutAccuracy,
        pairs: report.pairs,
        dpoLoss: report.dpo?.loss ?? Number.NaN,
        judgePairwiseAccuracy: report.judge.pairwiseAccuracy,
      });
    }
    const result: RunReport = {
      method: "self-rewarding",
      preset: cfg.preset,
      backend: io.backend,
      run: cfg.run,
      mode: cfg.selfReward.mode,
      wallSeconds: (performance.now() - started) / 1000,
      trainerBusySeconds: this.trainingSeconds,
      actors: await this.actorStats(),
      iterations,
    };
    mkdirSync(cfg.out, { recursive: true });
    writeFileSync(join(cfg.out, "report.json"), `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(join(cfg.out, "summary.txt"), summaryTable(result));
    return result;
  }

  /** How busy each live actor was over the run (from the services API), to see what overlap hides. */
  private async actorStats(): Promise<ActorUsage[]> {
    try {
      const status = await busStatus(this.io.nc, this.cfg.run, { waitMs: 1000 });
      return status.actors.map((a) => {
        const st = (a.stats ?? {}) as {
          processed?: number;
          failed?: number;
          idleMs?: number;
          uptimeMs?: number;
        };
        return {
          actor: a.actor,
          impl: a.impl,
          instance: a.instance,
          processed: st.processed ?? 0,
          failed: st.failed ?? 0,
          idleSeconds: (st.idleMs ?? 0) / 1000,
          uptimeSeconds: (st.uptimeMs ?? 0) / 1000,
        };
      });
    } catch (err) {
      this.io.log.warn({ err: (err as Error).message }, "could not collect actor stats");
      return [];
    }
  }

  /** Streaming needs room for staleness; with maxStaleness 0 it is exactly the strict schedule. */
  private get streaming(): boolean {
    return this.cfg.selfReward.mode === "streaming" && this.cfg.selfReward.maxStaleness > 0;
  }

  /** One self-rewarding iteration with M_t = this.policy; trains it into M_{t+1} in place. */
  private async iterate(t: number) {
    const { cfg, io } = this;
    const s = cfg.selfReward;
    const prompts = await this.timed("write prompts", () => this.writePrompts(t));
    const candidates = await this.timed("sample", () => this.sampleCandidates(t, prompts));
    const judged = await this.timed("judge", () => this.judgeCandidates(t, candidates));
    const outcomes = judged.map(([prompt, cands]) => pairFromJudged(prompt, cands, s.minScoreGap));
    const pairs = outcomes.flatMap((o) => (o.kind === "pair" ? [o.pair] : []));
    const ties = outcomes.filter((o) => o.kind === "tie").length;
    const tooFew = outcomes.filter((o) => o.kind === "too-few-scores").length;
    io.log.info({ iteration: t, pairs: pairs.length, ties, tooFew }, "preference pairs");
    const training = await this.timed("reference", () => this.referenceLogProbs(t, pairs));
    let dpo: DpoSummary | null = null;
    if (training.length > 0) {
      dpo = await this.timed("dpo", () =>
        directPreference(
          this.policy,
          training,
          { ...cfg.train.dpo, steps: strictDpoSteps(cfg.train.dpo, training.length) },
          s.beta,
          this.loopSeed(`dpo-${t}`),
          (r) => io.progress(`DPO → M${t + 1}`, t, r.step, r.total, `loss ${r.loss.toFixed(3)}`),
          s.nllWeight,
        ),
      );
    } else {
      io.log.warn({ iteration: t }, "no preference pairs: the model is not updated this iteration");
    }
    const trueGap = pairs.length
      ? pairs.reduce(
          (a, p) => a + trueScore(p.prompt, p.chosen).score - trueScore(p.prompt, p.rejected).score,
          0,
        ) / pairs.length
      : 0;
    return {
      prompts: prompts.length,
      candidates: candidates.reduce((a, [, c]) => a + c.length, 0),
      pairs: pairs.length,
      droppedTies: ties,
      droppedTooFewScores: tooFew,
      pairsTrueScoreGap: trueGap,
      dpo,
      staleness: { max: 0, mean: 0 },
    };
  }

  private async writePrompts(t: number): Promise<string[]> {
    const { cfg, io } = this;
    const s = cfg.selfReward;
    let round = 0;
    const written = await writePromptsInTurn({
      rng: makeRng(this.loopSeed(`fewshot-${t}`)),
      seedPrompts: this.data.seedPrompts,
      wanted: s.promptsPerIteration,
      shots: s.fewShot,
      families: cfg.data.families,
      seen: this.seenPrompts,
      write: async (inputs) => {
        round++;
        const jobs = chunk(inputs, 16).map((sets, i) => ({
          iteration: t,
          fewShot: sets,
          weights: this.weights,
          // Round 1 keeps the labels writing has always used; later rounds add their number.
          sampling: this.sampling(
            1.0,
            s.topP,
            round === 1 ? `prompts-${t}-${i}` : `prompts-${t}-r${round}-${i}`,
          ),
        }));
        const outcomes = await io.board.submitAll<PromptsResultBody>("prompts", "job.prompts", jobs, (d, n) =>
          io.progress("write prompts", t, d, n, round > 1 ? `round ${round}` : undefined),
        );
        okResults(outcomes, "write prompts", io.log);
        // A failed job's prompt-writing prompts count as written with no text (no prompt).
        return outcomes.flatMap((o, k) => (o.ok ? o.result.texts : jobs[k].fewShot.map(() => "")));
      },
    });
    io.log.info(
      {
        iteration: t,
        written: written.asked,
        wellFormed: written.wellFormed,
        kept: written.prompts.length,
        rounds: written.rounds,
        byFamily: written.byFamily,
      },
      "self-instruct",
    );
    return written.prompts;
  }

  /**
   * Streaming: prompts flow through sample → judge → pair → reference in small groups while the
   * trainer takes DPO steps on the pairs that have arrived, publishing new weights every
   * `publishEvery` steps for the generators to pick up. A pair more than `maxStaleness` versions
   * behind the trainer is dropped, never trained on. The trainer keeps pace with the pipeline
   * (`stepsAllowed`) and draws the least-drawn pairs first (`EvenDraws`), so the iteration's
   * steps spread over all its pairs as in strict mode. The frozen reference stays M_t.
   */
  private async iterateStreaming(t: number) {
    const { cfg, io } = this;
    const s = cfg.selfReward;
    const prompts = await this.timed("write prompts", () => this.writePrompts(t));
    const reference = this.weights;
    const arrived: (TrainingPair & { policyVersion: number })[] = [];
    const counts = { candidates: 0, pairs: 0, ties: 0, tooFew: 0, stale: 0, gap: 0, promptsDone: 0 };
    let pipelineDone = false;
    const pipelineStart = performance.now();
    const pipeline = Promise.all(
      chunk(prompts, 4).map(async (group) => {
        const sampled = await this.sampleCandidates(t, group, true);
        counts.candidates += sampled.reduce((a, [, c]) => a + c.length, 0);
        const judged = await this.judgeCandidates(t, sampled);
        const outcomes = judged.map(([prompt, cands]) => pairFromJudged(prompt, cands, s.minScoreGap));
        const pairs = outcomes.flatMap((o) => (o.kind === "pair" ? [o.pair] : []));
        counts.ties += outcomes.filter((o) => o.kind === "tie").length;
        counts.tooFew += outcomes.filter((o) => o.kind === "too-few-scores").length;
        counts.pairs += pairs.length;
        for (const p of pairs)
          counts.gap += trueScore(p.prompt, p.chosen).score - trueScore(p.prompt, p.rejected).score;
        if (pairs.length) arrived.push(...(await this.referenceLogProbs(t, pairs, reference)));
        counts.promptsDone += group.length;
      }),
    ).finally(() => {
      pipelineDone = true;
      this.stageSeconds["sample+judge+reference"] = (performance.now() - pipelineStart) / 1000;
    });

    const trainer = new PreferenceTrainer(
      this.policy,
      cfg.train.dpo,
      s.beta,
      this.loopSeed(`dpo-${t}`),
      s.nllWeight,
    );
    const staleness: number[] = [];
    const dpoStart = performance.now();
    let waitingMs = 0;
    // Staleness is checked when a pair joins the training pool: it may then be at most
    // maxStaleness versions behind the trainer, and stays in the pool for this iteration.
    const pool: TrainingPair[] = [];
    const draws = new EvenDraws<TrainingPair>(makeRng(this.loopSeed(`dpo-draws-${t}`)).next);
    const totalSteps = cfg.train.dpo.steps;
    while (trainer.steps < totalSteps) {
      const version = this.weights.version;
      for (const p of arrived.splice(0)) {
        if (!isFreshEnough(p.policyVersion, version, s.maxStaleness)) {
          counts.stale++;
          continue;
        }
        staleness.push(version - p.policyVersion);
        pool.push(p);
      }
      const paced = trainer.steps >= stepsAllowed(totalSteps, counts.promptsDone, prompts.length);
      if (!pipelineDone && (pool.length < cfg.train.dpo.batchSize || paced)) {
        const w = performance.now();
        await new Promise((r) => setTimeout(r, 25));
        waitingMs += performance.now() - w;
        continue;
      }
      if (pool.length === 0) break;
      const loss = trainer.stepOn(draws.next(pool, cfg.train.dpo.batchSize));
      io.progress(`DPO → M${t + 1}`, t, trainer.steps, totalSteps, `loss ${loss.toFixed(3)}`);
      // New weights only help while generators are still sampling for this iteration.
      if (!pipelineDone && trainer.steps % s.publishEvery === 0) await this.publish(version + 1);
      await yieldToEventLoop();
    }
    await pipeline;
    trainer.dispose();
    this.stageSeconds.dpo = (performance.now() - dpoStart - waitingMs) / 1000;
    this.trainingSeconds += this.stageSeconds.dpo;
    io.log.info({ iteration: t, ...counts, steps: trainer.steps }, "streaming iteration");
    return {
      prompts: prompts.length,
      candidates: counts.candidates,
      pairs: counts.pairs,
      droppedTies: counts.ties,
      droppedTooFewScores: counts.tooFew,
      droppedStale: counts.stale,
      pairsTrueScoreGap: counts.pairs ? counts.gap / counts.pairs : 0,
      dpo: trainer.steps > 0 ? trainer.summary() : null,
      staleness: {
        max: staleness.length ? Math.max(...staleness) : 0,
        mean: staleness.length ? staleness.reduce((a, b) => a + b, 0) / staleness.length : 0,
      },
    };
  }

  private async sampleCandidates(
    t: number,
    prompts: string[],
    latest = false,
  ): Promise<[string, JudgedCandidate[]][]> {
    const { cfg, io } = this;
    const s = cfg.selfReward;
    const jobs = chunk(prompts, 4).map((ps, i) => ({
      iteration: t,
      purpose: "train" as const,
      prompts: ps,
      n: s.candidates,
      weights: this.weights,
      latest,
      sampling: this.sampling(s.temperature, s.topP, `samples-${t}-${prompts[0]}-${i}`),
    }));
    const results = okResults(
      await io.board.submitAll<CandidatesResultBody>("samples", "job.samples", jobs, (d, n) =>
        io.progress("sample", t, d, n),
      ),
      "sample",
      io.log,
    );
    return results.flatMap((r) =>
      r.results.map(
        (p) =>
          [
            p.prompt,
            p.responses.map((x) => ({ response: x.text, scores: [], policyVersion: r.policyVersion })),
          ] as [string, JudgedCandidate[]],
      ),
    );
  }

  private async judgeCandidates(
    t: number,
    sampled: [string, JudgedCandidate[]][],
  ): Promise<[string, JudgedCandidate[]][]> {
    const { io } = this;
    const rng = makeRng(this.loopSeed(`judge-order-${t}`));
    const jobs = sampled.map(([prompt, cands], i) => {
      // The judge sees candidates in a shuffled order, so position cannot leak quality.
      const order = rng.shuffle(cands.map((_, k) => k));
      return {
        order,
        body: this.judgeJob(
          t,
          "train",
          prompt,
          order.map((k) => cands[k].response),
          `judge-${t}-${i}`,
        ),
      };
    });
    const outcomes = await io.board.submitAll<ScoresResultBody>(
      "judge",
      "job.judge",
      jobs.map((j) => j.body),
      (d, n) => io.progress("judge", t, d, n),
    );
    return sampled.map(([prompt, cands], i) => {
      const outcome = outcomes[i];
      const judgedCands = cands.map((c) => ({ ...c }));
      if (outcome.ok) {
        jobs[i].order.forEach((k, pos) => {
          judgedCands[k].scores = outcome.result.scores[pos];
        });
      } else io.log.error({ prompt, reason: outcome.reason }, "judge job failed");
      return [prompt, judgedCands];
    });
  }

  private judgeJob(t: number, purpose: "train" | "eval", prompt: string, candidates: string[], seed: string) {
    const s = this.cfg.selfReward;
    return {
      iteration: t,
      purpose,
      prompt,
      candidates,
      samples: s.judgeSamples,
      weights: this.weights,
      sampling: { ...this.sampling(s.judgeTemperature, s.topP, seed), maxNewTokens: s.judgeMaxNewTokens },
    };
  }

  private async referenceLogProbs(
    t: number,
    pairs: PreferencePair[],
    reference: WeightRef = this.weights,
  ): Promise<(TrainingPair & { policyVersion: number })[]> {
    const { io } = this;
    const batches = chunk(pairs, 16);
    const outcomes = await io.board.submitAll<RefLogProbsResultBody>(
      "reference",
      "job.reference",
      batches.map((b) => ({
        iteration: t,
        weights: reference,
        pairs: b.map((p) => ({ prompt: p.prompt, chosen: p.chosen, rejected: p.rejected })),
      })),
      (d, n) => io.progress("reference", t, d, n),
    );
    return batches.flatMap((b, i) => {
      const o = outcomes[i];
      if (!o.ok) return [];
      return b.map((p, k) => ({ ...p, refChosen: o.result.chosen[k], refRejected: o.result.rejected[k] }));
    });
  }

  /** Held-out accuracy (greedy), win rate against the previous model, and the self-judge's agreement. */
  private async evaluate(version: number): Promise<ModelEval> {
    const { io, data } = this;
    const label = `eval M${version}`;
    const s = this.cfg.selfReward;
    const start = performance.now();
    const heldOut = data.heldOut;
    const jobs = chunk(heldOut, 25).map((items, i) => ({
      iteration: version,
      purpose: "eval" as const,
      prompts: items.map((h) => h.prompt),
      n: 1,
      weights: this.weights,
      sampling: { temperature: 0, topP: 1, topK: 0, maxNewTokens: s.maxNewTokens, seed: i },
    }));
    const results = await io.board.submitAll<CandidatesResultBody>("samples", "job.samples", jobs, (d, n) =>
      io.progress(label, version, d, n, "held-out answers"),
    );
    const answers = new Map<string, string>();
    for (const r of okResults(results, label, io.log))
      for (const p of r.results) answers.set(p.prompt, p.responses[0]?.text ?? "");
    const rows = heldOut.map((h) => ({ prompt: h.prompt, response: answers.get(h.prompt) ?? "" }));
    const acc = accuracy(rows);
    const scores = rows.map((r) => trueScore(r.prompt, r.response).score);
    const correct = scores.map((x) => x === 5);
    // Per family: the self-written prompts need not cover the families as the held-out set does.
    const byFamily: Record<string, { n: number; exact: number }> = {};
    heldOut.forEach((h, i) => {
      byFamily[h.family] ??= { n: 0, exact: 0 };
      const f = byFamily[h.family];
      f.n++;
      if (correct[i]) f.exact++;
    });
    const win = this.previousHeldOutScores ? winRate(scores, this.previousHeldOutScores) : null;
    this.previousHeldOutScores = scores;
    const first = this.firstHeldOutCorrect;
    const gain = first ? { model: first.model, ...pairedGain(correct, first.correct) } : null;
    this.firstHeldOutCorrect ??= { model: `M${version}`, correct };
    const judge = await this.evaluateJudge(version, data.judgeEval);
    this.stageSeconds.evaluate = (performance.now() - start) / 1000;
    return {
      heldOutAccuracy: acc.accuracy,
      heldOutAccuracyCi95: acc.ci95,
      heldOutMeanScore: acc.meanScore,
      heldOutN: acc.n,
      heldOutByFamily: Object.fromEntries(Object.entries(byFamily).map(([f, v]) => [f, v.exact / v.n])),
      winRateVsPrevious: win
        ? { win: win.win, loss: win.loss, tie: win.tie, ci95: win.ci95, n: win.n }
        : null,
      gainOverFirst: gain,
      judge,
      samples: rows.slice(0, 6),
    };
  }

  private async evaluateJudge(version: number, items: JudgeEvalItem[]): Promise<ModelEval["judge"]> {
    const { io } = this;
    const outcomes = await io.board.submitAll<ScoresResultBody>(
      "judge",
      "job.judge",
      items.map((item, i) =>
        this.judgeJob(
          version,
          "eval",
          item.prompt,
          item.candidates.map((c) => c.response),
          `judge-eval-${version}-${i}`,
        ),
      ),
      (d, n) => io.progress(`eval M${version}`, version, d, n, "judge agreement"),
    );
    const judged: number[][] = [];
    const truth: number[][] = [];
    let failures = 0;
    let judgements = 0;
    let judgeName = "";
    const secondary: number[][] = [];
    let secondaryName = "";
    items.forEach((item, i) => {
      const o = outcomes[i];
      if (!o.ok) return;
      judgeName = o.result.judge.impl;
      failures += o.result.parseFailures;
      judgements += o.result.judgements;
      judged.push(
        o.result.scores.map((samples) => {
          const valid = samples.filter((x): x is number => x !== null);
          return valid.length ? valid.reduce((a, b) => a + b, 0) / valid.length : Number.NaN;
        }),
      );
      truth.push(item.candidates.map((c) => c.trueScore));
      if (o.result.secondary) {
        secondaryName = o.result.secondary.impl;
        secondary.push(o.result.secondary.means.map((m) => m ?? Number.NaN));
      }
    });
    const flatJudged = judged.flat();
    const flatTruth = truth.flat();
    const parsed = flatJudged.map((v, i) => [v, flatTruth[i]]).filter(([v]) => Number.isFinite(v));
    return {
      impl: judgeName,
      pairwiseAccuracy: pairwiseAccuracy(judged, truth).accuracy,
      spearman:
        parsed.length > 1
          ? spearman(
              parsed.map((p) => p[0]),
              parsed.map((p) => p[1]),
            )
          : Number.NaN,
      parseFailureRate: judgements ? failures / judgements : 0,
      // A/B judging: how often the primary judge orders candidates as the second judge does.
      ...(secondary.length === judged.length && secondary.length > 0
        ? {
            ab: { secondary: secondaryName, pairwiseAgreement: pairwiseAccuracy(judged, secondary).accuracy },
          }
        : {}),
    };
  }
}
