// Every message type on the bus, defined once. Adding a type:
//   export const MyJob = defineMessage("job.my", z.object({ ... }));
//   export type MyJobBody = BodyOf<typeof MyJob>;
// then name its subject in subjects.ts. Typed arrays are z.instanceof(Float32Array) etc.; the
// codec carries them bit-exact.
import { z } from "zod";
import { type BodyOf, defineMessage } from "./envelope.ts";

const count = z.number().int().nonnegative();

/**
 * How much work one job may ask for. A schema-valid job is still untrusted: without bounds one
 * message could hold a worker for minutes and gigabytes. srlm's own loops stay well inside them
 * (they split work into jobs of `actors.batchSize` prompts); a job beyond them is dead-lettered
 * with the field named.
 */
export const JOB_LIMITS = {
  /** Prompts (or rendered prompt-writing prompts, or candidates) per job. */
  items: 1024,
  /** Samples per prompt, judgements per candidate. */
  samples: 256,
  /** Sequences a worker generates or scores for one job: items × samples, pairs × 2. */
  sequences: 4096,
  maxNewTokens: 8192,
} as const;
const items = <T extends z.ZodTypeAny>(item: T) => z.array(item).min(1).max(JOB_LIMITS.items);
const perItem = z.number().int().positive().max(JOB_LIMITS.samples);
const withinSequences = (n: number) => n <= JOB_LIMITS.sequences;
const sequencesMessage = `more than ${JOB_LIMITS.sequences} sequences in one job`;

/** A new weight version, stored in the object store; generators and judges reload from it. */
export const WeightsPublished = defineMessage(
  "weights.published",
  z.object({
    version: count,
    bucket: z.string().min(1),
    name: z.string().min(1),
    digest: z.string().min(1),
    bytes: count,
  }),
);
export type WeightsPublishedBody = BodyOf<typeof WeightsPublished>;

/** Named numeric measurements at one point of the run. */
export const Metrics = defineMessage(
  "metrics",
  z.object({
    iteration: count.optional(),
    step: count.optional(),
    values: z.record(z.string(), z.number()),
  }),
);
export type MetricsBody = BodyOf<typeof Metrics>;

export const ACTOR_EVENTS = ["started", "progress", "stopping", "stopped", "error"] as const;

/** Actor lifecycle and progress. */
export const ActorEvent = defineMessage(
  "actor.event",
  z.object({
    event: z.enum(ACTOR_EVENTS),
    actor: z.string().min(1),
    instance: z.string().min(1),
    impl: z.string().optional(),
    detail: z.string().optional(),
    done: count.optional(),
    total: count.optional(),
  }),
);
export type ActorEventBody = BodyOf<typeof ActorEvent>;

/** A message that could not be used, kept with its raw bytes so nothing disappears silently. */
export const DeadLetter = defineMessage(
  "dead.letter",
  z.object({
    reason: z.string().min(1),
    subject: z.string().min(1),
    raw: z.instanceof(Uint8Array),
    actor: z.string().min(1),
  }),
);
export type DeadLetterBody = BodyOf<typeof DeadLetter>;

export const CONTROL_COMMANDS = ["start", "pause", "resume", "stop"] as const;

/** Iteration control from the trainer or the CLI. */
export const Control = defineMessage(
  "control",
  z.object({
    command: z.enum(CONTROL_COMMANDS),
    iteration: count.optional(),
    reason: z.string().optional(),
  }),
);
export type ControlBody = BodyOf<typeof Control>;

// ---- The self-rewarding loop: jobs the trainer enqueues and the results actors return. ----

/** Which weights a job must run with: a version in the object store. */
const weightRef = z.object({
  version: count,
  bucket: z.string().min(1),
  name: z.string().min(1),
  digest: z.string().min(1),
});
export type WeightRef = z.output<typeof weightRef>;

const sampling = z.object({
  temperature: z.number().nonnegative(),
  topP: z.number().min(0).max(1),
  topK: count,
  maxNewTokens: z.number().int().positive().max(JOB_LIMITS.maxNewTokens),
  seed: count,
});
export type SamplingBody = z.output<typeof sampling>;

// Why a job exists: training data for iteration N, or evaluation of model N.
const purpose = z.enum(["train", "eval"]);

/**
 * How a prompt reaches the policy: `plain` is srlm's own format (BOS, the prompt, a newline; the
 * completion ends at the next newline), `chat` renders it as a user turn with the tokenizer's chat
 * template and the completion ends at EOS.
 */
export const PROMPT_FORMATS = ["plain", "chat"] as const;
const format = z.enum(PROMPT_FORMATS);
export type PromptFormat = z.output<typeof format>;

/** Write new prompts (self-instruct): one rendered prompt-writing prompt per prompt to write. */
export const PromptsJob = defineMessage(
  "job.prompts",
  z.object({
    iteration: count,
    inputs: items(z.string().min(1)),
    format,
    weights: weightRef,
    sampling,
  }),
);
export type PromptsJobBody = BodyOf<typeof PromptsJob>;

export const PromptsResult = defineMessage(
  "result.prompts",
  z.object({ jobId: z.string().min(1), iteration: count, texts: z.array(z.string()) }),
);
export type PromptsResultBody = BodyOf<typeof PromptsResult>;

/** Answer each prompt `n` times with `weights`, or (streaming, `latest`) the newest version announced. */
export const SamplesJob = defineMessage(
  "job.samples",
  z
    .object({
      iteration: count,
      purpose,
      prompts: items(z.string().min(1)),
      format,
      n: perItem,
      weights: weightRef,
      latest: z.boolean().optional(),
      sampling,
    })
    .refine((j) => withinSequences(j.prompts.length * j.n), { message: sequencesMessage, path: ["n"] }),
);
export type SamplesJobBody = BodyOf<typeof SamplesJob>;

const sampled = z.object({
  text: z.string(),
  // The ids exactly as sampled (with the EOS or stop token that ended them): what the reference
  // scores and DPO trains, so decoding and re-encoding never changes a response.
  tokens: z.instanceof(Int32Array),
  // Behaviour log-prob of each sampled token, at temperature 1 (what PPO's ratio needs).
  logProbs: z.instanceof(Float32Array),
  finishReason: z.string(),
});

export const CandidatesResult = defineMessage(
  "result.candidates",
  z.object({
    jobId: z.string().min(1),
    iteration: count,
    purpose,
    policyVersion: count,
    results: z.array(
      z.object({ prompt: z.string(), promptTokens: z.instanceof(Int32Array), responses: z.array(sampled) }),
    ),
  }),
);
export type CandidatesResultBody = BodyOf<typeof CandidatesResult>;

/** The parsers a judge may be asked to read its judgements with (tasks/judgement.ts). */
export const SCORE_PARSERS = ["first-line", "last-score"] as const;

/** A piece of the judge's own text that quotes the response: at new-token index `at` the judge
 * writes `text` (one token) as given rather than sampling it (`selfReward.forcedQuote`). */
export const quotedToken = z.object({ at: count, text: z.string().min(1) }).strict();
export type QuotedToken = z.infer<typeof quotedToken>;

/**
 * Score each candidate `samples` times. The trainer renders the task's judge prompt for every
 * candidate, so a judge needs no task knowledge beyond the named score parser (and, for the
 * `verifier` judge, the task whose verifier to use).
 */
export const JudgeJob = defineMessage(
  "job.judge",
  z
    .object({
      iteration: count,
      purpose,
      task: z.string().min(1),
      prompt: z.string().min(1),
      candidates: items(z.string()),
      judgePrompts: z.array(z.string().min(1)).min(1),
      // Per candidate, where the judge's text quotes it: a judge running the policy writes these
      // tokens as given; one that cannot (an HTTP judge) judges as if they were absent.
      quotes: z.array(z.array(quotedToken)).optional(),
      // With quotes: once the judge writes this text itself, its text quotes no more (srlm's worked
      // check: the space before the verdict), so a check that ends early keeps its verdict.
      quoteEnd: z.string().min(1).optional(),
      format,
      parser: z.enum(SCORE_PARSERS),
      // The gold answer, for judges that check answers rather than read them (ReFT's `answer`).
      gold: z.string().optional(),
      // The phrase the answer follows, for the same judges; default "Therefore, the answer is:".
      trigger: z.string().min(1).optional(),
      samples: perItem,
      weights: weightRef,
      sampling,
    })
    .refine((j) => j.judgePrompts.length === j.candidates.length, {
      message: "judgePrompts must have one entry per candidate",
      path: ["judgePrompts"],
    })
    .refine((j) => j.quotes === undefined || j.quotes.length === j.candidates.length, {
      message: "quotes must have one entry per candidate",
      path: ["quotes"],
    })
    .refine((j) => j.quoteEnd === undefined || j.quotes !== undefined, {
      message: "quoteEnd needs quotes (it ends them)",
      path: ["quoteEnd"],
    })
    .refine((j) => withinSequences(j.candidates.length * j.samples), {
      message: sequencesMessage,
      path: ["samples"],
    }),
);
export type JudgeJobBody = BodyOf<typeof JudgeJob>;

export const ScoresResult = defineMessage(
  "result.scores",
  z.object({
    jobId: z.string().min(1),
    iteration: count,
    purpose,
    prompt: z.string(),
    // model and endpoint (host:port) name an HTTP judge's model, so a result says who scored it.
    judge: z.object({
      impl: z.string(),
      instance: z.string(),
      weightsVersion: count.optional(),
      model: z.string().optional(),
      endpoint: z.string().optional(),
    }),
    // scores[c][s]: judge sample s of candidate c; null where the judgement did not parse.
    scores: z.array(z.array(z.number().nullable())),
    // texts[c][s]: what an LLM judge wrote for scores[c][s], so a tap shows how it judged.
    texts: z.array(z.array(z.string())).optional(),
    parseFailures: count,
    judgements: count,
    // A/B mode: the second judge's mean score per candidate, and how often the two agree.
    secondary: z.object({ impl: z.string(), means: z.array(z.number().nullable()) }).optional(),
  }),
);
export type ScoresResultBody = BodyOf<typeof ScoresResult>;

/** Summed log-probs of chosen and rejected responses under the frozen reference. */
export const ReferenceJob = defineMessage(
  "job.reference",
  z.object({
    iteration: count,
    weights: weightRef,
    // Token ids as the generator sampled them (prompt rendered by its format), never re-encoded.
    pairs: z
      .array(
        z.object({
          prompt: z.instanceof(Int32Array),
          chosen: z.instanceof(Int32Array),
          rejected: z.instanceof(Int32Array),
        }),
      )
      .min(1)
      .max(JOB_LIMITS.sequences / 2),
  }),
);
export type ReferenceJobBody = BodyOf<typeof ReferenceJob>;

export const RefLogProbsResult = defineMessage(
  "result.reflogprobs",
  z.object({
    jobId: z.string().min(1),
    iteration: count,
    referenceVersion: count,
    chosen: z.instanceof(Float64Array),
    rejected: z.instanceof(Float64Array),
  }),
);
export type RefLogProbsResultBody = BodyOf<typeof RefLogProbsResult>;

/**
 * Per-token log-probs of each sequence's completion under the frozen reference: the KL penalty
 * of PPO (ReFT) is paid token by token, so sums are not enough.
 */
export const LogProbsJob = defineMessage(
  "job.logprobs",
  z.object({
    iteration: count,
    weights: weightRef,
    // Ids as sampled (the prompt as the generator rendered it), never re-encoded.
    sequences: z
      .array(z.object({ prompt: z.instanceof(Int32Array), completion: z.instanceof(Int32Array) }))
      .min(1)
      .max(JOB_LIMITS.sequences),
  }),
);
export type LogProbsJobBody = BodyOf<typeof LogProbsJob>;

export const TokenLogProbsResult = defineMessage(
  "result.tokenlogprobs",
  z.object({
    jobId: z.string().min(1),
    iteration: count,
    referenceVersion: count,
    // logProbs[i][t]: completion token t of sequence i.
    logProbs: z.array(z.instanceof(Float32Array)),
  }),
);
export type TokenLogProbsResultBody = BodyOf<typeof TokenLogProbsResult>;

/** Progress of a stage of the run, for `srlm run`'s bars and for `srlm tap`. */
export const StageProgress = defineMessage(
  "stage.progress",
  z.object({
    stage: z.string().min(1),
    iteration: count,
    done: count,
    total: count,
    detail: z.string().optional(),
  }),
);
export type StageProgressBody = BodyOf<typeof StageProgress>;

/** The run has finished: where its report is, and the summary to print. */
export const RunDone = defineMessage(
  "run.done",
  z.object({
    ok: z.boolean(),
    // An operator's `srlm control stop`: the run ended early, as asked, not as a failure.
    stopped: z.boolean().optional(),
    report: z.string(),
    summary: z.string(),
    error: z.string().optional(),
  }),
);
export type RunDoneBody = BodyOf<typeof RunDone>;
