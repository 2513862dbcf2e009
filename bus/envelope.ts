// The envelope every bus message travels in, and the registry of message types. A message type is
// defined once (type name + zod body schema) with `defineMessage`; producers build envelopes with
// `makeEnvelope` (which validates the body, so a bad producer fails where the bug is) and consumers
// get a validated envelope or a reason from `decodeEnvelope`.
import { nuid } from "@nats-io/transport-node";
import { z } from "zod";
import { decode, encode } from "./codec.ts";

export const ENVELOPE_VERSION = 1;

export interface Producer {
  actor: string;
  instance: string;
}

export interface Envelope<B = unknown> {
  v: typeof ENVELOPE_VERSION;
  type: string;
  run: string;
  /** Unique message id; results derive their JetStream msgID from the job's id. */
  id: string;
  producer: Producer;
  /** Weight version of the policy that produced this message, where one did. */
  policyVersion?: number;
  /** Milliseconds since the epoch at creation. */
  ts: number;
  body: B;
}

export interface MessageDef<T extends string = string, S extends z.ZodType = z.ZodType> {
  type: T;
  schema: S;
}

export type BodyOf<D extends MessageDef> = z.output<D["schema"]>;

const registry = new Map<string, MessageDef>();

export function defineMessage<const T extends string, S extends z.ZodType>(
  type: T,
  schema: S,
): MessageDef<T, S> {
  if (registry.has(type)) throw new Error(`message type ${JSON.stringify(type)} is defined twice`);
  const def = { type, schema };
  registry.set(type, def);
  return def;
}

export function messageDef(type: string): MessageDef | undefined {
  return registry.get(type);
}

export function messageTypes(): string[] {
  return [...registry.keys()].sort();
}

const envelopeSchema = z.object({
  v: z.literal(ENVELOPE_VERSION),
  type: z.string().min(1),
  run: z.string().regex(/^[A-Za-z0-9_-]+$/),
  id: z.string().min(1),
  producer: z.object({ actor: z.string().min(1), instance: z.string().min(1) }),
  policyVersion: z.number().int().nonnegative().optional(),
  ts: z.number(),
  body: z.unknown(),
});

export interface EnvelopeContext {
  run: string;
  producer: Producer;
  policyVersion?: number;
  /** Defaults to a fresh nuid. */
  id?: string;
}

export function makeEnvelope<D extends MessageDef>(
  type: D | D["type"],
  body: z.input<D["schema"]>,
  ctx: EnvelopeContext,
): Envelope<BodyOf<D>> {
  const name = typeof type === "string" ? type : type.type;
  const def = registry.get(name);
  if (!def)
    throw new Error(
      `makeEnvelope: unknown message type ${JSON.stringify(name)}; define it in bus/messages.ts`,
    );
  const parsed = def.schema.safeParse(body);
  if (!parsed.success) {
    throw new Error(`makeEnvelope: body of ${name} is invalid: ${z.prettifyError(parsed.error)}`);
  }
  const env: Envelope<BodyOf<D>> = {
    v: ENVELOPE_VERSION,
    type: name,
    run: ctx.run,
    id: ctx.id ?? nuid.next(),
    producer: { actor: ctx.producer.actor, instance: ctx.producer.instance },
    ts: Date.now(),
    body: parsed.data as BodyOf<D>,
  };
  if (ctx.policyVersion !== undefined) env.policyVersion = ctx.policyVersion;
  return env;
}

export function encodeEnvelope(env: Envelope): Uint8Array {
  return encode(env);
}

/** `msg`'s body as `def`'s type, or null when `msg` is of another type. decodeEnvelope validated
 * the body against its own type's schema, so a matching type is the only check left. */
export function bodyOf<D extends MessageDef>(def: D, msg: Envelope): BodyOf<D> | null {
  return msg.type === def.type ? (msg.body as BodyOf<D>) : null;
}

export type DecodeResult = { ok: true; msg: Envelope } | { ok: false; reason: string };

/** Decodes and validates envelope and body. Never throws: a bad message is a value, not a crash. */
export function decodeEnvelope(subject: string, bytes: Uint8Array): DecodeResult {
  let raw: unknown;
  try {
    raw = decode(bytes);
  } catch (err) {
    return { ok: false, reason: `bad msgpack on ${subject}: ${(err as Error).message}` };
  }
  const env = envelopeSchema.safeParse(raw);
  if (!env.success) {
    return { ok: false, reason: `bad envelope on ${subject}: ${z.prettifyError(env.error)}` };
  }
  const msg = env.data as Envelope;
  const subjectRun = subject.startsWith("srlm.") ? subject.split(".")[1] : undefined;
  if (subjectRun !== undefined && subjectRun !== msg.run) {
    return { ok: false, reason: `envelope of run ${msg.run} arrived on ${subject} (run ${subjectRun})` };
  }
  const def = registry.get(msg.type);
  if (!def) return { ok: false, reason: `unknown message type ${JSON.stringify(msg.type)} on ${subject}` };
  const body = def.schema.safeParse(msg.body);
  if (!body.success) {
    return { ok: false, reason: `bad ${msg.type} body on ${subject}: ${z.prettifyError(body.error)}` };
  }
  msg.body = body.data;
  return { ok: true, msg };
}
