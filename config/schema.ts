// The one typed configuration of srlm. Every field has a default, so an empty file is a valid
// config; presets (presets.ts) override a few fields for a purpose (CI smoke test, README demo).
import { z } from "zod";
import { FAMILY_NAMES } from "../tasks/families.ts";

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const probability = z.number().min(0).max(1);

export const backendNames = ["auto", "tfjs-node-gpu", "tfjs-node", "blas", "wasm", "cpu"] as const;

export const natsSchema = z
  .object({
    // Empty means: `srlm up` / `srlm run` start an embedded nats-server on a free port.
    url: z.string().default(""),
    user: z.string().optional(),
    pass: z.string().optional(),
    token: z.string().optional(),
    nkeySeed: z.string().optional(),
    credsFile: z.string().optional(),
    tls: z
      .object({ ca: z.string().optional(), cert: z.string().optional(), key: z.string().optional() })
      .strict()
      .optional(),
  })
  .strict();

export const modelSchema = z
  .object({
    backend: z.enum(backendNames).default("auto"),
    // A model-shape preset of model/config.ts, used when srlm makes its own M0.
    preset: z.string().default("small"),
    // A checkpoint folder (config.json + model.safetensors + tokenizer.json) to start from instead.
    base: z.string().default(""),
    seed: nonNegativeInt.default(1234),
    // Load <out>/checkpoints/M0 and M1 when an earlier run wrote them from the same inputs
    // (config fields recorded in their srlm_stage.json) instead of training them again.
    reuse: z.boolean().default(true),
  })
  .strict();

export const dataSchema = z
  .object({
    seed: nonNegativeInt.default(7),
    // Task families to train and evaluate on (tasks/families.ts): the six answer families by
    // default; the demo runs on the two constraint families (word, number).
    families: z
      .array(z.enum(FAMILY_NAMES))
      .min(1)
      .default(["reverse", "sort", "upper", "add", "repeat", "vowels"]),
    pretrainSize: nonNegativeInt.default(4000),
    iftSize: positiveInt.default(600),
    eftSize: nonNegativeInt.default(600),
    heldOutSize: positiveInt.default(400),
    judgeEvalSize: positiveInt.default(60),
    // Prompts for choosing settings (bench/m1Stability.ts), kept out of training like held-out.
    // Unset, not 0, by default: stage keys (stageCache.ts) of runs from before it stay valid.
    devSize: nonNegativeInt.optional(),
  })
  .strict();

const optimSchema = z
  .object({
    steps: nonNegativeInt,
    batchSize: positiveInt,
    learningRate: z.number().positive(),
    warmupSteps: nonNegativeInt.default(0),
    weightDecay: z.number().nonnegative().default(0),
    gradClip: z.number().positive().default(1),
    // Cross-entropy stages: average the loss over target tokens (unset, the default) or over
    // examples, each its own token mean, so that a mix of short and long targets trains both.
    lossPer: z.enum(["token", "example"]).optional(),
  })
  .strict();

export const trainSchema = z
  .object({
    pretrain: optimSchema.default({
      steps: 600,
      batchSize: 16,
      learningRate: 3e-3,
      warmupSteps: 30,
      weightDecay: 0,
      gradClip: 1,
    }),
    sft: optimSchema.default({
      steps: 300,
      batchSize: 16,
      learningRate: 1e-3,
      warmupSteps: 20,
      weightDecay: 0,
      gradClip: 1,
    }),
    dpo: optimSchema
      .extend({
        // Strict iterations take at most this many passes over their pairs (steps × batchSize /
        // pairs), fewer steps than `steps` when an iteration yields few pairs; unset = `steps`
        // always. Streaming trains on pairs as they arrive and takes `steps`.
        epochs: z.number().positive().optional(),
      })
      .default({
        steps: 60,
        batchSize: 8,
        learningRate: 2e-4,
        warmupSteps: 5,
        weightDecay: 0,
        gradClip: 1,
      }),
  })
  .strict();

export const selfRewardSchema = z
  .object({
    // Seed of the loop's sampling (prompts, candidates, judgements), apart from the model's, so the
    // iterations can be repeated from the same M1 to see how much of a gain is luck.
    seed: nonNegativeInt.default(0),
    // DPO iterations after M1: 2 gives M1 → M2 → M3 as in the paper.
    iterations: nonNegativeInt.default(2),
    promptsPerIteration: positiveInt.default(120),
    fewShot: positiveInt.default(3),
    candidates: z.number().int().min(2).default(4),
    temperature: z.number().nonnegative().default(0.7),
    topP: probability.default(0.9),
    topK: nonNegativeInt.default(0),
    judgeSamples: positiveInt.default(3),
    judgeTemperature: z.number().nonnegative().default(0.7),
    maxNewTokens: positiveInt.default(32),
    // Judgements are longer than answers: the worked check (6 characters per response character,
    // up to 25 of them), the criteria, then `Score: N`.
    judgeMaxNewTokens: positiveInt.default(192),
    beta: z.number().positive().default(0.1),
    // Pairs whose mean judge scores differ by less than this are dropped as ties (0 = the paper).
    minScoreGap: z.number().nonnegative().default(0),
    // Weight of an NLL term on chosen answers added to DPO (0 = the paper's plain DPO).
    nllWeight: z.number().nonnegative().default(0),
    // strict = the paper's iterations; streaming = train on pairs as they arrive.
    mode: z.enum(["strict", "streaming"]).default("strict"),
    // Streaming: how many policy versions older than the trainer's a pair may be when trained on.
    maxStaleness: nonNegativeInt.default(2),
    // Streaming: publish new weights every this many DPO steps, for generators to pick up.
    publishEvery: positiveInt.default(10),
  })
  .strict();

export const actorsSchema = z
  .object({
    generators: positiveInt.default(1),
    judges: positiveInt.default(1),
    judgeImpl: z.enum(["self", "verifier", "ab"]).default("self"),
    ackWaitMs: positiveInt.default(30_000),
    maxDeliver: positiveInt.default(5),
    batchSize: positiveInt.default(16),
  })
  .strict();

export const configSchema = z
  .object({
    preset: z.string().default("default"),
    run: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/, "letters, digits, '_' and '-' only")
      .default("srlm"),
    out: z.string().default("runs/srlm"),
    log: z
      .object({ level: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info") })
      .strict()
      .default({ level: "info" }),
    nats: natsSchema.default({ url: "" }),
    model: modelSchema.default(modelSchema.parse({})),
    data: dataSchema.default(dataSchema.parse({})),
    train: trainSchema.default(trainSchema.parse({})),
    selfReward: selfRewardSchema.default(selfRewardSchema.parse({})),
    actors: actorsSchema.default(actorsSchema.parse({})),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
