// PPO's outer loop over one rollout batch, as ReFT trains: prepare the batch once, then `epochs`
// passes of shuffled minibatch steps over it. The loop over actors (sample, reward, reference
// log-probs) feeds it batches; `plan` + `step` let that loop yield to the event loop between
// steps, `update` runs a whole batch at once.
import type { TrainerStateFiles } from "./checkpoint.ts";
import type { Llama } from "./llama.ts";
import { PPO_DEFAULTS, type PpoHyper } from "./ppo.ts";
import {
  type PpoAlgorithm,
  type PpoBatch,
  type PpoBatchStats,
  type PpoRollout,
  type PpoStepStats,
  ppoMinibatchStep,
  preparePpoBatch,
} from "./ppoBatch.ts";
import { Rng, type RngState } from "./random.ts";
import { Trainer, type TrainerOptions } from "./train.ts";

export interface PpoTrainerOptions extends Omit<TrainerOptions, "ppo" | "dpoBeta" | "dpoNllWeight"> {
  /** Default "ppo". */
  algorithm?: PpoAlgorithm;
  hyper?: Partial<PpoHyper>;
  /** Passes over each prepared batch. Default 2. */
  ppoEpochs?: number;
  /** Rollouts per optimizer step; 0 = the whole batch. Default 0. */
  minibatchSize?: number;
}

export interface PpoUpdate {
  batch: PpoBatchStats;
  steps: PpoStepStats[];
  /** Steps of this update skipped for a gradient that was not finite. */
  skipped: number;
}

export class PpoTrainer {
  readonly trainer: Trainer;
  readonly hyper: PpoHyper;
  readonly algorithm: PpoAlgorithm;
  readonly epochs: number;
  readonly minibatchSize: number;
  /** Steps skipped for a non-finite gradient over this trainer's life. */
  skippedSteps = 0;
  private readonly shuffler: Rng;

  constructor(
    readonly model: Llama,
    opts: PpoTrainerOptions,
  ) {
    this.hyper = { ...PPO_DEFAULTS, ...opts.hyper };
    this.algorithm = opts.algorithm ?? "ppo";
    this.epochs = opts.ppoEpochs ?? 2;
    this.minibatchSize = opts.minibatchSize ?? 0;
    if (!Number.isInteger(this.epochs) || this.epochs < 1)
      throw new Error(`PpoTrainer: ppoEpochs must be a positive integer (got ${this.epochs})`);
    if (!Number.isInteger(this.minibatchSize) || this.minibatchSize < 0)
      throw new Error(`PpoTrainer: minibatchSize must be a non-negative integer (got ${this.minibatchSize})`);
    const { algorithm: _a, hyper: _h, ppoEpochs: _e, minibatchSize: _m, ...trainerOpts } = opts;
    this.trainer = new Trainer(model, trainerOpts);
    // Its own stream, so minibatch order does not shift with the inner trainer's use of its Rng.
    this.shuffler = new Rng(((opts.seed ?? 0) ^ 0x5eed_0bb0) >>> 0);
    if (this.algorithm === "ppo") model.addValueHead();
  }

  get step(): number {
    return this.trainer.step;
  }

  prepare(rollouts: readonly PpoRollout[]): PpoBatch {
    return preparePpoBatch(this.model, rollouts, {
      algorithm: this.algorithm,
      hyper: this.hyper,
      chunkSize: this.trainer.opts.microBatchSize || undefined,
    });
  }

  /** The minibatches (row indices) of every epoch over `batch`, each epoch in a fresh order. */
  plan(batch: PpoBatch): number[][] {
    const n = batch.rows.length;
    const size = this.minibatchSize > 0 ? Math.min(this.minibatchSize, n) : n;
    const out: number[][] = [];
    for (let e = 0; e < this.epochs; e++) {
      const order = Array.from({ length: n }, (_, i) => i);
      for (let i = n - 1; i > 0; i--) {
        const j = this.shuffler.int(i + 1);
        [order[i], order[j]] = [order[j], order[i]];
      }
      for (let i = 0; i < n; i += size) out.push(order.slice(i, i + size));
    }
    return out;
  }

  /** One optimizer step on rows `indices` of a prepared batch. */
  stepOn(batch: PpoBatch, indices: readonly number[]): PpoStepStats {
    if (batch.algorithm !== this.algorithm)
      throw new Error(`PpoTrainer: a ${batch.algorithm} batch given to a ${this.algorithm} trainer`);
    const stats = ppoMinibatchStep(this.trainer, batch, indices, this.hyper);
    if (stats.skipped) this.skippedSteps++;
    return stats;
  }

  /** Every planned step over one prepared batch. */
  update(batch: PpoBatch): PpoUpdate {
    const steps = this.plan(batch).map((rows) => this.stepOn(batch, rows));
    return { batch: batch.stats, steps, skipped: steps.filter((s) => s.skipped).length };
  }

  /** prepare, then update. */
  train(rollouts: readonly PpoRollout[]): PpoUpdate {
    return this.update(this.prepare(rollouts));
  }

  state(): TrainerStateFiles {
    const inner = this.trainer.state();
    return {
      json: { ...inner.json, ppoShuffleState: this.shuffler.getState(), skippedSteps: this.skippedSteps },
      tensors: inner.tensors,
    };
  }

  loadState(state: TrainerStateFiles): void {
    this.trainer.loadState(state);
    const { ppoShuffleState, skippedSteps } = state.json as {
      ppoShuffleState?: RngState;
      skippedSteps?: number;
    };
    if (ppoShuffleState) this.shuffler.setState(ppoShuffleState);
    if (typeof skippedSteps === "number") this.skippedSteps = skippedSteps;
  }

  dispose(): void {
    this.trainer.dispose();
  }
}
