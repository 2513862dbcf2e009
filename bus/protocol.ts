// The one typed table of the run's work: for each queue, the job the trainer enqueues, the result
// that answers it, the result subject it comes back on and the role allowed to answer. Publishing
// and consuming go through it, so a job's and a result's types follow from the queue's name, and a
// message of another type on a queue is refused where it arrives.
import type { BodyOf, Envelope, MessageDef } from "./envelope.ts";
import {
  CandidatesResult,
  JudgeJob,
  LogProbsJob,
  PromptsJob,
  PromptsResult,
  ReferenceJob,
  RefLogProbsResult,
  SamplesJob,
  ScoresResult,
  TokenLogProbsResult,
} from "./messages.ts";
import type { QueueName, ResultKind } from "./subjects.ts";

export const PROTOCOL = {
  prompts: { job: PromptsJob, result: PromptsResult, resultKind: "prompts", answeredBy: "generator" },
  samples: { job: SamplesJob, result: CandidatesResult, resultKind: "candidates", answeredBy: "generator" },
  judge: { job: JudgeJob, result: ScoresResult, resultKind: "scores", answeredBy: "judge" },
  reference: {
    job: ReferenceJob,
    result: RefLogProbsResult,
    resultKind: "reflogprobs",
    answeredBy: "reference",
  },
  logprobs: {
    job: LogProbsJob,
    result: TokenLogProbsResult,
    resultKind: "tokenlogprobs",
    answeredBy: "reference",
  },
} as const satisfies Record<
  QueueName,
  { job: MessageDef; result: MessageDef; resultKind: ResultKind; answeredBy: string }
>;

type Row<Q extends QueueName> = (typeof PROTOCOL)[Q];
export type JobOf<Q extends QueueName> = BodyOf<Row<Q>["job"]>;
export type ResultOf<Q extends QueueName> = BodyOf<Row<Q>["result"]>;

/** The queue whose results arrive as `kind`. */
export function queueOfResult(kind: ResultKind): QueueName {
  for (const [queue, row] of Object.entries(PROTOCOL)) if (row.resultKind === kind) return queue as QueueName;
  throw new Error(`no queue answers with results of kind ${JSON.stringify(kind)}`);
}

const finite = (xs: ArrayLike<number>) => Array.prototype.every.call(xs, Number.isFinite);

/**
 * Why `result` cannot answer `job`, or null: a schema-valid result may still have the wrong
 * number of entries, or numbers a trainer must never train on (NaN log-probs, scores out of range).
 */
export function resultProblem<Q extends QueueName>(
  queue: Q,
  job: JobOf<Q>,
  result: ResultOf<Q>,
): string | null {
  switch (queue) {
    case "prompts": {
      const [j, r] = [job as JobOf<"prompts">, result as ResultOf<"prompts">];
      return r.texts.length === j.inputs.length
        ? null
        : `${r.texts.length} texts for ${j.inputs.length} prompt-writing prompts`;
    }
    case "samples": {
      const [j, r] = [job as JobOf<"samples">, result as ResultOf<"samples">];
      if (r.results.length !== j.prompts.length)
        return `${r.results.length} results for ${j.prompts.length} prompts`;
      for (const [i, p] of r.results.entries()) {
        if (p.prompt !== j.prompts[i]) return `result ${i} answers another prompt than the job's`;
        if (p.responses.length !== j.n) return `prompt ${i} has ${p.responses.length} responses, not ${j.n}`;
        for (const x of p.responses) {
          if (x.logProbs.length !== x.tokens.length)
            return `prompt ${i}: log-probs and tokens differ in length`;
          if (!finite(x.logProbs)) return `prompt ${i}: non-finite behaviour log-prob`;
        }
      }
      return null;
    }
    case "judge": {
      const [j, r] = [job as JobOf<"judge">, result as ResultOf<"judge">];
      if (r.scores.length !== j.candidates.length)
        return `${r.scores.length} score lists for ${j.candidates.length} candidates`;
      for (const [c, samples] of r.scores.entries()) {
        if (samples.length !== j.samples)
          return `candidate ${c} has ${samples.length} judgements, not ${j.samples}`;
        for (const x of samples)
          if (x !== null && !(Number.isFinite(x) && x >= 0 && x <= 5))
            return `candidate ${c}: score ${x} outside 0..5`;
      }
      return null;
    }
    case "reference": {
      const [j, r] = [job as JobOf<"reference">, result as ResultOf<"reference">];
      const n = j.pairs.length;
      if (r.chosen.length !== n || r.rejected.length !== n)
        return `${r.chosen.length}/${r.rejected.length} log-probs for ${n} pairs`;
      if (!finite(r.chosen) || !finite(r.rejected)) return "non-finite reference log-prob";
      return null;
    }
    case "logprobs": {
      const [j, r] = [job as JobOf<"logprobs">, result as ResultOf<"logprobs">];
      if (r.logProbs.length !== j.sequences.length)
        return `${r.logProbs.length} log-prob rows for ${j.sequences.length} sequences`;
      for (const [i, row] of r.logProbs.entries()) {
        if (row.length !== j.sequences[i].completion.length)
          return `sequence ${i}: ${row.length} log-probs for ${j.sequences[i].completion.length} tokens`;
        if (!finite(row)) return `sequence ${i}: non-finite reference log-prob`;
      }
      return null;
    }
  }
  return `unknown queue ${JSON.stringify(queue)}`;
}

/** A job envelope as a handler of `queue` receives it. */
export type JobEnvelope<Q extends QueueName> = Envelope<JobOf<Q>>;
