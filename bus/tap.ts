// Watch a run's traffic: every message on a subject pattern as one JSON line. Live by default
// (core subscription, so it sees work jobs too); with `since` it replays the run's RESULTS and
// EVENTS streams from a time or sequence with ordered consumers, then keeps following them. Work
// jobs are not replayed: a work-queue stream allows no second consumer over the same jobs.
import { DeliverPolicy, type JetStreamClient, jetstream } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { dtypeOf } from "./codec.ts";
import { decodeEnvelope } from "./envelope.ts";
import "./messages.ts";
import { subjects } from "./subjects.ts";

export interface TapOptions {
  /** Print the bytes as base64 instead of decoding them. */
  raw?: boolean;
  /** Replay from a duration ago (`90s`, `5m`, `2h`, `1d`) or from a stream sequence (number). */
  since?: string | number;
  out: (line: string) => void;
}

const HEAD = 8;

function summarize(_key: string, value: unknown): unknown {
  const dtype = dtypeOf(value);
  if (dtype) {
    const arr = value as ArrayLike<number>;
    return {
      dtype,
      length: arr.length,
      head: Array.from({ length: Math.min(HEAD, arr.length) }, (_, i) => arr[i]),
    };
  }
  if (typeof value === "bigint") return value.toString();
  return value;
}

/** The line `tap` prints for one message. */
export function renderMessage(
  subject: string,
  data: Uint8Array,
  opts: { raw?: boolean; seq?: number } = {},
): string {
  const where = opts.seq === undefined ? { subject } : { subject, seq: opts.seq };
  if (opts.raw) return JSON.stringify({ ...where, raw: Buffer.from(data).toString("base64") });
  const decoded = decodeEnvelope(subject, data);
  if (!decoded.ok) return JSON.stringify({ ...where, invalid: decoded.reason, bytes: data.byteLength });
  return JSON.stringify({ ...where, ...decoded.msg }, summarize);
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 };

export function parseSince(since: string | number): { startSeq: number } | { startTime: Date } {
  if (typeof since === "number" || /^\d+$/.test(since)) {
    const seq = Number(since);
    if (!Number.isSafeInteger(seq) || seq < 1)
      throw new Error(`since: stream sequence must be >= 1, got ${since}`);
    return { startSeq: seq };
  }
  const m = DURATION.exec(since.trim());
  if (!m)
    throw new Error(`since: ${JSON.stringify(since)} is neither a duration (90s, 5m, 2h, 1d) nor a sequence`);
  return { startTime: new Date(Date.now() - Number(m[1]) * UNIT_MS[m[2]]) };
}

/** Whether every subject matching `a` also matches `b` (NATS wildcards `*` and `>`). */
export function subjectSubset(a: string, b: string): boolean {
  const at = a.split(".");
  const bt = b.split(".");
  for (let i = 0; i < bt.length; i++) {
    if (bt[i] === ">") return i < at.length;
    if (i >= at.length) return false;
    if (at[i] === ">") return false;
    if (bt[i] !== "*" && bt[i] !== at[i]) return false;
  }
  return at.length === bt.length;
}

/** The filter that selects `pattern` inside a stream subject, or undefined when they do not meet. */
function narrow(pattern: string, streamSubject: string): string | undefined {
  if (subjectSubset(pattern, streamSubject)) return pattern;
  if (subjectSubset(streamSubject, pattern)) return streamSubject;
  return undefined;
}

function runOf(pattern: string): string {
  const [root, run] = pattern.split(".");
  if (root !== "srlm" || !run || run === "*" || run === ">") {
    throw new Error(`tap --since needs a pattern inside one run (srlm.<run>.…), got ${pattern}`);
  }
  return run;
}

export async function tap(
  nc: NatsConnection,
  pattern: string,
  opts: TapOptions,
): Promise<() => Promise<void>> {
  if (opts.since === undefined) {
    const sub = nc.subscribe(pattern, {
      callback: (err, msg) => {
        if (err) return;
        opts.out(renderMessage(msg.subject, msg.data, { raw: opts.raw }));
      },
    });
    return async () => {
      sub.unsubscribe();
    };
  }
  const s = subjects(runOf(pattern));
  const start = parseSince(opts.since);
  const js: JetStreamClient = jetstream(nc);
  const streams: Array<[string, string[]]> = [
    [s.resultStream, [s.resultAll]],
    [s.eventStream, [s.weights, s.metrics, s.events, s.deadAll, s.control]],
  ];
  const closers: Array<() => Promise<unknown>> = [];
  for (const [stream, streamSubjects] of streams) {
    for (const subj of streamSubjects) {
      const filter = narrow(pattern, subj);
      if (!filter) continue;
      const consumer = await js.consumers.get(stream, {
        filter_subjects: filter,
        ...("startSeq" in start
          ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: start.startSeq }
          : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: start.startTime.toISOString() }),
      });
      const messages = await consumer.consume({
        callback: (m) => opts.out(renderMessage(m.subject, m.data, { raw: opts.raw, seq: m.seq })),
      });
      closers.push(() => messages.close());
    }
  }
  return async () => {
    await Promise.all(closers.map((c) => c()));
  };
}
