// The trainer's three training loops over the model engine: language-model pretraining (M0),
// supervised fine-tuning on instruction and judge data (M1), and DPO on preference pairs (M_t+1).

import type { PromptFormat } from "../../bus/messages.ts";
import type { Config } from "../../config/schema.ts";
import { Trainer } from "../../model/train.ts";
import { makeRng, type Rng } from "../../tasks/random.ts";
import { type Policy, trainingRow } from "../policy.ts";

type Optim = Config["train"]["pretrain"];

export interface StepReport {
  step: number;
  total: number;
  loss: number;
  /** Global gradient norm before clipping (cross-entropy steps), to see spikes in a run's log. */
  gradNorm?: number;
}

function trainerFor(
  policy: Policy,
  optim: Optim,
  seed: number,
  dpoBeta?: number,
  dpoNllWeight?: number,
): Trainer {
  return new Trainer(policy.model, {
    schedule: {
      kind: "cosine",
      peak: optim.learningRate,
      warmupSteps: Math.min(optim.warmupSteps, Math.max(0, optim.steps - 1)),
      totalSteps: Math.max(optim.steps, optim.warmupSteps + 1),
      minLr: optim.learningRate * 0.1,
    },
    weightDecay: optim.weightDecay,
    maxGradNorm: optim.gradClip,
    sftLossPer: optim.lossPer,
    seed,
    dpoBeta,
    dpoNllWeight,
  });
}

// Training is synchronous tfjs work; yielding between steps keeps the actor's NATS connection,
// service pings and signal handlers alive during long loops.
export const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function batchOf<T>(rng: Rng, items: T[], size: number): T[] {
  const out: T[] = [];
  for (let i = 0; i < Math.min(size, items.length); i++) out.push(rng.pick(items));
  return out;
}

/** Cross-entropy steps on token rows (targets: the response tokens), minibatches drawn at random. */
async function crossEntropySteps(
  policy: Policy,
  rows: { prompt: number[]; response: number[]; weight?: number }[],
  optim: Optim,
  seed: number,
  onStep: (r: StepReport) => void | Promise<void>,
) {
  const trainer = trainerFor(policy, optim, seed);
  const rng = makeRng(seed);
  const losses: number[] = [];
  for (let step = 0; step < optim.steps; step++) {
    const stats = trainer.sftStep(batchOf(rng, rows, optim.batchSize));
    losses.push(stats.loss);
    await onStep({ step: step + 1, total: optim.steps, loss: stats.loss, gradNorm: stats.gradNorm });
    await yieldToEventLoop();
  }
  trainer.optimizer.dispose();
  return lossSummary(losses);
}

export interface LossSummary {
  /** Mean loss of the first and of the last tenth of the steps (one step is too noisy a figure). */
  first: number;
  last: number;
  steps: number;
}

function lossSummary(losses: number[]): LossSummary {
  const n = Math.max(1, Math.floor(losses.length / 10));
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : Number.NaN);
  return { first: mean(losses.slice(0, n)), last: mean(losses.slice(-n)), steps: losses.length };
}

/** Next-token prediction on every token of each line (after BOS): srlm's own M0. */
export function pretrain(
  policy: Policy,
  lines: string[],
  optim: Optim,
  seed: number,
  onStep: (r: StepReport) => void | Promise<void>,
) {
  const { tokenizer } = policy;
  const rows = lines.map((line) => ({ prompt: [tokenizer.bosId], response: tokenizer.encode(line) }));
  return crossEntropySteps(policy, rows, optim, seed, onStep);
}

type Example = { prompt: string; response: string };

/** M1's SFT data: IFT, EFT and prompt-writing examples, the IFT ones at `train.sft.iftWeight`. */
export function sftMix(
  data: { ift: Example[]; eft: Example[]; selfInstruct: Example[] },
  sft: Config["train"]["sft"],
): (Example & { weight?: number })[] {
  const w = sft.iftWeight ?? 1;
  return [
    ...(w === 1 ? data.ift : data.ift.map((x) => ({ ...x, weight: w }))),
    ...data.eft,
    ...data.selfInstruct,
  ];
}

/** SFT: cross-entropy on the completion tokens only (the prompt is context, not target); an
 * example's `weight` scales its tokens in the loss (1 when unset). */
export function supervisedFineTune(
  policy: Policy,
  examples: { prompt: string; response: string; weight?: number }[],
  optim: Optim,
  seed: number,
  onStep: (r: StepReport) => void | Promise<void>,
  format: PromptFormat = "plain",
) {
  const { tokenizer } = policy;
  const rows = examples.map((ex) => ({
    ...trainingRow(tokenizer, ex.prompt, ex.response, format),
    ...(ex.weight !== undefined && ex.weight !== 1 ? { weight: ex.weight } : {}),
  }));
  return crossEntropySteps(policy, rows, optim, seed, onStep);
}

/** A preference pair as token ids (the prompt as rendered, the responses as sampled). */
export interface TrainingPair {
  prompt: ArrayLike<number>;
  chosen: ArrayLike<number>;
  rejected: ArrayLike<number>;
  refChosen: number;
  refRejected: number;
}

export interface DpoSummary {
  loss: number;
  rewardMargin: number;
  preferenceAccuracy: number;
  /** β(log π − log π_ref) of the chosen and of the rejected answers: both below zero is DPO
   * lowering the likelihood of what it should raise along with what it should lower. */
  chosenReward: number;
  rejectedReward: number;
  steps: number;
}

/** DPO with summed sequence log-probs against the frozen reference's (computed by the reference
 * actor), one minibatch at a time, so strict iterations and streaming share the same steps. */
export class PreferenceTrainer {
  private trainer: Trainer;
  private rng: Rng;
  private tail: DpoSummary[] = [];
  steps = 0;

  constructor(
    policy: Policy,
    private optim: Optim,
    beta: number,
    seed: number,
    nllWeight = 0,
  ) {
    this.trainer = trainerFor(policy, optim, seed, beta, nllWeight);
    this.rng = makeRng(seed);
  }

  /** One DPO step on a minibatch drawn at random from `pairs`. */
  step(pairs: TrainingPair[]): number {
    return this.stepOn(batchOf(this.rng, pairs, this.optim.batchSize));
  }

  /** One DPO step on exactly this minibatch. */
  stepOn(batch: TrainingPair[]): number {
    const stats = this.trainer.dpoStep(
      batch.map((p) => ({
        prompt: Array.from(p.prompt),
        chosen: Array.from(p.chosen),
        rejected: Array.from(p.rejected),
      })),
      { chosen: batch.map((p) => p.refChosen), rejected: batch.map((p) => p.refRejected) },
    );
    this.steps++;
    // The summary averages the last quarter of steps: one minibatch is too noisy a figure.
    this.tail.push({
      loss: stats.loss,
      rewardMargin: stats.rewardMargin,
      preferenceAccuracy: stats.preferenceAccuracy,
      chosenReward: stats.chosenReward,
      rejectedReward: stats.rejectedReward,
      steps: 1,
    });
    if (this.tail.length > Math.max(1, Math.floor(this.optim.steps / 4))) this.tail.shift();
    return stats.loss;
  }

  summary(): DpoSummary {
    const mean = (f: (s: DpoSummary) => number) =>
      this.tail.reduce((a, s) => a + f(s), 0) / Math.max(1, this.tail.length);
    return {
      loss: mean((s) => s.loss),
      rewardMargin: mean((s) => s.rewardMargin),
      preferenceAccuracy: mean((s) => s.preferenceAccuracy),
      chosenReward: mean((s) => s.chosenReward),
      rejectedReward: mean((s) => s.rejectedReward),
      steps: this.steps,
    };
  }

  dispose(): void {
    this.trainer.optimizer.dispose();
  }
}

/** Strict DPO: every step over the whole, already complete set of pairs. */
export async function directPreference(
  policy: Policy,
  pairs: TrainingPair[],
  optim: Optim,
  beta: number,
  seed: number,
  onStep: (r: StepReport) => void | Promise<void>,
  nllWeight = 0,
): Promise<DpoSummary> {
  const trainer = new PreferenceTrainer(policy, optim, beta, seed, nllWeight);
  for (let step = 0; step < optim.steps; step++) {
    const loss = trainer.step(pairs);
    await onStep({ step: step + 1, total: optim.steps, loss });
    await yieldToEventLoop();
  }
  trainer.dispose();
  return trainer.summary();
}
