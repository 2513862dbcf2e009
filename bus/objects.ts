// Payloads larger than a message (weights, big batches) go through the JetStream Object Store,
// which chunks them below the server's max_payload; messages carry only a BlobRef. The ref names
// the exact bytes by SHA-256, so a reader never trains or samples with a half-written or replaced
// object without noticing.
import { createHash } from "node:crypto";
import type { JetStreamClient } from "@nats-io/jetstream";
import { type ObjectStore, Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";

export interface BlobRef {
  bucket: string;
  name: string;
  /** `sha256:<hex>` of the bytes. */
  digest: string;
  bytes: number;
}

export function sha256Digest(bytes: Uint8Array): string {
  return `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
}

const BUCKET = /^[A-Za-z0-9_-]+$/;

async function bucketOf(
  nc: NatsConnection | JetStreamClient,
  bucket: string,
  create: boolean,
  replicas = 1,
): Promise<ObjectStore> {
  if (!BUCKET.test(bucket)) {
    throw new Error(
      `object store bucket ${JSON.stringify(bucket)} is invalid: use letters, digits, '_' and '-'`,
    );
  }
  const objm = new Objm(nc);
  if (!create) return objm.open(bucket);
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5)
    throw new Error(`object store ${bucket}: replicas is ${replicas}; JetStream keeps 1 to 5 copies`);
  try {
    return await objm.create(bucket, { replicas });
  } catch (err) {
    throw new Error(
      `could not create object store ${bucket} with ${replicas} replica(s) (nats.replicas): ${(err as Error).message}`,
    );
  }
}

export async function putBlob(
  nc: NatsConnection | JetStreamClient,
  bucket: string,
  name: string,
  bytes: Uint8Array,
  opts: { replicas?: number } = {},
): Promise<BlobRef> {
  const store = await bucketOf(nc, bucket, true, opts.replicas);
  await store.putBlob({ name }, bytes);
  return { bucket, name, digest: sha256Digest(bytes), bytes: bytes.byteLength };
}

/** Fetches the bytes a ref names; throws if the object is missing or is not the same bytes any more. */
export async function getBlob(
  nc: NatsConnection | JetStreamClient,
  ref: Pick<BlobRef, "bucket" | "name" | "digest">,
): Promise<Uint8Array> {
  let store: ObjectStore;
  try {
    store = await bucketOf(nc, ref.bucket, false);
  } catch (err) {
    throw new Error(`object store bucket ${ref.bucket} cannot be opened: ${(err as Error).message}`);
  }
  const bytes = await store.getBlob(ref.name);
  if (!bytes) throw new Error(`object ${ref.name} is not in bucket ${ref.bucket}`);
  const digest = sha256Digest(bytes);
  if (digest !== ref.digest) {
    throw new Error(
      `object ${ref.bucket}/${ref.name} does not match its ref: digest ${digest}, expected ${ref.digest} ` +
        "(it was replaced or corrupted since the ref was made)",
    );
  }
  return bytes;
}

/** The bytes stored under `name` whatever they are, or null when the bucket or the object is missing
 * (for objects found by name, not named by a ref: a resume point). */
export async function getNamedBlob(
  nc: NatsConnection | JetStreamClient,
  bucket: string,
  name: string,
): Promise<Uint8Array | null> {
  let store: ObjectStore;
  try {
    store = await bucketOf(nc, bucket, false);
  } catch {
    return null;
  }
  return store.getBlob(name);
}

export async function deleteBlob(
  nc: NatsConnection | JetStreamClient,
  ref: Pick<BlobRef, "bucket" | "name">,
): Promise<void> {
  const store = await bucketOf(nc, ref.bucket, false);
  await store.delete(ref.name);
}
