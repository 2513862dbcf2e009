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
    // A folder of per-role nkey seeds (`<role>.nk`, as `srlm nats-config` writes): each actor and
    // CLI command connects as its own role's user.
    keysDir: z.string().optional(),
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

// The JSONL files of an instruction task (data.task "jsonl"); every line is checked and a bad one
// is an error naming the file, the line and the field.
export const jsonlFilesSchema = z
  .object({
    // IFT: {prompt, response} or {messages: [{role, content}…]} ending in the assistant's turn.
    ift: z.string().default(""),
    // EFT: {prompt, response, judgement} (rendered with the judge template) or chat messages.
    eft: z.string().default(""),
    // Seed prompts for self-instruct: {prompt}; default the IFT prompts.
    prompts: z.string().default(""),
    // Held-out prompts: {prompt}; default `heldOutSize` prompts set aside from the seed prompts.
    heldOut: z.string().default(""),
  })
  .strict();

export const dataSchema = z
  .object({
    // synthetic: srlm's verifiable task families (the demo); jsonl: your own instruction data.
    task: z.enum(["synthetic", "jsonl"]).default("synthetic"),
    // How prompts reach the policy: chat uses the tokenizer's chat template; auto picks chat when
    // the checkpoint's tokenizer has one (the synthetic task is always plain).
    format: z.enum(["auto", "plain", "chat"]).default("auto"),
    jsonl: jsonlFilesSchema.default(jsonlFilesSchema.parse({})),
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
    // Strict mode: take the reference log-probs of a pair from the generator's own behaviour
    // log-probs (full softmax at temperature 1, under M_t, the reference itself) instead of
    // asking the reference actor to score the same ids again. Streaming always asks.
    referenceFromSampler: z.boolean().default(false),
    // A stage whose failed jobs exceed this share stops the run with an error naming the stage.
    maxFailedShare: probability.default(0.1),
  })
  .strict();

// The `openai` judge (actors/judge/openai.ts): any OpenAI-compatible chat endpoint.
export const openaiJudgeSchema = z
  .object({
    // Up to and including /v1, e.g. http://host:8000/v1 (vLLM), http://host:11434/v1 (Ollama).
    baseUrl: z.string().default(""),
    model: z.string().default(""),
    // The environment variable holding the API key (never the key itself); empty sends none.
    apiKeyEnv: z.string().default(""),
    maxConcurrency: positiveInt.default(4),
    timeoutMs: positiveInt.default(60_000),
    // Further tries of a request after a 429, 5xx, timeout or malformed answer.
    retries: nonNegativeInt.default(3),
    backoffMs: positiveInt.default(500),
  })
  .strict();

export const judgeSchema = z
  .object({
    // A Jinja file with {{ prompt }} and {{ response }}; empty = the built-in additive 5-point
    // rubric (the paper's LLM-as-a-Judge prompt, in srlm's words). Instruction tasks only.
    promptTemplate: z.string().default(""),
    openai: openaiJudgeSchema.default(openaiJudgeSchema.parse({})),
    // The two judges of `--impl ab`, primary first: the primary's scores train, the secondary's
    // are reported beside them.
    ab: z.string().default("self,verifier"),
  })
  .strict();

export const selfInstructSchema = z
  .object({
    // A Jinja file with {{ examples }} (a list of prompts); empty = the built-in one. Instruction tasks only.
    template: z.string().default(""),
    // A written prompt whose word ROUGE-L F1 with a seen prompt reaches this is a near duplicate.
    maxOverlap: probability.default(0.7),
    maxPromptChars: positiveInt.default(2000),
  })
  .strict();

export const actorsSchema = z
  .object({
    generators: positiveInt.default(1),
    // 0: `srlm run` / `srlm up` start no judge and the user runs their own (`srlm actor judge`),
    // e.g. to swap it mid-run; needs a server others can join (--nats with nats.keysDir).
    judges: nonNegativeInt.default(1),
    judgeImpl: z.enum(["self", "verifier", "openai", "answer", "ab"]).default("self"),
    ackWaitMs: positiveInt.default(30_000),
    maxDeliver: positiveInt.default(5),
    batchSize: positiveInt.default(16),
    // A job the trainer waits on longer than this settles as failed (never a silent hang).
    jobTimeoutMs: positiveInt.default(1_800_000),
    // A crashing actor instance is restarted with backoff, at most restartBudget times within
    // restartWindowMs; a role with no running instance for roleDownMs fails the run.
    restartBudget: positiveInt.default(10),
    restartWindowMs: positiveInt.default(300_000),
    roleDownMs: positiveInt.default(120_000),
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
    judge: judgeSchema.default(judgeSchema.parse({})),
    selfInstruct: selfInstructSchema.default(selfInstructSchema.parse({})),
    actors: actorsSchema.default(actorsSchema.parse({})),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
