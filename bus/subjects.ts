// The one place that names subjects. Everything of a run lives under `srlm.<run>.`, so a run can be
// tapped (`srlm.<run>.>`), permissioned and deleted as a unit.

export const QUEUES = ["prompts", "samples", "judge", "reference", "logprobs"] as const;
export type QueueName = (typeof QUEUES)[number];

export const RESULT_KINDS = ["prompts", "candidates", "scores", "reflogprobs", "tokenlogprobs"] as const;
export type ResultKind = (typeof RESULT_KINDS)[number];

const RUN_ID = /^[A-Za-z0-9_-]+$/;

export function assertRunId(run: string): string {
  if (!RUN_ID.test(run)) {
    throw new Error(`invalid run id ${JSON.stringify(run)}: use letters, digits, '_' and '-' only`);
  }
  return run;
}

export function isQueueName(name: string): name is QueueName {
  return (QUEUES as readonly string[]).includes(name);
}

export function isResultKind(name: string): name is ResultKind {
  return (RESULT_KINDS as readonly string[]).includes(name);
}

export interface RunSubjects {
  run: string;
  /** `srlm.<run>.>`: everything of the run. */
  all: string;
  work(queue: QueueName): string;
  /** `srlm.<run>.work.>` */
  workAll: string;
  result(kind: ResultKind): string;
  /** `srlm.<run>.result.>` */
  resultAll: string;
  weights: string;
  metrics: string;
  events: string;
  /** `srlm.<run>.dead.>`: every dead letter of the run. */
  deadAll: string;
  /**
   * `srlm.<run>.dead.<actor>`: dead letters published by one actor role. Each role may publish only
   * under its own name (bus/permissions.ts), so a letter's subject says which role sent it.
   */
  deadOf(actor: string): string;
  control: string;
  /** JetStream stream holding the run's work queues. */
  workStream: string;
  /** JetStream stream holding the run's results. */
  resultStream: string;
  /** JetStream stream keeping weights, metrics, events, dead letters and control for replay. */
  eventStream: string;
  /** Durable consumer name for a work queue. */
  workConsumer(queue: QueueName): string;
}

export function subjects(run: string): RunSubjects {
  assertRunId(run);
  const root = `srlm.${run}`;
  return {
    run,
    all: `${root}.>`,
    work: (queue) => {
      if (!isQueueName(queue))
        throw new Error(`unknown work queue ${JSON.stringify(queue)}; known: ${QUEUES.join(", ")}`);
      return `${root}.work.${queue}`;
    },
    workAll: `${root}.work.>`,
    result: (kind) => {
      if (!isResultKind(kind)) {
        throw new Error(`unknown result kind ${JSON.stringify(kind)}; known: ${RESULT_KINDS.join(", ")}`);
      }
      return `${root}.result.${kind}`;
    },
    resultAll: `${root}.result.>`,
    weights: `${root}.weights`,
    metrics: `${root}.metrics`,
    events: `${root}.events`,
    deadAll: `${root}.dead.>`,
    deadOf: (actor) => {
      if (!RUN_ID.test(actor))
        throw new Error(`invalid actor name ${JSON.stringify(actor)} for a dead-letter subject`);
      return `${root}.dead.${actor}`;
    },
    control: `${root}.control`,
    // Stream names may not contain '.', '*', '>'; run ids are already restricted to [A-Za-z0-9_-].
    workStream: `SRLM_${run}_WORK`,
    resultStream: `SRLM_${run}_RESULTS`,
    eventStream: `SRLM_${run}_EVENTS`,
    workConsumer: (queue) => `srlm-${queue}`,
  };
}

export interface SubjectRow {
  subject: string;
  type: string;
  producer: string;
  consumer: string;
  carries: string;
}

/** The subject table the README prints. Message types name entries of the registry in messages.ts. */
export function describeSubjects(): SubjectRow[] {
  const r = "srlm.<run>";
  return [
    {
      subject: `${r}.work.prompts`,
      type: "job.prompts",
      producer: "trainer",
      consumer: "generator",
      carries: "prompt-writing jobs (few-shot self-instruct)",
    },
    {
      subject: `${r}.work.samples`,
      type: "job.samples",
      producer: "trainer",
      consumer: "generator",
      carries: "sampling jobs: prompts to answer N times",
    },
    {
      subject: `${r}.work.judge`,
      type: "job.judge",
      producer: "trainer",
      consumer: "judge",
      carries: "judging jobs: candidates to score, with their rendered judge prompts",
    },
    {
      subject: `${r}.work.reference`,
      type: "job.reference",
      producer: "trainer",
      consumer: "reference",
      carries: "token ids (prompt, chosen, rejected) to score under the frozen reference",
    },
    {
      subject: `${r}.result.prompts`,
      type: "result.prompts",
      producer: "generator",
      consumer: "trainer",
      carries: "new prompts written by the model",
    },
    {
      subject: `${r}.result.candidates`,
      type: "result.candidates",
      producer: "generator",
      consumer: "trainer",
      carries: "candidate answers with their sampled token ids, behaviour log-probs and policy version",
    },
    {
      subject: `${r}.result.scores`,
      type: "result.scores",
      producer: "judge",
      consumer: "trainer",
      carries: "judge scores per candidate, with what an LLM judge wrote",
    },
    {
      subject: `${r}.result.reflogprobs`,
      type: "result.reflogprobs",
      producer: "reference",
      consumer: "trainer",
      carries: "per-token reference log-probs",
    },
    {
      subject: `${r}.weights`,
      type: "weights.published",
      producer: "trainer",
      consumer: "generator, judge, reference",
      carries: "a new weight version in the object store: {version, bucket, name, digest, bytes}",
    },
    {
      subject: `${r}.metrics`,
      type: "metrics",
      producer: "any actor",
      consumer: "cli, dashboards",
      carries: "named numeric measurements",
    },
    {
      subject: `${r}.events`,
      type: "actor.event",
      producer: "any actor",
      consumer: "cli",
      carries: "actor lifecycle and progress (started, stopping, stopped, progress)",
    },
    {
      subject: `${r}.dead.<actor>`,
      type: "dead.letter",
      producer: "bus runtime",
      consumer: "operators (srlm tap)",
      carries:
        "messages that failed to decode or validate, or jobs that exhausted their deliveries, with the reason and raw bytes",
    },
    {
      subject: `${r}.control`,
      type: "control",
      producer: "cli (srlm control)",
      consumer: "trainer",
      carries: "pause, resume or stop the schedule at the next stage boundary",
    },
  ];
}
