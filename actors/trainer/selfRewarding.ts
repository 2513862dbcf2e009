// The Self-Rewarding Language Models loop, owned by the trainer:
//   M0 (srlm's own pretrained base, or --base) → SFT on IFT + EFT → M1,
//   then per iteration t: M_t writes prompts → samples N answers each → judges each answer K times
//   → pairs best against worst → reference log-probs under frozen M_t → DPO → M_{t+1}.
// The algorithm is written against the task boundary (tasks/task.ts) and the loop's workers
// (workers.ts): every step but the training itself is a job, done over NATS by whichever actor
// process takes it (jobs.ts), or in this process (localWorkers.ts) for probes and tests.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { WeightRef } from "../../bus/messages.ts";
import type { Config } from "../../config/schema.ts";
import { initModel } from "../../model/api.ts";
import { loadCheckpoint, saveCheckpoint } from "../../model/checkpoint.ts";
import { CharTokenizer } from "../../model/tokenizer.ts";
import {
  accuracy,
  DOMAIN_CHARSET,
  deriveSeed,
  type JudgeEvalItem,
  judgeAgreement,
  MAX_SCORE,
  makeRng,
  pairedGain,
  pairwiseAccuracy,
  spearman,
  type Task,
  wilson,
  winRate,
  writePromptsInTurn,
} from "../../tasks/index.ts";
import { type Policy, samplePolicy } from "../policy.ts";
import { JudgeTally } from "./judgeUse.ts";
import {
  type DpoSummary,
  directPreference,
  type LossSummary,
  PreferenceTrainer,
  pretrain,
  sftMix,
  supervisedFineTune,
  type TrainingPair,
  yieldToEventLoop,
} from "./loops.ts";
import {
  allPairsFromJudged,
  EvenDraws,
  isFreshEnough,
  type JudgedCandidate,
  mayRejectGreedy,
  meanScore,
  type PairOutcome,
  type PreferencePair,
  pairFromJudged,
  stepsAllowed,
  strictDpoSteps,
  tieAnchor,
  withConfirmedGreedyRejections,
  withSureGreedyRejections,
} from "./pairs.ts";
import {
  type IterationReport,
  type ModelEval,
  type OwnEftSummary,
  type RunReport,
  summaryTable,
} from "./report.ts";
import type { LoopState } from "./resume.ts";
import { m0Inputs, m1Inputs, ownEftInputs, recordStage, reusedStage, stageKey } from "./stageCache.ts";
import { assertFiniteWeights, chunk, mean, StageBook } from "./stages.ts";
import { type LoopIO, RunStopped } from "./workers.ts";

/** An iteration that formed no pair: the judge's verdicts gave nothing to train on. */
function noPairs(t: number, prompts: number, ties: number, tooFew: number): Error {
  return new Error(
    `iteration ${t}: no preference pairs from ${prompts} prompts (${ties} ties, ${tooFew} with fewer than 2 parsable judgements); ` +
      "the judge's parse failures are in the trainer's log",
  );
}

export class SelfRewardingLoop {
  private policy!: Policy;
  private weights!: WeightRef;
  private seenPrompts = new Set<string>();
  private previousAnswers: string[] | null = null;
  private previousHeldOutScores: number[] | null = null;
  private firstHeldOutCorrect: { model: string; correct: boolean[] } | null = null;
  // Each training prompt's greedy candidate (selfReward.greedyCandidate), for the pairs' report.
  private greedyAnswers = new Map<string, string>();
  private judgeTally = new JudgeTally();
  // selfReward.quoteCheck's counts for the iteration under way (reset when one starts).
  private quoteTally = { verdicts: 0, misquoted: 0, judgedAgain: 0, unquoted: 0 };
  // Stage seconds (the trainer's own compute: pretraining, SFT, DPO; the rest it waited) and jobs.
  private readonly book: StageBook;

  constructor(
    private cfg: Config,
    private task: Task,
    private io: LoopIO,
  ) {
    this.book = new StageBook(
      io,
      cfg.selfReward.maxFailedShare,
      new Set(["pretrain", "sft", "own eft", "dpo"]),
      (stage, results) => this.judgeTally.record(stage, results),
    );
    const d = task.data;
    const own = cfg.train.ownEft;
    if (own && !task.gradedJudgement)
      throw new Error(
        `train.ownEft: task ${task.name} has no verifier to grade the model's answers; leave train.ownEft unset`,
      );
    if (own && own.prompts > d.ift.length)
      throw new Error(
        `train.ownEft.prompts is ${own.prompts}, but task ${task.name} has ${d.ift.length} IFT prompts`,
      );
    if (cfg.selfReward.quoteCheck && !task.judgementQuotes)
      throw new Error(
        `selfReward.quoteCheck: task ${task.name}'s judge writes no quote of the response to check; leave it unset`,
      );
    if (cfg.selfReward.forcedQuote && !task.judgeQuote)
      throw new Error(
        `selfReward.forcedQuote: task ${task.name}'s judge writes no quote of the response; leave it unset`,
      );
    // Written as given, every quote passes the quote check: the two together would check nothing.
    if (cfg.selfReward.forcedQuote && cfg.selfReward.quoteCheck)
      throw new Error("selfReward.forcedQuote and selfReward.quoteCheck: set one of them, not both");
    if (cfg.selfReward.evalSplit === "dev" && d.dev.length === 0)
      throw new Error(
        `selfReward.evalSplit dev: task ${task.name} has no dev prompts (set data.devSize to set some aside)`,
      );
    for (const p of [
      ...d.seedPrompts,
      ...d.heldOut.map((h) => h.prompt),
      ...d.dev.map((h) => h.prompt),
      ...d.judgeEval.map((j) => j.prompt),
    ])
      this.seenPrompts.add(p);
  }

  private sampling(temperature: number, topP: number, seedLabel: string) {
    const s = this.cfg.selfReward;
    return { temperature, topP, topK: s.topK, maxNewTokens: s.maxNewTokens, seed: this.loopSeed(seedLabel) };
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
    assertFiniteWeights(this.policy, version);
    this.policy.version = version;
    if (label) saveCheckpoint(this.checkpointDir(label), this.policy.model, this.policy.tokenizer);
    this.weights = await this.io.publish(version, this.policy);
    this.io.log.info({ version, label }, "published weights");
  }

  /** The checkpoint an earlier run wrote for `label` from the same inputs, or null. */
  private reused(label: "M0" | "SFT" | "M1", key: string): Policy | null {
    return reusedStage(this.checkpointDir(label), key, this.cfg.model.reuse, (dir) => {
      this.io.log.info({ dir }, `reusing ${label}: an earlier run made it from the same inputs`);
      this.io.progress(`reuse ${label}`, 0, 1, 1, "made by an earlier run from the same inputs");
    });
  }

  /** M0: the configured base checkpoint, or a small model pretrained on the task domain's text. */
  private async baseModel(): Promise<Policy> {
    const { cfg } = this;
    if (cfg.model.base) {
      const { model, tokenizer } = loadCheckpoint(cfg.model.base);
      return { version: 0, model, tokenizer };
    }
    if (this.task.data.pretrain.length === 0)
      throw new Error(
        `model.base: task ${this.task.name} brings no pretraining text; give a checkpoint folder (--base DIR)`,
      );
    const dir = this.checkpointDir("M0");
    const key = stageKey(m0Inputs(cfg));
    const reused = this.reused("M0", key);
    if (reused) return reused;
    const tokenizer = new CharTokenizer(DOMAIN_CHARSET);
    const model = initModel(cfg.model.preset, tokenizer, {
      seed: cfg.model.seed,
      tieEmbeddings: cfg.model.tieEmbeddings,
    });
    const policy = { version: 0, model, tokenizer };
    await pretrain(
      policy,
      this.task.data.pretrain,
      cfg.train.pretrain,
      deriveSeed(cfg.model.seed, "pretrain"),
      (r) => this.io.progress("pretrain M0", 0, r.step, r.total, `loss ${r.loss.toFixed(3)}`),
    );
    saveCheckpoint(dir, model, tokenizer);
    recordStage(dir, key, m0Inputs(cfg));
    return policy;
  }

  /** M1 from M0 by SFT on the task's IFT, EFT and prompt-writing examples, then, with
   * `train.ownEft`, EFT on its own answers (each phase reused when an earlier run made it). */
  private async firstModel(): Promise<{ sft: LossSummary | null; ownEft: OwnEftSummary | null }> {
    const { cfg, io, task } = this;
    const own = cfg.train.ownEft;
    // With ownEft, the SFT phase has its own checkpoint, so that changing only the second phase
    // does not train the first again (and turning ownEft off makes that checkpoint M1).
    const sftKey = stageKey(m1Inputs(cfg));
    const m1Key = own ? stageKey(ownEftInputs(cfg)) : sftKey;
    const reusedM1 = this.reused("M1", m1Key);
    let sft: LossSummary | null = null;
    let ownEft: OwnEftSummary | null = null;
    if (reusedM1) this.policy = reusedM1;
    else {
      const reusedSft = this.reused("SFT", sftKey);
      if (reusedSft) this.policy = reusedSft;
      else {
        this.policy = await this.book.timed("pretrain", () => this.baseModel());
        const d = task.data;
        sft = await this.book.timed("sft", () =>
          supervisedFineTune(
            this.policy,
            sftMix(d, cfg.train.sft),
            cfg.train.sft,
            deriveSeed(cfg.model.seed, "sft"),
            (r) => io.progress("SFT → M1", 0, r.step, r.total, `loss ${r.loss.toFixed(3)}`),
            task.format,
          ),
        );
        if (sft.steps > 0 && !Number.isFinite(sft.last))
          throw new Error(`stage "sft": the loss is ${sft.last} after ${sft.steps} steps`);
        if (sft.last >= sft.first)
          io.log.warn({ ...sft }, "SFT did not lower the loss: check train.sft.learningRate and the data");
        if (own) {
          const dir = this.checkpointDir("SFT");
          saveCheckpoint(dir, this.policy.model, this.policy.tokenizer);
          recordStage(dir, sftKey, m1Inputs(cfg));
        }
      }
      if (own) ownEft = await this.book.timed("own eft", () => this.trainOnOwnJudgements(own));
    }
    await this.publish(1, "M1");
    if (!reusedM1) recordStage(this.checkpointDir("M1"), m1Key, own ? ownEftInputs(cfg) : m1Inputs(cfg));
    return { sft, ownEft };
  }

  /** `train.ownEft`: the model answers training prompts, the verifier grades each answer, and the
   * judgements train the model beside a replay of the first phase's IFT and EFT. Sampled here,
   * not by the generators: like SFT, this is part of making M1, before any weights are published. */
  private async trainOnOwnJudgements(own: NonNullable<Config["train"]["ownEft"]>): Promise<OwnEftSummary> {
    const { cfg, io, task } = this;
    const grade = task.gradedJudgement!;
    const rng = makeRng(deriveSeed(cfg.model.seed, "ownEft"));
    const prompts = rng.shuffle(task.data.ift.map((x) => x.prompt)).slice(0, own.prompts);
    const s = cfg.selfReward;
    const judgements: { prompt: string; response: string }[] = [];
    let right = 0;
    const batches = chunk(prompts, 32);
    for (const [i, batch] of batches.entries()) {
      const sampled = samplePolicy(
        this.policy,
        batch,
        own.samples,
        {
          temperature: s.temperature,
          topP: s.topP,
          topK: s.topK,
          maxNewTokens: s.maxNewTokens,
          seed: deriveSeed(cfg.model.seed, `ownEft#${i}`),
        },
        task.format,
      );
      sampled.forEach((p, k) => {
        for (const sample of p.samples) {
          if (task.verify?.(batch[k], sample.text).score === 5) right++;
          judgements.push(grade(batch[k], sample.text));
        }
      });
      io.progress("own answers → EFT", 0, i + 1, batches.length, `${judgements.length} graded`);
      await yieldToEventLoop();
    }
    const replay = Math.round(judgements.length * own.replay);
    const mix = [
      ...judgements,
      ...rng.shuffle(task.data.ift).slice(0, replay),
      ...rng.shuffle(task.data.eft).slice(0, replay),
    ];
    const loss = await supervisedFineTune(
      this.policy,
      mix,
      own,
      deriveSeed(cfg.model.seed, "ownEft"),
      (r) => io.progress("own EFT → M1", 0, r.step, r.total, `loss ${r.loss.toFixed(3)}`),
      task.format,
    );
    if (own.steps > 0 && !Number.isFinite(loss.last))
      throw new Error(`stage "own eft": the loss is ${loss.last} after ${loss.steps} steps`);
    return { answers: judgements.length, rightShare: right / Math.max(1, judgements.length), loss };
  }

  /** The whole run: M1, then the iterations, evaluated after each; writes the report. */
  async run(): Promise<RunReport> {
    const started = performance.now();
    // Return to the caller first: the actor finishes starting before the long work begins.
    await new Promise((resolve) => setImmediate(resolve));
    let iterations: IterationReport[] = [];
    let stopped = false;
    let elapsedBefore = 0;
    const elapsed = () => elapsedBefore + (performance.now() - started) / 1000;
    const record = () =>
      this.io.resume?.save({ method: "self-rewarding", loop: this.state(iterations, elapsed()) });
    try {
      const resumed = (await this.io.resume?.load()) ?? null;
      if (resumed && resumed.method !== "self-rewarding")
        throw new Error(`the self-rewarding loop was given a ${resumed.method} resume point`);
      if (resumed) {
        this.restore(resumed.loop, resumed.policy);
        iterations = [...resumed.loop.iterations];
        elapsedBefore = resumed.loop.elapsedSeconds;
        // Workers of a new bus, or ones that missed the announcement, get the weights again.
        await this.publish(resumed.loop.weights.version);
      } else {
        const { sft, ownEft } = await this.firstModel();
        iterations.push({
          model: "M1",
          ...(sft ? { sftLoss: sft } : {}),
          ...(ownEft ? { ownEft } : {}),
          ...(await this.evaluate(1)),
          pairs: 0,
          prompts: 0,
          candidates: 0,
          dpo: null,
          staleness: null,
          failures: this.book.takeFailures(),
          judges: this.judgeTally.take(),
          wallSeconds: (performance.now() - started) / 1000,
          stageSeconds: { ...this.book.seconds },
        });
        record();
      }
      // Iteration t's report sits at index t (M1's at 0), whatever weight versions streaming used.
      const done = iterations.length - 1;
      await this.iterations(
        Math.max(0, this.cfg.selfReward.iterations - done),
        (r) => {
          iterations.push(r);
          record();
        },
        done + 1,
      );
    } catch (err) {
      if (!(err instanceof RunStopped)) throw err;
      stopped = true;
      this.io.log.info({ iterations: iterations.length }, "stopped by the operator; reporting what ran");
    }
    return this.writeReport(iterations, elapsed(), stopped);
  }

  /** The loop's state after the last report in `iterations` (resume.ts). */
  private state(iterations: IterationReport[], elapsedSeconds: number): LoopState {
    return {
      nextIteration: iterations.length,
      weights: this.weights,
      checkpoint: `M${iterations.length}`,
      seenPrompts: [...this.seenPrompts],
      previousAnswers: this.previousAnswers,
      previousHeldOutScores: this.previousHeldOutScores,
      firstHeldOutCorrect: this.firstHeldOutCorrect,
      trainingSeconds: this.book.trainingSeconds,
      elapsedSeconds,
      iterations,
    };
  }

  private restore(state: LoopState, policy: Policy): void {
    this.policy = policy;
    this.seenPrompts = new Set(state.seenPrompts);
    this.previousAnswers = state.previousAnswers;
    this.previousHeldOutScores = state.previousHeldOutScores;
    this.firstHeldOutCorrect = state.firstHeldOutCorrect;
    this.book.trainingSeconds = state.trainingSeconds;
  }

  /** Iterations first..first+count-1 from the current M_t (after run()'s M1, or `start`'s policy). */
  async iterations(
    count: number,
    onIteration: (r: IterationReport) => void = () => {},
    first = this.weights.version,
  ): Promise<void> {
    for (let t = first; t < first + count; t++) {
      const iterStart = performance.now();
      this.book.seconds = {};
      const stats = this.streaming ? await this.iterateStreaming(t) : await this.iterate(t);
      await this.publish(this.weights.version + 1, `M${t + 1}`);
      const report: IterationReport = {
        model: `M${t + 1}`,
        ...(await this.evaluate(t + 1)),
        ...stats,
        failures: this.book.takeFailures(),
        judges: this.judgeTally.take(),
        wallSeconds: (performance.now() - iterStart) / 1000,
        stageSeconds: { ...this.book.seconds },
      };
      onIteration(report);
      this.io.metrics(t, {
        heldOutAccuracy: report.heldOutAccuracy ?? Number.NaN,
        heldOutJudgeScore: report.heldOutJudgeScore?.mean ?? Number.NaN,
        pairs: report.pairs,
        dpoLoss: report.dpo?.loss ?? Number.NaN,
        judgePairwiseAccuracy: report.judge.pairwiseAccuracy ?? Number.NaN,
      });
    }
  }

  /** Starts the loop from an M_t already in hand (probes): publishes it as version `version`. */
  async start(policy: Policy, version = 1): Promise<ModelEval> {
    // The task gives its quotes' places in characters of the judge's text, which are its tokens
    // only for srlm's character tokenizer; a brought tokenizer would get them at the wrong places.
    if (this.cfg.selfReward.forcedQuote && !(policy.tokenizer instanceof CharTokenizer))
      throw new Error(
        "selfReward.forcedQuote needs srlm's character tokenizer (its quotes are placed by character); this model brings its own tokenizer, so leave it unset",
      );
    this.policy = policy;
    await this.publish(version);
    return this.evaluate(version);
  }

  private async writeReport(
    iterations: IterationReport[],
    wallSeconds: number,
    stopped: boolean,
  ): Promise<RunReport> {
    const result = await this.report(iterations, wallSeconds, stopped);
    mkdirSync(this.cfg.out, { recursive: true });
    writeFileSync(join(this.cfg.out, "report.json"), `${JSON.stringify(result, null, 2)}\n`);
    writeFileSync(join(this.cfg.out, "summary.txt"), summaryTable(result));
    return result;
  }

  /** The run's report over `iterations` (run() writes it; probes print it). */
  async report(iterations: IterationReport[], wallSeconds: number, stopped = false): Promise<RunReport> {
    const { cfg, io } = this;
    return {
      method: "self-rewarding",
      preset: cfg.preset,
      task: this.task.name,
      verifier: this.task.verify !== undefined,
      backend: io.backend,
      run: cfg.run,
      mode: cfg.selfReward.mode,
      evalSplit: cfg.selfReward.evalSplit,
      reference: this.referenceFromSampler ? "sampler log-probs (strict, M_t)" : "reference actor",
      ...(stopped ? { stopped: true } : {}),
      wallSeconds,
      trainerBusySeconds: this.book.trainingSeconds,
      actors: await io.actorStats(),
      bus: io.busCounts?.() ?? null,
      iterations,
    };
  }

  /** Where strict iterations take the reference log-probs from (report: `reference`). */
  private get referenceFromSampler(): boolean {
    return this.cfg.selfReward.referenceFromSampler && !this.streaming;
  }

  /** Streaming needs room for staleness; with maxStaleness 0 it is exactly the strict schedule. */
  private get streaming(): boolean {
    return this.cfg.selfReward.mode === "streaming" && this.cfg.selfReward.maxStaleness > 0;
  }

  /** A judged prompt's outcome (pair, tie, too few scores) and the pairs DPO trains on from it. */
  private pairsOf(
    j: Sampled,
    confirmations: Map<string, (number | null)[]>,
  ): { outcome: PairOutcome; pairs: PreferencePair[]; unsureGreedy: number; unconfirmedGreedy: number } {
    const s = this.cfg.selfReward;
    const outcome = pairFromJudged(j.prompt, j.candidates, s.minScoreGap);
    if (outcome.kind !== "pair") return { outcome, pairs: [], unsureGreedy: 0, unconfirmedGreedy: 0 };
    let pairs =
      s.pairing === "all" ? allPairsFromJudged(j.prompt, j.candidates, s.minScoreGap) : [outcome.pair];
    const greedy = this.greedyAnswers.get(j.prompt);
    let unsureGreedy = 0;
    let unconfirmedGreedy = 0;
    if (s.greedyRejectGap !== undefined) {
      const { kept, dropped } = withSureGreedyRejections(pairs, greedy, s.greedyRejectGap);
      pairs = kept;
      unsureGreedy = dropped;
    }
    if (s.greedyRejectConfirm) {
      const verdicts = confirmations.get(j.prompt) ?? [];
      const { kept, dropped } = withConfirmedGreedyRejections(pairs, greedy, verdicts, s.minScoreGap);
      pairs = kept;
      unconfirmedGreedy = dropped;
    }
    return { outcome, pairs, unsureGreedy, unconfirmedGreedy };
  }

  /** selfReward.anchorTies: the greedy answers of prompts tied at the full mark, kept by NLL. */
  private anchorsOf<T extends Sampled>(judged: T[]): (T & { pair: PreferencePair })[] {
    return judged.flatMap((j) => {
      const anchor = tieAnchor(j.prompt, j.candidates, this.greedyAnswers.get(j.prompt), MAX_SCORE);
      return anchor ? [{ ...j, pair: anchor }] : [];
    });
  }

  /** Mean true score gap of the pairs (chosen minus rejected), where the task has a verifier. */
  private trueGap(pairs: PreferencePair[]): number | undefined {
    const verify = this.task.verify;
    if (!verify || pairs.length === 0) return undefined;
    return mean(pairs.map((p) => verify(p.prompt, p.chosen).score - verify(p.prompt, p.rejected).score));
  }

  /** How many pairs the judge ordered as the verifier does, where the task has one. */
  private trueOrder(pairs: PreferencePair[]) {
    const verify = this.task.verify;
    if (!verify || pairs.length === 0) return undefined;
    const gaps = pairs.map((p) => verify(p.prompt, p.chosen).score - verify(p.prompt, p.rejected).score);
    const share = (f: (g: number) => boolean) => gaps.filter(f).length / gaps.length;
    return { better: share((g) => g > 0), same: share((g) => g === 0), worse: share((g) => g < 0) };
  }

  private trueOrderByScores(pairs: PreferencePair[]) {
    if (!this.task.verify || pairs.length === 0) return undefined;
    const buckets = new Map<string, PreferencePair[]>();
    for (const p of pairs) {
      const key = `${p.chosenScore}>${p.rejectedScore}`;
      buckets.set(key, [...(buckets.get(key) ?? []), p]);
    }
    return Object.fromEntries(
      [...buckets]
        .sort(([a], [b]) => (a < b ? 1 : -1))
        .map(([key, ps]) => [key, { pairs: ps.length, ...this.trueOrder(ps)! }]),
    );
  }

  /** Pairs whose rejected answer is the prompt's greedy one, wrong or right by the verifier. */
  private rejectingGreedy(pairs: PreferencePair[]) {
    const verify = this.task.verify;
    if (!verify || pairs.length === 0 || !this.cfg.selfReward.greedyCandidate) return undefined;
    const greedy = pairs.filter((p) => this.greedyAnswers.get(p.prompt) === p.rejected);
    const wrong = greedy.filter((p) => verify(p.prompt, p.rejected).score < 5).length;
    return { wrong: wrong / pairs.length, right: (greedy.length - wrong) / pairs.length };
  }

  /** Judge score distribution of the pairs: what can be measured with no verifier. */
  private pairScores(pairs: PreferencePair[]) {
    return pairs.length
      ? {
          chosenMean: mean(pairs.map((p) => p.chosenScore)),
          rejectedMean: mean(pairs.map((p) => p.rejectedScore)),
        }
      : undefined;
  }

  /** One self-rewarding iteration with M_t = this.policy; trains it into M_{t+1} in place. */
  private async iterate(t: number) {
    const { cfg, io } = this;
    const s = cfg.selfReward;
    this.quoteTally = { verdicts: 0, misquoted: 0, judgedAgain: 0, unquoted: 0 };
    const prompts = await this.book.timed("write prompts", () => this.writePrompts(t));
    const sampled = await this.book.timed("sample", () => this.sampleCandidates(t, prompts));
    const judged = await this.book.timed("judge", () => this.judgeCandidates(t, sampled));
    const confirmations = await this.book.timed("confirm", () => this.confirmGreedy(t, judged));
    const outcomes = judged.map((j) => ({ ...j, ...this.pairsOf(j, confirmations) }));
    const pairs = outcomes.flatMap((o) => o.pairs.map((pair) => ({ ...o, pair })));
    const ties = outcomes.filter((o) => o.outcome.kind === "tie").length;
    const tooFew = outcomes.filter((o) => o.outcome.kind === "too-few-scores").length;
    const unsureGreedy = outcomes.reduce((a, o) => a + o.unsureGreedy, 0);
    const unconfirmedGreedy = outcomes.reduce((a, o) => a + o.unconfirmedGreedy, 0);
    io.log.info(
      { iteration: t, pairs: pairs.length, ties, tooFew, unsureGreedy, unconfirmedGreedy },
      "preference pairs",
    );
    if (pairs.length === 0) throw noPairs(t, prompts.length, ties, tooFew);
    const anchors = s.anchorTies ? this.anchorsOf(outcomes) : [];
    const training = await this.book.timed("reference", () =>
      this.referenceLogProbs(t, [...pairs, ...anchors]),
    );
    let dpo: DpoSummary | null = null;
    if (training.length > 0) {
      dpo = await this.book.timed("dpo", () =>
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
      if (!Number.isFinite(dpo.loss))
        throw new Error(`stage "dpo" of iteration ${t}: DPO loss is ${dpo.loss}`);
    } else {
      // Pairs formed but every reference job failed: counted, and within maxFailedShare.
      io.log.warn(
        { iteration: t },
        "no pair has reference log-probs: the model is not updated this iteration",
      );
    }
    const pairList = pairs.map((p) => p.pair);
    return {
      prompts: prompts.length,
      candidates: sampled.reduce((a, x) => a + x.candidates.length, 0),
      pairs: pairs.length,
      droppedTies: ties,
      droppedTooFewScores: tooFew,
      ...(s.greedyRejectGap !== undefined ? { droppedUnsureGreedyRejections: unsureGreedy } : {}),
      ...(s.greedyRejectConfirm
        ? { droppedUnconfirmedGreedyRejections: unconfirmedGreedy, confirmedPrompts: confirmations.size }
        : {}),
      ...(s.quoteCheck ? { quoteCheck: { ...this.quoteTally } } : {}),
      ...(s.anchorTies ? { anchors: anchors.length } : {}),
      pairsTrueScoreGap: this.trueGap(pairList),
      pairsTrueOrder: this.trueOrder(pairList),
      pairsTrueOrderByScores: this.trueOrderByScores(pairList),
      pairsRejectingGreedy: this.rejectingGreedy(pairList),
      pairsJudgeScores: this.pairScores(pairList),
      dpo,
      staleness: { max: 0, mean: 0 },
    };
  }

  private async writePrompts(t: number): Promise<string[]> {
    const { cfg, io, task } = this;
    const s = cfg.selfReward;
    let round = 0;
    const written = await writePromptsInTurn({
      rng: makeRng(this.loopSeed(`fewshot-${t}`)),
      seedPrompts: task.data.seedPrompts,
      wanted: s.promptsPerIteration,
      shots: s.fewShot,
      groupOf: (p) => task.groupOf(p),
      parse: (text) => task.parseWrittenPrompt(text),
      nearDuplicate: (p, seen) => task.nearDuplicate(p, seen),
      seen: this.seenPrompts,
      write: async (sets) => {
        round++;
        const jobs = chunk(sets, 16).map((group, i) => ({
          iteration: t,
          inputs: group.map((examples) => task.selfInstructPrompt(examples)),
          format: task.format,
          weights: this.weights,
          // Round 1 keeps the labels writing has always used; later rounds add their number.
          sampling: this.sampling(
            1.0,
            s.topP,
            round === 1 ? `prompts-${t}-${i}` : `prompts-${t}-r${round}-${i}`,
          ),
        }));
        const outcomes = await this.book.jobs("write prompts", "prompts", jobs, (d, n) =>
          io.progress("write prompts", t, d, n, round > 1 ? `round ${round}` : undefined),
        );
        // A failed job's sets were counted as failed above; they come back with no text (no prompt).
        return outcomes.flatMap((o, k) => (o.ok ? o.result.texts : jobs[k].inputs.map(() => "")));
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
        rejected: written.rejected,
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
    this.quoteTally = { verdicts: 0, misquoted: 0, judgedAgain: 0, unquoted: 0 };
    const prompts = await this.book.timed("write prompts", () => this.writePrompts(t));
    const reference = this.weights;
    const arrived: (TrainingPair & { policyVersion: number })[] = [];
    const counts = {
      candidates: 0,
      pairs: 0,
      ties: 0,
      tooFew: 0,
      unsureGreedy: 0,
      unconfirmedGreedy: 0,
      confirmedPrompts: 0,
      stale: 0,
      promptsDone: 0,
    };
    const allPairs: PreferencePair[] = [];
    let pipelineDone = false;
    const pipelineStart = performance.now();
    const pipeline = Promise.all(
      chunk(prompts, 4).map(async (group) => {
        const sampled = await this.sampleCandidates(t, group, true);
        counts.candidates += sampled.reduce((a, x) => a + x.candidates.length, 0);
        const judged = await this.judgeCandidates(t, sampled);
        const confirmations = await this.confirmGreedy(t, judged);
        counts.confirmedPrompts += confirmations.size;
        const outcomes = judged.map((j) => ({ ...j, ...this.pairsOf(j, confirmations) }));
        const pairs = outcomes.flatMap((o) => o.pairs.map((pair) => ({ ...o, pair })));
        counts.ties += outcomes.filter((o) => o.outcome.kind === "tie").length;
        counts.tooFew += outcomes.filter((o) => o.outcome.kind === "too-few-scores").length;
        counts.unsureGreedy += outcomes.reduce((a, o) => a + o.unsureGreedy, 0);
        counts.unconfirmedGreedy += outcomes.reduce((a, o) => a + o.unconfirmedGreedy, 0);
        counts.pairs += pairs.length;
        allPairs.push(...pairs.map((p) => p.pair));
        if (pairs.length) arrived.push(...(await this.referenceLogProbs(t, pairs, reference)));
        counts.promptsDone += group.length;
      }),
    ).finally(() => {
      pipelineDone = true;
      this.book.seconds["sample+judge+reference"] = (performance.now() - pipelineStart) / 1000;
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
    try {
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
    } finally {
      // A failing pipeline stage ends the iteration; the trainer's optimizer state goes with it.
      await pipeline.catch(() => undefined);
      trainer.dispose();
    }
    await pipeline;
    if (counts.pairs === 0) throw noPairs(t, prompts.length, counts.ties, counts.tooFew);
    this.book.seconds.dpo = (performance.now() - dpoStart - waitingMs) / 1000;
    this.book.trainingSeconds += this.book.seconds.dpo;
    io.log.info({ iteration: t, ...counts, steps: trainer.steps }, "streaming iteration");
    return {
      prompts: prompts.length,
      candidates: counts.candidates,
      pairs: counts.pairs,
      droppedTies: counts.ties,
      droppedTooFewScores: counts.tooFew,
      ...(s.greedyRejectGap !== undefined ? { droppedUnsureGreedyRejections: counts.unsureGreedy } : {}),
      ...(s.greedyRejectConfirm
        ? {
            droppedUnconfirmedGreedyRejections: counts.unconfirmedGreedy,
            confirmedPrompts: counts.confirmedPrompts,
          }
        : {}),
      ...(s.quoteCheck ? { quoteCheck: { ...this.quoteTally } } : {}),
      droppedStale: counts.stale,
      pairsTrueScoreGap: this.trueGap(allPairs),
      pairsTrueOrder: this.trueOrder(allPairs),
      pairsTrueOrderByScores: this.trueOrderByScores(allPairs),
      pairsRejectingGreedy: this.rejectingGreedy(allPairs),
      pairsJudgeScores: this.pairScores(allPairs),
      dpo: trainer.steps > 0 ? trainer.summary() : null,
      staleness: {
        max: staleness.length ? Math.max(...staleness) : 0,
        mean: staleness.length ? mean(staleness) : 0,
      },
    };
  }

  private async sampleCandidates(t: number, prompts: string[], latest = false): Promise<Sampled[]> {
    const s = this.cfg.selfReward;
    if (!s.greedyCandidate)
      return this.sampleEach(t, prompts, s.candidates, s.temperature, latest, "samples");
    const [sampled, greedy] = await Promise.all([
      this.sampleEach(t, prompts, s.candidates - 1, s.temperature, latest, "samples"),
      this.sampleEach(t, prompts, 1, 0, latest, "greedy"),
    ]);
    // A prompt whose greedy job failed keeps its sampled candidates (counted as failed jobs).
    const greedyOf = new Map(greedy.map((g) => [g.prompt, g.candidates[0]]));
    for (const [prompt, g] of greedyOf) this.greedyAnswers.set(prompt, g.response);
    return sampled.map((x) => {
      const g = greedyOf.get(x.prompt);
      return g ? { ...x, candidates: [g, ...x.candidates] } : x;
    });
  }

  private async sampleEach(
    t: number,
    prompts: string[],
    n: number,
    temperature: number,
    latest: boolean,
    label: string,
  ): Promise<Sampled[]> {
    const { cfg, io, task } = this;
    const s = cfg.selfReward;
    const jobs = chunk(prompts, 4).map((ps, i) => ({
      iteration: t,
      purpose: "train" as const,
      prompts: ps,
      format: task.format,
      n,
      weights: this.weights,
      latest,
      sampling: this.sampling(temperature, s.topP, `${label}-${t}-${prompts[0]}-${i}`),
    }));
    const outcomes = await this.book.jobs("sample", "samples", jobs, (d, total) =>
      io.progress("sample", t, d, total),
    );
    return outcomes.flatMap((o) =>
      o.ok
        ? o.result.results.map((p) => ({
            prompt: p.prompt,
            promptTokens: p.promptTokens,
            candidates: p.responses.map((x) => ({
              response: x.text,
              tokens: x.tokens,
              logProbSum: x.logProbs.reduce((a, b) => a + b, 0),
              scores: [],
              policyVersion: o.result.policyVersion,
            })),
          }))
        : [],
    );
  }

  private async judgeCandidates(t: number, sampled: Sampled[]): Promise<Sampled[]> {
    const { io } = this;
    const rng = makeRng(this.loopSeed(`judge-order-${t}`));
    const jobs = sampled.map((x, i) => {
      // The judge sees candidates in a shuffled order, so position cannot leak quality.
      const order = rng.shuffle(x.candidates.map((_, k) => k));
      const body = this.judgeJob(
        t,
        "train",
        x.prompt,
        order.map((k) => x.candidates[k].response),
        `judge-${t}-${i}`,
      );
      return { order, body };
    });
    const outcomes = await this.book.jobs(
      "judge",
      "judge",
      jobs.map((j) => j.body),
      (d, n) => io.progress("judge", t, d, n),
    );
    // A prompt whose judge job failed keeps unscored candidates: it forms no pair (counted above).
    const judged = sampled.map((x, i) => {
      const outcome = outcomes[i];
      const candidates = x.candidates.map((c) => ({ ...c }));
      if (outcome.ok)
        jobs[i].order.forEach((k, pos) => {
          candidates[k].scores = this.quotedScores(
            x.prompt,
            candidates[k].response,
            outcome.result.scores[pos],
            outcome.result.texts?.[pos],
          );
        });
      return { ...x, candidates };
    });
    return this.judgeMisquotedAgain(t, judged);
  }

  /** With `selfReward.quoteCheck`: each verdict whose text misquotes the response becomes no
   * verdict (null), counted. A judge that returns no texts (the verifier) has nothing to check. */
  private quotedScores(
    prompt: string,
    response: string,
    scores: (number | null)[],
    texts: string[] | undefined,
  ): (number | null)[] {
    const quotes = this.cfg.selfReward.quoteCheck ? this.task.judgementQuotes : undefined;
    if (!quotes || texts === undefined) return scores;
    return scores.map((score, k) => {
      if (score === null) return null;
      this.quoteTally.verdicts++;
      if (quotes(prompt, response, texts[k] ?? "")) return score;
      this.quoteTally.misquoted++;
      return null;
    });
  }

  /** With `selfReward.quoteCheck`: candidates left with no verdict that quotes them are judged
   * `retries` more times at `temperature`, one job per prompt; the verdicts that quote them count,
   * and a candidate with none still forms no pair (counted as unquoted). */
  private async judgeMisquotedAgain(t: number, judged: Sampled[]): Promise<Sampled[]> {
    const check = this.cfg.selfReward.quoteCheck;
    if (!check) return judged;
    const noVerdict = (c: JudgedCandidate) => c.scores.length > 0 && c.scores.every((x) => x === null);
    const asked = judged.flatMap((j, i) => {
      const ks = j.candidates.flatMap((c, k) => (noVerdict(c) ? [k] : []));
      return ks.length === 0 ? [] : [{ i, ks }];
    });
    if (asked.length === 0) return judged;
    if (check.retries === 0) {
      this.quoteTally.unquoted += asked.reduce((n, a) => n + a.ks.length, 0);
      return judged;
    }
    const outcomes = await this.book.jobs(
      "judge again",
      "judge",
      asked.map((a) =>
        this.judgeJob(
          t,
          "train",
          judged[a.i].prompt,
          a.ks.map((k) => judged[a.i].candidates[k].response),
          `quote-${t}-${judged[a.i].prompt}`,
          { samples: check.retries, temperature: check.temperature },
        ),
      ),
      (d, n) => this.io.progress("judge again", t, d, n),
    );
    const again = judged.map((j) => ({ ...j, candidates: j.candidates.map((c) => ({ ...c })) }));
    asked.forEach((a, n) => {
      const outcome = outcomes[n];
      a.ks.forEach((k, pos) => {
        const c = again[a.i].candidates[k];
        this.quoteTally.judgedAgain++;
        if (outcome.ok)
          c.scores = this.quotedScores(
            again[a.i].prompt,
            c.response,
            outcome.result.scores[pos],
            outcome.result.texts?.[pos],
          );
        if (noVerdict(c)) this.quoteTally.unquoted++;
      });
    });
    return again;
  }

  /** `selfReward.greedyRejectConfirm`: further sampled verdicts on each greedy answer that some
   * pair would reject, by prompt. A prompt whose job failed has none (its such pairs are dropped). */
  private async confirmGreedy(t: number, judged: Sampled[]): Promise<Map<string, (number | null)[]>> {
    const s = this.cfg.selfReward;
    const confirm = s.greedyRejectConfirm;
    const confirmed = new Map<string, (number | null)[]>();
    if (!confirm) return confirmed;
    const asked = judged.flatMap((j) => {
      const greedy = this.greedyAnswers.get(j.prompt);
      return greedy !== undefined && mayRejectGreedy(j.candidates, greedy, s.minScoreGap)
        ? [{ prompt: j.prompt, greedy }]
        : [];
    });
    if (asked.length === 0) return confirmed;
    const outcomes = await this.book.jobs(
      "confirm",
      "judge",
      asked.map((a, i) =>
        this.judgeJob(t, "train", a.prompt, [a.greedy], `confirm-${t}-${a.prompt}-${i}`, {
          samples: confirm.verdicts,
          temperature: confirm.temperature,
        }),
      ),
      (d, n) => this.io.progress("confirm greedy", t, d, n),
    );
    asked.forEach((a, i) => {
      const o = outcomes[i];
      if (o.ok) confirmed.set(a.prompt, o.result.scores[0]);
    });
    return confirmed;
  }

  private judgeJob(
    t: number,
    purpose: "train" | "eval",
    prompt: string,
    candidates: string[],
    seed: string,
    verdicts: { samples: number; temperature: number } = {
      samples: this.cfg.selfReward.judgeSamples,
      temperature: this.cfg.selfReward.judgeTemperature,
    },
  ) {
    const s = this.cfg.selfReward;
    const { task } = this;
    const quote = s.forcedQuote ? task.judgeQuote : undefined;
    return {
      iteration: t,
      purpose,
      task: task.name,
      prompt,
      candidates,
      judgePrompts: candidates.map((c) => task.judgePrompt(prompt, c)),
      ...(quote ? { quotes: candidates.map((c) => quote(prompt, c)) } : {}),
      ...(quote && task.judgeQuoteEnd !== undefined ? { quoteEnd: task.judgeQuoteEnd } : {}),
      format: task.format,
      parser: task.scoreParser,
      samples: verdicts.samples,
      weights: this.weights,
      sampling: { ...this.sampling(verdicts.temperature, s.topP, seed), maxNewTokens: s.judgeMaxNewTokens },
    };
  }

  private async referenceLogProbs(
    t: number,
    pairs: { promptTokens: Int32Array<ArrayBuffer>; pair: PreferencePair }[],
    reference: WeightRef = this.weights,
  ): Promise<(TrainingPair & { policyVersion: number })[]> {
    const { io } = this;
    const rows = pairs.map(({ promptTokens, pair }) => {
      if (!pair.chosenTokens || !pair.rejectedTokens)
        throw new Error(
          "referenceLogProbs: a pair without sampled token ids (candidates must come from the generator)",
        );
      return { prompt: promptTokens, chosen: pair.chosenTokens, rejected: pair.rejectedTokens, pair };
    });
    if (this.referenceFromSampler && reference === this.weights) {
      // Strict mode samples with M_t, the reference itself: its behaviour log-probs of the same
      // ids are the reference log-probs, computed once by the generator instead of twice.
      return rows.map((r) => ({
        prompt: r.prompt,
        chosen: r.chosen,
        rejected: r.rejected,
        refChosen: r.pair.chosenLogProbSum ?? Number.NaN,
        refRejected: r.pair.rejectedLogProbSum ?? Number.NaN,
        policyVersion: r.pair.policyVersion,
      }));
    }
    const batches = chunk(rows, 16);
    const outcomes = await this.book.jobs(
      "reference",
      "reference",
      batches.map((b) => ({
        iteration: t,
        weights: reference,
        pairs: b.map((r) => ({
          prompt: r.prompt,
          chosen: r.chosen as Int32Array<ArrayBuffer>,
          rejected: r.rejected as Int32Array<ArrayBuffer>,
        })),
      })),
      (d, n) => io.progress("reference", t, d, n),
    );
    return batches.flatMap((b, i) => {
      const o = outcomes[i];
      if (!o.ok) return [];
      return b.map((r, k) => ({
        prompt: r.prompt,
        chosen: r.chosen,
        rejected: r.rejected,
        refChosen: o.result.chosen[k],
        refRejected: o.result.rejected[k],
        policyVersion: r.pair.policyVersion,
      }));
    });
  }

  /**
   * Held-out greedy answers of model `version`: with a verifier, exact accuracy, win rate against
   * the previous model and the paired gain over M1; without one, the judge's mean score of the
   * answers and its head-to-head verdict against the previous model's answers. Then the judge's
   * agreement with the true scores, where there are any.
   */
  private async evaluate(version: number): Promise<ModelEval> {
    const { io, task } = this;
    const label = `eval M${version}`;
    const s = this.cfg.selfReward;
    const start = performance.now();
    const split = this.cfg.selfReward.evalSplit;
    const prompts = split === "dev" ? task.data.dev : task.data.heldOut;
    const jobs = chunk(prompts, 25).map((items, i) => ({
      iteration: version,
      purpose: "eval" as const,
      prompts: items.map((h) => h.prompt),
      format: task.format,
      n: 1,
      weights: this.weights,
      sampling: { temperature: 0, topP: 1, topK: 0, maxNewTokens: s.maxNewTokens, seed: i },
    }));
    const outcomes = await this.book.jobs(label, "samples", jobs, (d, n) =>
      io.progress(label, version, d, n, split === "dev" ? "dev answers" : "held-out answers"),
    );
    const answers = new Map<string, string>();
    for (const o of outcomes)
      if (o.ok) for (const p of o.result.results) answers.set(p.prompt, p.responses[0]?.text ?? "");
    // Prompts whose job failed are left out of every figure (and counted as failed), not scored as wrong.
    const rows = prompts
      .filter((h) => answers.has(h.prompt))
      .map((h) => ({ ...h, response: answers.get(h.prompt)! }));
    const base = {
      heldOutN: rows.length,
      samples: rows.slice(0, 6).map((r) => ({ prompt: r.prompt, response: r.response })),
    };
    const judge = await this.evaluateJudge(version, task.data.judgeEval);
    const measured = task.verify ? this.verifiedEval(version, rows) : await this.judgedEval(version, rows);
    this.book.seconds.evaluate = (performance.now() - start) / 1000;
    return { ...base, ...measured, judge };
  }

  private verifiedEval(version: number, rows: { prompt: string; response: string; group?: string }[]) {
    const verify = this.task.verify!;
    const acc = accuracy(rows);
    const scores = rows.map((r) => verify(r.prompt, r.response).score);
    const correct = scores.map((x) => x === 5);
    // Per group: the self-written prompts need not cover the families as the held-out set does.
    const byGroup: Record<string, { n: number; exact: number }> = {};
    rows.forEach((r, i) => {
      if (r.group === undefined) return;
      byGroup[r.group] ??= { n: 0, exact: 0 };
      const g = byGroup[r.group];
      g.n++;
      if (correct[i]) g.exact++;
    });
    const win = this.previousHeldOutScores ? winRate(scores, this.previousHeldOutScores) : null;
    this.previousHeldOutScores = scores;
    const first = this.firstHeldOutCorrect;
    const gain = first ? { model: first.model, ...pairedGain(correct, first.correct) } : null;
    this.firstHeldOutCorrect ??= { model: `M${version}`, correct };
    return {
      heldOutAccuracy: acc.accuracy,
      heldOutAccuracyCi95: acc.ci95,
      heldOutMeanScore: acc.meanScore,
      heldOutByFamily: Object.fromEntries(Object.entries(byGroup).map(([f, v]) => [f, v.exact / v.n])),
      heldOutJudgeScore: null,
      winRateVsPrevious: win
        ? { win: win.win, loss: win.loss, tie: win.tie, ci95: win.ci95, n: win.n, judgedBy: "verifier" }
        : null,
      gainOverFirst: gain,
    };
  }

  /** Without a verifier: the configured judge scores each held-out answer next to the previous model's. */
  private async judgedEval(version: number, rows: { prompt: string; response: string }[]) {
    const previous = this.previousAnswers;
    const outcomes = await this.book.jobs(
      `eval M${version}`,
      "judge",
      rows.map((r, i) => {
        const prev = previous?.[i];
        const candidates = prev === undefined ? [r.response] : [r.response, prev];
        return this.judgeJob(version, "eval", r.prompt, candidates, `judge-heldout-${version}-${i}`);
      }),
      (d, n) => this.io.progress(`eval M${version}`, version, d, n, "judging held-out answers"),
    );
    this.previousAnswers = rows.map((r) => r.response);
    const current: number[] = [];
    let win = 0;
    let loss = 0;
    let tie = 0;
    let failures = 0;
    let judgements = 0;
    let impl = "";
    for (const o of outcomes) {
      if (!o.ok) continue;
      impl = o.result.judge.impl;
      failures += o.result.parseFailures;
      judgements += o.result.judgements;
      const [now, before] = o.result.scores.map(meanScore);
      if (now !== null) current.push(now);
      if (now === null || before === null || before === undefined) continue;
      if (now > before) win++;
      else if (now < before) loss++;
      else tie++;
    }
    const m = mean(current);
    const sd = Math.sqrt(mean(current.map((x) => (x - m) ** 2)));
    const half = current.length > 1 ? (1.96 * sd) / Math.sqrt(current.length) : Number.NaN;
    const decided = win + loss + tie;
    return {
      heldOutAccuracy: null,
      heldOutAccuracyCi95: null,
      heldOutMeanScore: null,
      heldOutByFamily: {},
      heldOutJudgeScore: {
        mean: m,
        ci95: [m - half, m + half] as [number, number],
        n: current.length,
        judge: impl,
        parseFailureRate: judgements ? failures / judgements : 0,
      },
      winRateVsPrevious:
        decided > 0
          ? {
              win: win / decided,
              loss: loss / decided,
              tie: tie / decided,
              ci95: wilson(win, decided),
              n: decided,
              judgedBy: impl,
            }
          : null,
      gainOverFirst: null,
    };
  }

  private async evaluateJudge(version: number, items: JudgeEvalItem[]): Promise<ModelEval["judge"]> {
    if (items.length === 0)
      return { impl: "", pairwiseAccuracy: null, spearman: null, parseFailureRate: null };
    const outcomes = await this.book.jobs(
      `eval M${version}`,
      "judge",
      items.map((item, i) =>
        this.judgeJob(
          version,
          "eval",
          item.prompt,
          item.candidates.map((c) => c.response),
          `judge-eval-${version}-${i}`,
        ),
      ),
      (d, n) => this.io.progress(`eval M${version}`, version, d, n, "judge agreement"),
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
      judged.push(o.result.scores.map((samples) => meanScore(samples) ?? Number.NaN));
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
            ab: {
              secondary: secondaryName,
              pairwiseAgreement: pairwiseAccuracy(judged, secondary).accuracy,
              agreement: judgeAgreement(judged, secondary),
            },
          }
        : {}),
    };
  }
}

/** Sampled candidates of one prompt, with the ids the prompt was rendered to. */
interface Sampled {
  prompt: string;
  promptTokens: Int32Array<ArrayBuffer>;
  candidates: JudgedCandidate[];
}
