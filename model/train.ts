// The Trainer owns a model's optimizer and turns batches into updates: SFT, DPO and PPO. Each
// step splits its batch into micro-batches, sums their gradients (each micro-loss is normalised
// by the whole batch, so accumulation gives the full-batch gradient), clips, and applies AdamW.
import * as tf from "@tensorflow/tfjs";
import type { TrainerStateFiles } from "./checkpoint.ts";
import type { Llama } from "./llama.ts";
import { VALUE_HEAD } from "./llama.ts";
import { dpoLoss, responseTokenCount, sftLoss, sftNormaliser } from "./losses.ts";
import { AdamW, clipByGlobalNorm, learningRate, type Schedule } from "./optim.ts";
import { PPO_DEFAULTS, type PpoHyper } from "./ppo.ts";
import { ppoMinibatchStep, preparePpoBatch } from "./ppoBatch.ts";
import { Rng, type RngState } from "./random.ts";
import { type PromptResponse, responseLogProbsTensor } from "./score.ts";

export interface TrainerOptions {
  schedule: Schedule;
  weightDecay?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Global grad-norm clip; 0 disables. Default 1. */
  maxGradNorm?: number;
  /** Rows per forward/backward pass; the step still covers the whole batch. 0 = whole batch. */
  microBatchSize?: number;
  /** Seeds dropout masks. */
  seed?: number;
  /** SFT loss: the mean over the batch's response tokens (default) or over its examples, each
   * example's own token mean (losses.ts sftLoss). */
  sftLossPer?: "token" | "example";
  dpoBeta?: number;
  /** Weight of an NLL term on the chosen answers in dpoStep (0 = plain DPO). */
  dpoNllWeight?: number;
  ppo?: Partial<PpoOptions>;
}

export type PpoOptions = PpoHyper;

export interface StepStats {
  step: number;
  lr: number;
  loss: number;
  gradNorm: number;
}

export interface DpoExample {
  prompt: number[];
  chosen: number[];
  rejected: number[];
}

export interface DpoStats extends StepStats {
  rewardMargin: number;
  preferenceAccuracy: number;
  chosenReward: number;
  rejectedReward: number;
}

export interface Rollout {
  prompt: number[];
  response: number[];
  /** Behaviour log-prob of each response token (from generate). ppoStep recomputes the old
   * log-probs under the current weights, so these only have to be the right length. */
  logProbs: number[];
  /** Reference-model log-prob of each response token. */
  refLogProbs: number[];
  /** Sequence-level reward, credited at the last token. */
  reward: number;
}

export interface PpoStats extends StepStats {
  policyLoss: number;
  valueLoss: number;
  clipFraction: number;
  approxKl: number;
  /** Mean per-sequence KL(old policy ‖ reference) estimate, Σ(logπ_old − logπ_ref). */
  refKl: number;
  meanReward: number;
}

type Scalars = Record<string, tf.Scalar>;

export class Trainer {
  readonly optimizer: AdamW;
  step = 0;
  private readonly rng: Rng;
  private readonly ppo: PpoOptions;

  constructor(
    readonly model: Llama,
    readonly opts: TrainerOptions,
  ) {
    this.optimizer = new AdamW(model.params, {
      beta1: opts.beta1,
      beta2: opts.beta2,
      eps: opts.eps,
      weightDecay: opts.weightDecay,
    });
    this.rng = new Rng(opts.seed ?? 0);
    this.ppo = { ...PPO_DEFAULTS, ...opts.ppo };
  }

  get lr(): number {
    return learningRate(this.step, this.opts.schedule);
  }

  private chunks<T>(batch: T[]): T[][] {
    if (batch.length === 0) throw new Error("Trainer: empty batch");
    const size =
      this.opts.microBatchSize && this.opts.microBatchSize > 0 ? this.opts.microBatchSize : batch.length;
    const out: T[][] = [];
    for (let i = 0; i < batch.length; i += size) out.push(batch.slice(i, i + size));
    return out;
  }

  /**
   * Accumulates gradients of `lossOf(micro)` over micro-batches, clips, applies AdamW. `lossOf`
   * returns {loss, ...stats} where every scalar is already normalised by the whole batch, so
   * sums over micro-batches are the batch values. Public for objectives defined next to their
   * batches (ppoBatch.ts). With `skipNonFinite`, a loss or gradient that is not finite applies
   * nothing and leaves `step` where it was: one bad rollout must not poison the weights.
   */
  update<T>(
    batch: T[],
    lossOf: (micro: T[], index: number) => Scalars,
    includeValueHead: boolean,
    skipNonFinite = false,
  ): Record<string, number> & StepStats {
    const params = [...this.model.params].filter(([name]) => includeValueHead || name !== VALUE_HEAD);
    const hfName = new Map(params.map(([name, v]) => [v.name, name]));
    const vars = params.map(([, v]) => v);
    const acc = new Map<string, tf.Tensor>();
    const totals: Record<string, number> = {};
    this.chunks(batch).forEach((micro, index) => {
      const stats: Scalars = {};
      const { value, grads } = tf.variableGrads(() => {
        const s = lossOf(micro, index);
        for (const [k, v] of Object.entries(s)) if (k !== "loss") stats[k] = tf.keep(v);
        return s.loss;
      }, vars);
      // A stat may be the loss tensor itself (GRPO with no KL or entropy term: the loss is the
      // policy loss), so every value is read before any tensor is disposed.
      totals.loss = (totals.loss ?? 0) + value.dataSync()[0];
      for (const [k, v] of Object.entries(stats)) totals[k] = (totals[k] ?? 0) + v.dataSync()[0];
      for (const v of new Set([value, ...Object.values(stats)])) v.dispose();
      for (const [varName, g] of Object.entries(grads)) {
        const name = hfName.get(varName);
        if (!name) throw new Error(`Trainer: gradient for unknown variable "${varName}"`);
        const prev = acc.get(name);
        if (prev) {
          acc.set(name, prev.add(g));
          prev.dispose();
          g.dispose();
        } else acc.set(name, g);
      }
    });
    const { grads, norm } = clipByGlobalNorm(acc, this.opts.maxGradNorm ?? 1);
    const lr = this.lr;
    const skipped = skipNonFinite && !(Number.isFinite(norm) && Number.isFinite(totals.loss));
    if (!skipped) this.optimizer.apply(grads, lr);
    for (const g of grads.values()) g.dispose();
    if (!skipped) this.step += 1;
    return { ...totals, step: this.step, lr, gradNorm: norm, loss: totals.loss };
  }

  /** Cross-entropy on response tokens (mean over the batch's response tokens, or over its examples). */
  sftStep(batch: PromptResponse[]): StepStats & { tokens: number } {
    const tokens = responseTokenCount(batch);
    const perExample = this.opts.sftLossPer === "example";
    const normaliser = sftNormaliser(batch, perExample);
    const stats = this.update(
      batch,
      (micro) => ({
        loss: sftLoss(this.model, micro, {
          normaliser,
          perExample,
          training: true,
          dropoutSeed: this.rng.nextUint32(),
        }),
      }),
      false,
    );
    return { step: stats.step, lr: stats.lr, loss: stats.loss, gradNorm: stats.gradNorm, tokens };
  }

  /** DPO against a frozen reference whose summed log-probs of chosen and rejected are given. */
  dpoStep(batch: DpoExample[], ref: { chosen: number[]; rejected: number[] }): DpoStats {
    if (ref.chosen.length !== batch.length || ref.rejected.length !== batch.length) {
      throw new Error(
        `dpoStep: ${batch.length} pairs but ${ref.chosen.length}/${ref.rejected.length} reference log-probs`,
      );
    }
    const beta = this.opts.dpoBeta ?? 0.1;
    const indexed = batch.map((ex, i) => ({ ex, i }));
    const stats = this.update(
      indexed,
      (micro) => {
        const n = micro.length;
        // Chosen and rejected go through one forward pass: rows [0, n) and [n, 2n).
        const rows = [
          ...micro.map(({ ex }) => ({ prompt: ex.prompt, response: ex.chosen })),
          ...micro.map(({ ex }) => ({ prompt: ex.prompt, response: ex.rejected })),
        ];
        const { sum } = responseLogProbsTensor(this.model, rows, {
          training: true,
          dropoutSeed: this.rng.nextUint32(),
        });
        const terms = dpoLoss(
          sum.slice(0, n),
          sum.slice(n, n),
          micro.map(({ i }) => ref.chosen[i]),
          micro.map(({ i }) => ref.rejected[i]),
          beta,
          batch.length,
        );
        // Optional NLL on the chosen answers (per token), as in iterative RPO (Pang et al. 2024):
        // it keeps DPO from lowering the chosen answers' likelihood along with the rejected ones'.
        const nllWeight = this.opts.dpoNllWeight ?? 0;
        const chosenTokens = micro.map(({ ex }) => Math.max(1, ex.chosen.length));
        const loss =
          nllWeight > 0
            ? terms.loss.add(
                sum.slice(0, n).div(tf.tensor1d(chosenTokens)).sum().neg().div(batch.length).mul(nllWeight),
              )
            : terms.loss;
        return {
          loss: loss as tf.Scalar,
          rewardMargin: terms.rewardMargin,
          preferenceAccuracy: terms.preferenceAccuracy,
          chosenReward: terms.chosenReward,
          rejectedReward: terms.rejectedReward,
        };
      },
      false,
    );
    return {
      step: stats.step,
      lr: stats.lr,
      loss: stats.loss,
      gradNorm: stats.gradNorm,
      rewardMargin: stats.rewardMargin,
      preferenceAccuracy: stats.preferenceAccuracy,
      chosenReward: stats.chosenReward,
      rejectedReward: stats.rejectedReward,
    };
  }

  /**
   * One PPO step over rollouts (ReFT): the batch is prepared under the current weights and
   * trained on once, so its ratio is 1 and the clips never act; PpoTrainer (ppoTrainer.ts) runs
   * the real thing, several minibatch passes over one prepared batch. Adds a value head if absent.
   */
  ppoStep(rollouts: Rollout[]): PpoStats {
    rollouts.forEach((r, i) => {
      if (r.logProbs.length !== r.response.length)
        throw new Error(
          `ppoStep: rollout ${i} has ${r.response.length} tokens but ${r.logProbs.length} log-probs`,
        );
    });
    const batch = preparePpoBatch(this.model, rollouts, {
      algorithm: "ppo",
      hyper: this.ppo,
      chunkSize: this.opts.microBatchSize || undefined,
    });
    const s = ppoMinibatchStep(
      this,
      batch,
      rollouts.map((_, i) => i),
      this.ppo,
    );
    return {
      step: s.step,
      lr: s.lr,
      loss: s.loss,
      gradNorm: s.gradNorm,
      policyLoss: s.policyLoss,
      valueLoss: s.valueLoss,
      clipFraction: s.clipFraction,
      approxKl: s.approxKl,
      refKl: batch.stats.refKl,
      meanReward: batch.stats.meanReward,
    };
  }

  /** Everything needed to resume: AdamW moments, step, RNG state. */
  state(): TrainerStateFiles {
    return {
      json: {
        step: this.step,
        adamT: this.optimizer.t,
        rngState: this.rng.getState(),
        seed: this.opts.seed ?? 0,
      },
      tensors: this.optimizer.state(),
    };
  }

  loadState(state: TrainerStateFiles): void {
    const { step, adamT, rngState } = state.json as { step?: number; adamT?: number; rngState?: RngState };
    if (typeof step !== "number" || typeof adamT !== "number") {
      throw new Error("Trainer.loadState: trainer_state.json lacks step/adamT");
    }
    this.step = step;
    if (rngState) this.rng.setState(rngState);
    this.optimizer.loadState(state.tensors, adamT);
  }

  dispose(): void {
    this.optimizer.dispose();
  }
}
