// Dead letters: a message nobody can use is published to `srlm.<run>.dead.<actor>` with the reason and its
// raw bytes, counted, and logged. It is never dropped silently and never crashes the actor. It goes
// through JetStream so the run's EVENTS stream keeps it for later inspection (`srlm tap --since`).
import type { JetStreamClient } from "@nats-io/jetstream";
import {
  type BodyOf,
  bodyOf,
  decodeEnvelope,
  type Envelope,
  encodeEnvelope,
  type MessageDef,
  makeEnvelope,
  type Producer,
} from "./envelope.ts";
import type { Logger } from "./log.ts";
import { DeadLetter } from "./messages.ts";
import type { BusStats } from "./stats.ts";
import { subjects } from "./subjects.ts";

/** Raw bytes kept in a dead letter; the rest is cut so the dead letter itself fits max_payload. */
export const DEAD_LETTER_RAW_LIMIT = 64 * 1024;

export interface DeadLetterContext {
  js: JetStreamClient;
  run: string;
  producer: Producer;
  log?: Logger;
  stats?: BusStats;
}

export function deadLetter(ctx: DeadLetterContext, subject: string, raw: Uint8Array, reason: string): void {
  const cut = raw.byteLength > DEAD_LETTER_RAW_LIMIT;
  const fullReason = cut
    ? `${reason} (raw cut to ${DEAD_LETTER_RAW_LIMIT} of ${raw.byteLength} bytes)`
    : reason;
  if (ctx.stats) ctx.stats.deadLettered++;
  ctx.log?.warn({ subject, reason: fullReason, bytes: raw.byteLength }, "dead letter");
  try {
    const env = makeEnvelope(
      DeadLetter,
      {
        reason: fullReason,
        subject,
        raw: cut ? raw.slice(0, DEAD_LETTER_RAW_LIMIT) : raw.slice(),
        actor: ctx.producer.actor,
      },
      { run: ctx.run, producer: ctx.producer },
    );
    ctx.js
      .publish(subjects(ctx.run).deadOf(ctx.producer.actor), encodeEnvelope(env))
      .catch((err: Error) => failed(ctx, subject, err));
  } catch (err) {
    failed(ctx, subject, err as Error);
  }
}

function failed(ctx: DeadLetterContext, subject: string, err: Error): void {
  // The warn log already holds the reason; this says the bus copy is missing.
  ctx.log?.error({ subject, err: err.message }, "could not publish dead letter");
}

/**
 * The envelope of a message on a plain subscription (weights, control) if it decodes and is of
 * `type`; otherwise null, with the message dead-lettered as work queues do with theirs.
 */
export function acceptMessage<D extends MessageDef>(
  ctx: DeadLetterContext,
  subject: string,
  raw: Uint8Array,
  def: D,
): Envelope<BodyOf<D>> | null {
  const decoded = decodeEnvelope(subject, raw);
  if (!decoded.ok) {
    deadLetter(ctx, subject, raw, decoded.reason);
    return null;
  }
  const body = bodyOf(def, decoded.msg);
  if (body === null) {
    deadLetter(
      ctx,
      subject,
      raw,
      `message of type ${JSON.stringify(decoded.msg.type)} on ${subject}, which carries only ${def.type}`,
    );
    return null;
  }
  return { ...decoded.msg, body };
}
