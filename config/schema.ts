// The one typed configuration of srlm. Every field has a default, so an empty file is a valid
// config; presets (presets.ts) override a few fields for a purpose (CI smoke test, README demo).
import { z } from "zod";
import { JOB_LIMITS } from "../bus/messages.ts";
import { FAMILY_NAMES } from "../tasks/families.ts";

const positiveInt = z.number().int().positive();
const nonNegativeInt = z.number().int().nonnegative();
const probability = z.number().min(0).max(1);
// Fields that size one job are bounded by what a worker accepts (bus/messages.ts JOB_LIMITS).
const newTokens = positiveInt.max(JOB_LIMITS.maxNewTokens);
const perPrompt = positiveInt.max(JOB_LIMITS.samples);

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
    // Copies of the run's streams and weights object store on a NATS cluster (JetStream allows
    // 1 to 5): 3 lets the run go on when one node dies. A single server holds only 1.
    replicas: z.number().int().min(1).max(5).default(1),
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
    // srlm's own M0 reads its output logits off the token embeddings (tie_word_embeddings): a
    // token copied from the prompt then scores itself through the same vectors, which a small
    // model otherwise has to learn in a separate head.
    tieEmbeddings: z.boolean().default(false),
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

// ReFT's math problems: srlm's synthetic word problems unless `train` names a JSONL file
// (GSM8K's {question, answer ending "#### N"} or ReFT's {question, answer_cot, answer_value}).
export const mathDataSchema = z
  .object({
    train: z.string().default(""),
    // Held-out problems; default `heldOutSize` problems set aside from `train`'s.
    heldOut: z.string().default(""),
    trainSize: positiveInt.default(2000),
    devSize: nonNegativeInt.default(100),
    heldOutSize: positiveInt.default(300),
    // Synthetic problems: arithmetic steps per problem (both ends included), largest operand.
    minOps: positiveInt.default(2),
    maxOps: positiveInt.default(4),
    maxOperand: z.number().int().min(2).default(9),
    // Synthetic problems: the share whose solution is written as one equation (`5 + 3 - 2 = 6.`)
    // instead of one per operation, as some annotators write (tasks/math.ts). Not for JSONL data,
    // whose solutions are written as the file has them.
    terseShare: z.number().min(0).max(1).default(0),
    // The phrase before the final answer, where the reward reads it.
    trigger: z.string().min(1).default("Therefore, the answer is:"),
  })
  .strict()
  .refine((m) => m.maxOps >= m.minOps, { message: "maxOps must be at least minOps", path: ["maxOps"] })
  .refine((m) => !(m.train && m.terseShare > 0), {
    message: "terseShare rewrites srlm's synthetic solutions; with a JSONL train file it must be 0",
    path: ["terseShare"],
  });

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
    math: mathDataSchema.default(mathDataSchema.parse({})),
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
    sft: optimSchema
      .extend({
        // Each IFT (instruction → answer) target token counts this many times an EFT or
        // prompt-writing one in the token-mean loss: answers are short, judgements long, and
        // at 1 the answers can be a few percent of the loss. Unset is 1.
        iftWeight: z.number().positive().optional(),
      })
      .default({
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
    // A second SFT phase, from the SFT model to M1: EFT on the model's own answers. It answers
    // `prompts` training prompts `samples` times (selfReward's temperature and top-p), the task's
    // verifier grades each answer, and the judgements train beside `replay` times as many IFT and
    // as many EFT examples of the first phase (each). The first phase's judge has seen only the
    // reference answers and their synthetic corruptions, and on the answers it later judges, its
    // own, it marks right ones down; this shows it those. Needs a task with a verifier. Unset: off.
    ownEft: optimSchema
      .extend({
        prompts: positiveInt,
        samples: positiveInt.default(2),
        replay: z.number().nonnegative().default(1),
      })
      .optional(),
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
    maxNewTokens: newTokens.default(32),
    // Judgements are longer than answers: the worked check (6 characters per response character,
    // up to 25 of them), the criteria, then `Score: N`.
    judgeMaxNewTokens: newTokens.default(192),
    beta: z.number().positive().default(0.1),
    // Pairs whose mean judge scores differ by less than this are dropped as ties (0 = the paper).
    minScoreGap: z.number().nonnegative().default(0),
    // Pairs per prompt: its best and worst candidates (the paper), or every two candidates whose
    // scores differ by minScoreGap or more (up to 6 from 4 candidates, for no more judging).
    pairing: z.enum(["best-worst", "all"]).default("best-worst"),
    // One of the `candidates` decoded greedily instead of sampled: held-out accuracy is measured
    // on greedy answers, and sampled candidates at temperature 0.7 reach their mistakes rarely.
    greedyCandidate: z.boolean().default(false),
    // With greedyCandidate: a pair whose rejected answer is the greedy one needs judge scores at
    // least this far apart (unset: minScoreGap, as every pair). A right greedy answer pushed down
    // costs the evaluation directly, and the judge errs most on small gaps.
    greedyRejectGap: z.number().nonnegative().optional(),
    // With greedyCandidate: before a pair may reject the greedy answer, the judge is asked about
    // it `verdicts` more times, sampled at `temperature`, and every one of those verdicts must
    // leave the pair's gap too; otherwise the pair is dropped. A self-judge that marks a right
    // greedy answer down mostly does so by chance, and asked again it does not; a wrong one it
    // marks down again (bench/judgeConsistency.ts). Only prompts with such a pair are asked.
    greedyRejectConfirm: z
      .object({ verdicts: positiveInt, temperature: z.number().positive() })
      .strict()
      .optional(),
    // A verdict counts only where the judge's text quotes the response it judged (the task says how:
    // srlm's worked check restates every character); a candidate left with no such verdict is
    // judged `retries` more times at `temperature`, and still none means it forms no pair. A small
    // self-judge marks right answers down where its check misreads them (docs/experiments.md,
    // ninth and tenth rounds); the texts alone show it, without a verifier.
    quoteCheck: z.object({ retries: nonNegativeInt, temperature: z.number().positive() }).strict().optional(),
    // The self-judge writes the tokens where its text quotes the response as given, from the
    // response, and judges the rest itself (the task says where: srlm's worked check quotes each
    // character once per step). Its marks then compare what it was shown, not a misread copy. An
    // HTTP judge cannot be guided and judges as without it. Optional, so that resume points
    // written before it existed still resume.
    forcedQuote: z.boolean().optional(),
    // Weight of an NLL term on chosen answers added to DPO (0 = the paper's plain DPO).
    nllWeight: z.number().nonnegative().default(0),
    // With greedyCandidate and nllWeight > 0: a prompt whose candidates all tie at the top mark
    // keeps its greedy answer through the NLL term alone (as both sides of a pair, so the DPO term
    // cancels). Such prompts form no pair, and without an anchor DPO's steps on other prompts
    // move their answers freely. Optional, so that resume points written before it still resume.
    anchorTies: z.boolean().optional(),
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
    // Which prompts the report's accuracy, gain and win rate are measured on: the held-out test
    // set, or the dev set (`data.devSize`) while settings are being chosen, so that the test set
    // never chooses them.
    evalSplit: z.enum(["heldOut", "dev"]).default("heldOut"),
  })
  .strict()
  .refine((s) => s.greedyRejectGap === undefined || s.greedyCandidate, {
    message: "greedyRejectGap needs greedyCandidate: true (there is no greedy answer to protect)",
    path: ["greedyRejectGap"],
  })
  .refine((s) => s.greedyRejectConfirm === undefined || s.greedyCandidate, {
    message: "greedyRejectConfirm needs greedyCandidate: true (there is no greedy answer to confirm)",
    path: ["greedyRejectConfirm"],
  })
  .refine((s) => !s.anchorTies || (s.greedyCandidate && s.nllWeight > 0 && s.mode === "strict"), {
    message:
      "anchorTies needs greedyCandidate: true (the answer it keeps), nllWeight > 0 (the term that keeps it) and mode: strict",
    path: ["anchorTies"],
  });

// ReFT (arXiv 2401.08967): a warm-up SFT on chains of thought, then online PPO with the answer's
// correctness as reward; defaults are the paper's code's where it has one.
export const reftSchema = z
  .object({
    // Seed of rollouts, minibatch order and evaluation samples, apart from the model's.
    seed: nonNegativeInt.default(0),
    // Epochs of SFT before PPO (the warm-up), and of the SFT baseline in all (it goes on from the
    // warm-up, so ReFT and SFT see the same data).
    warmupEpochs: z.number().positive().default(2),
    sftEpochs: z.number().positive().default(10),
    sft: optimSchema.omit({ steps: true }).default({
      batchSize: 16,
      learningRate: 1e-3,
      warmupSteps: 20,
      weightDecay: 0,
      gradClip: 1,
    }),
    algorithm: z.enum(["ppo", "grpo"]).default("ppo"),
    // PPO updates (rollout batches) after the warm-up.
    updates: positiveInt.default(40),
    // Questions per rollout batch, and samples of each (1 in PPO; GRPO's group size).
    questionsPerUpdate: positiveInt.default(32),
    samplesPerQuestion: perPrompt.default(1),
    ppoEpochs: positiveInt.default(2),
    // Rollouts per optimizer step; 0 = the whole batch.
    minibatchSize: nonNegativeInt.default(0),
    learningRate: z.number().positive().default(3e-5),
    warmupSteps: nonNegativeInt.default(0),
    gradClip: z.number().positive().default(1),
    klCoef: z.number().nonnegative().default(0.05),
    clip: z.number().positive().default(0.2),
    valueClip: z.number().positive().default(0.2),
    valueCoef: z.number().nonnegative().default(5),
    gamma: probability.default(1),
    lambda: probability.default(0.95),
    entropyCoef: z.number().nonnegative().default(0),
    // Negative advantages are scaled by this: 1 is plain PPO/GRPO; 0 pushes only the responses
    // that did better than expected (a wrong chain's tokens after its mistake are mostly right
    // given what came before, and the plain objective pushes them down too).
    negativeAdvantageScale: probability.default(1),
    // Rollouts: temperature 1, top-k 0, top-p 1, so behaviour log-probs are the policy's own.
    temperature: z.number().positive().default(1),
    maxNewTokens: newTokens.default(160),
    // strict: each batch from the newest weights; streaming: the generators sample from the
    // newest weights they have while the trainer updates, batches at most maxStaleness versions
    // old, the ratio taken against the behaviour log-probs they carry.
    mode: z.enum(["strict", "streaming"]).default("strict"),
    maxStaleness: nonNegativeInt.default(1),
    // Inference-time strategies on held-out: K samples per question for Vote@K and Rerank@K.
    evalSamples: perPrompt.default(8),
    // Which problems the report's accuracies are measured on: heldOut (the result) or dev (while
    // choosing settings, so that the held-out problems never choose them).
    evalSplit: z.enum(["heldOut", "dev"]).default("heldOut"),
    evalTemperature: z.number().positive().default(1),
    // The reranker: a scoring head on a copy of the warm-up model, trained on its own samples
    // of the training questions labelled by answer correctness; 0 samples turns it off.
    reranker: z
      .object({
        samplesPerQuestion: nonNegativeInt.default(4),
        questions: positiveInt.default(500),
        epochs: positiveInt.default(1),
        batchSize: positiveInt.default(16),
        learningRate: z.number().positive().default(1e-4),
      })
      .strict()
      .default({ samplesPerQuestion: 4, questions: 500, epochs: 1, batchSize: 16, learningRate: 1e-4 }),
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
    // auto: the method's own judge, `self` for self-rewarding and `answer` (ReFT's reward) for reft.
    judgeImpl: z.enum(["auto", "self", "verifier", "openai", "answer", "ab"]).default("auto"),
    ackWaitMs: positiveInt.default(30_000),
    maxDeliver: positiveInt.default(5),
    // Prompts per job the trainer sends (ReFT's rollouts, evaluation and reranker samples).
    batchSize: positiveInt.max(JOB_LIMITS.items).default(16),
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
    // self-rewarding: M0 → SFT → M1 → DPO iterations; reft: warm-up SFT → PPO on math problems.
    method: z.enum(["self-rewarding", "reft"]).default("self-rewarding"),
    run: z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/, "letters, digits, '_' and '-' only")
      .default("srlm"),
    out: z.string().default("runs/srlm"),
    log: z
      .object({ level: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info") })
      .strict()
      .default({ level: "info" }),
    nats: natsSchema.default({ url: "", replicas: 1 }),
    model: modelSchema.default(modelSchema.parse({})),
    data: dataSchema.default(dataSchema.parse({})),
    train: trainSchema.default(trainSchema.parse({})),
    selfReward: selfRewardSchema.default(selfRewardSchema.parse({})),
    reft: reftSchema.default(reftSchema.parse({})),
    judge: judgeSchema.default(judgeSchema.parse({})),
    selfInstruct: selfInstructSchema.default(selfInstructSchema.parse({})),
    actors: actorsSchema.default(actorsSchema.parse({})),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/** The judge implementation the run's judge actors use (actors.judgeImpl, `auto` resolved). */
export function judgeImplOf(cfg: Config): Exclude<Config["actors"]["judgeImpl"], "auto"> {
  const impl = cfg.actors.judgeImpl;
  if (impl !== "auto") return impl;
  return cfg.method === "reft" ? "answer" : "self";
}
