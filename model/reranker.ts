// ReFT's reranker (Luong et al. 2024, Rerank@K): a copy of the warm-up SFT model whose scalar
// head reads the final hidden state of a solution's last token and says how likely the solution
// is to be correct. It is trained with binary cross-entropy on sampled solutions labelled 1
// (right answer) or 0, and at inference picks the best of K samples (tasks/inference.ts).
// The head is the value head PPO uses: the same [1, d] projection of the same hidden states,
// read at one position instead of every one.
import * as tf from "@tensorflow/tfjs";
import { Llama, VALUE_HEAD } from "./llama.ts";
import { Rng } from "./random.ts";
import type { PromptResponse } from "./score.ts";
import { type StepStats, Trainer, type TrainerOptions } from "./train.ts";

export interface RerankerExample extends PromptResponse {
  /** 1 when the response's extracted answer is correct, else 0. */
  label: 0 | 1;
}

/** A reranker initialised from `base`: its weights, with a fresh zero value head, so every
 * solution starts at probability ½ and the first steps move the head before the trunk. */
export function rerankerFrom(base: Llama): Llama {
  const weights = base.getWeights();
  weights.delete(VALUE_HEAD);
  const model = new Llama(base.config, weights);
  model.addValueHead();
  return model;
}

function checkRows(rows: readonly PromptResponse[], where: string): void {
  if (rows.length === 0) throw new Error(`${where}: no rows`);
  rows.forEach((r, i) => {
    if (r.prompt.length + r.response.length === 0) throw new Error(`${where}: row ${i} has no tokens`);
  });
}

/**
 * The reranker's logit of each row [B]: the value head on the final hidden state at the row's
 * last token (the last response token, or the last prompt token of an empty response), so the
 * score has seen the whole solution. Differentiable; call inside tf.tidy / variableGrads.
 */
export function rerankerLogitsTensor(
  model: Llama,
  rows: readonly PromptResponse[],
  opts: { training?: boolean; dropoutSeed?: number } = {},
): tf.Tensor1D {
  if (!model.hasValueHead) throw new Error("rerankerLogits: the model has no value head (see rerankerFrom)");
  checkRows(rows, "rerankerLogits");
  const B = rows.length;
  const L = Math.max(...rows.map((r) => r.prompt.length + r.response.length));
  const inputs = new Int32Array(B * L).fill(model.config.pad_token_id ?? 0);
  // Right padding: the causal mask keeps it out of every real token's view. A 0/1 selection
  // matmul picks each row's last state, as score.ts does, because gather's gradient needs a
  // kernel the wasm backend lacks.
  const select = new Float32Array(B * L);
  rows.forEach((r, b) => {
    const seq = [...r.prompt, ...r.response];
    inputs.set(seq, b * L);
    select[b * L + seq.length - 1] = 1;
  });
  const hidden = model.hiddenStates(tf.tensor2d(inputs, [B, L], "int32"), {
    training: opts.training,
    dropoutSeed: opts.dropoutSeed,
  });
  const last = tf.matMul(tf.tensor3d(select, [B, 1, L]), hidden) as tf.Tensor3D; // [B, 1, d]
  return model.values(last).reshape([B]);
}

/**
 * Σ softplus(x) − x·y over the rows, divided by `normaliser` (default: the number of rows):
 * −[y log σ(x) + (1 − y) log(1 − σ(x))] written so it neither overflows nor loses its gradient
 * σ(x) − y at x = 0, where a zero-initialised head starts (forms built on |x| have a kink there).
 */
export function bceWithLogits(
  logits: tf.Tensor1D,
  labels: readonly number[],
  normaliser?: number,
): tf.Scalar {
  if (labels.length !== logits.shape[0])
    throw new Error(`bceWithLogits: ${logits.shape[0]} logits but ${labels.length} labels`);
  const y = tf.tensor1d([...labels]);
  return tf
    .softplus(logits)
    .sub(logits.mul(y))
    .sum()
    .div(normaliser ?? labels.length);
}

/** Probability of being correct for each row, dropout off, in chunks of `batchSize` rows. */
export function rerankerScores(model: Llama, rows: readonly PromptResponse[], batchSize = 16): number[] {
  const scores: number[] = [];
  for (let start = 0; start < rows.length; start += batchSize) {
    const chunk = rows.slice(start, start + batchSize);
    const p = tf.tidy(() => tf.sigmoid(rerankerLogitsTensor(model, chunk, { training: false })).dataSync());
    scores.push(...Array.from(p));
  }
  return scores;
}

export interface RerankerOptions
  extends Omit<TrainerOptions, "ppo" | "dpoBeta" | "dpoNllWeight" | "sftLossPer"> {
  /** Passes over the examples, each in a fresh shuffled order. Default 1. */
  epochs?: number;
  /** Examples per optimizer step (the last step of an epoch may have fewer). Default 16. */
  batchSize?: number;
}

export interface RerankerStepStats extends StepStats {
  /** The loss or gradient was not finite, so no update was applied. */
  skipped: boolean;
  examples: number;
  /** Share of the minibatch on the right side of ½ (a logit of exactly 0 is counted wrong). */
  accuracy: number;
}

export interface RerankerSummary {
  /** Mean loss of the first and of the last tenth of the applied steps (one step is too noisy). */
  first: number;
  last: number;
  /** Steps applied. */
  steps: number;
  /** Steps skipped for a non-finite loss or gradient. */
  skipped: number;
}

/** Optimizer steps `trainReranker` takes over `examples` examples: what a decaying schedule's
 * totalSteps should be. */
export function rerankerStepCount(
  examples: number,
  opts: Pick<RerankerOptions, "epochs" | "batchSize">,
): number {
  return (opts.epochs ?? 1) * Math.ceil(examples / (opts.batchSize ?? 16));
}

/** Reranker training one minibatch at a time, so a caller's loop can yield between steps. */
export class RerankerTrainer {
  readonly trainer: Trainer;
  readonly epochs: number;
  readonly batchSize: number;
  /** Steps skipped for a non-finite loss or gradient over this trainer's life. */
  skippedSteps = 0;
  private readonly shuffler: Rng;
  private readonly dropout: Rng;

  constructor(
    readonly model: Llama,
    opts: RerankerOptions,
  ) {
    const { epochs = 1, batchSize = 16, ...trainerOpts } = opts;
    if (!Number.isInteger(epochs) || epochs < 1)
      throw new Error(`RerankerTrainer: epochs must be a positive integer (got ${epochs})`);
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw new Error(`RerankerTrainer: batchSize must be a positive integer (got ${batchSize})`);
    this.epochs = epochs;
    this.batchSize = batchSize;
    model.addValueHead();
    this.trainer = new Trainer(model, trainerOpts);
    // Streams of their own, so the order of examples does not depend on how many dropout seeds
    // the steps drew.
    const seed = opts.seed ?? 0;
    this.shuffler = new Rng((seed ^ 0x7e4a_4b11) >>> 0);
    this.dropout = new Rng((seed ^ 0x0d40_9077) >>> 0);
  }

  get step(): number {
    return this.trainer.step;
  }

  /** The minibatches (example indices) of every epoch over `n` examples. */
  plan(n: number): number[][] {
    const out: number[][] = [];
    for (let e = 0; e < this.epochs; e++) {
      const order = Array.from({ length: n }, (_, i) => i);
      for (let i = n - 1; i > 0; i--) {
        const j = this.shuffler.int(i + 1);
        [order[i], order[j]] = [order[j], order[i]];
      }
      for (let i = 0; i < n; i += this.batchSize) out.push(order.slice(i, i + this.batchSize));
    }
    return out;
  }

  /** One optimizer step on `examples[indices]`: mean BCE at the last token, the whole model
   * trained (head and trunk). */
  stepOn(examples: readonly RerankerExample[], indices: readonly number[]): RerankerStepStats {
    if (indices.length === 0) throw new Error("RerankerTrainer: empty minibatch");
    const batch = indices.map((i) => {
      const ex = examples[i];
      if (!ex) throw new Error(`RerankerTrainer: no example ${i}`);
      if (ex.label !== 0 && ex.label !== 1)
        throw new Error(`RerankerTrainer: example ${i} has label ${ex.label}, not 0 or 1`);
      return ex;
    });
    const n = batch.length;
    const before = this.trainer.step;
    const stats = this.trainer.update(
      batch,
      (micro) => {
        const logits = rerankerLogitsTensor(this.model, micro, {
          training: true,
          dropoutSeed: this.dropout.nextUint32(),
        });
        const labels = micro.map((ex) => ex.label);
        // Right side of ½: a positive logit for label 1, a negative one for label 0.
        const signs = tf.tensor1d(labels.map((y) => 2 * y - 1));
        return {
          loss: bceWithLogits(logits, labels, n),
          accuracy: logits.mul(signs).greater(0).cast("float32").sum().div(n) as tf.Scalar,
        };
      },
      true,
      true,
    );
    const skipped = this.trainer.step === before;
    if (skipped) this.skippedSteps++;
    return {
      step: stats.step,
      lr: stats.lr,
      loss: stats.loss,
      gradNorm: stats.gradNorm,
      skipped,
      examples: n,
      accuracy: stats.accuracy,
    };
  }

  dispose(): void {
    this.trainer.dispose();
  }
}

/**
 * Trains `model` (adding a zero value head if it has none) as a reranker on labelled samples:
 * `epochs` shuffled passes of `batchSize`-example steps. `onStep` sees every step, skipped ones
 * included; the summary covers the applied ones.
 */
export function trainReranker(
  model: Llama,
  examples: readonly RerankerExample[],
  opts: RerankerOptions & { onStep?: (stats: RerankerStepStats, done: number, total: number) => void },
): RerankerSummary {
  checkRows(examples, "trainReranker");
  const { onStep, ...trainerOpts } = opts;
  const trainer = new RerankerTrainer(model, trainerOpts);
  try {
    const plan = trainer.plan(examples.length);
    const losses: number[] = [];
    plan.forEach((indices, k) => {
      const stats = trainer.stepOn(examples, indices);
      if (!stats.skipped) losses.push(stats.loss);
      onStep?.(stats, k + 1, plan.length);
    });
    const tenth = Math.max(1, Math.floor(losses.length / 10));
    const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);
    return {
      first: mean(losses.slice(0, tenth)),
      last: mean(losses.slice(-tenth)),
      steps: losses.length,
      skipped: trainer.skippedSteps,
    };
  } finally {
    trainer.dispose();
  }
}
