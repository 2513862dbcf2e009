// Weight versions as an actor sees them: fetched from the object store by ref, verified by digest,
// kept for the few versions in use (the newest for sampling, a frozen one for the reference), and
// the newest announced version tracked for streaming jobs that ask for "the latest".
//
// Nothing here trusts a version number alone. A policy is cached under the exact bytes it came
// from (bucket, name, digest), so a job naming "version 2" in another bucket cannot stand in for
// the run's version 2. An announced version becomes "latest" only once its object was fetched and
// verified; an announcement that fails is dead-lettered and never tried again.
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { acceptMessage, type DeadLetterContext, deadLetter } from "../bus/dead.ts";
import { type WeightRef, WeightsPublished } from "../bus/messages.ts";
import { getBlob } from "../bus/objects.ts";
import { subjects } from "../bus/subjects.ts";
import { disposePolicy, type Policy, policyFromBlob } from "./policy.ts";

const DIGEST = /^sha256:[0-9a-f]{64}$/;
/** Announcements newer than the verified latest that are kept to try; older ones are dropped. */
const MAX_CANDIDATES = 16;

interface Candidate {
  ref: WeightRef;
  subject: string;
  raw: Uint8Array;
}

const keyOf = (ref: WeightRef) => `${ref.bucket}/${ref.name}@${ref.digest}`;
const describe = (ref: WeightRef) => `v${ref.version} (${ref.bucket}/${ref.name}, ${ref.digest})`;

export class WeightCache {
  // Insertion order is recency of use: get() moves a hit to the end, eviction takes the front.
  private policies = new Map<string, Promise<Policy>>();
  private verified: WeightRef | null = null;
  private candidates: Candidate[] = [];
  private promoting: Promise<void> | null = null;
  private dl?: DeadLetterContext;
  private sub?: Subscription;

  constructor(
    private nc: NatsConnection,
    private log: Logger,
    private keep = 3,
  ) {}

  /** Follows srlm.<run>.weights so `latest()` knows the newest version without a restart. */
  follow(dl: DeadLetterContext): void {
    this.dl = dl;
    this.sub = this.nc.subscribe(subjects(dl.run).weights, {
      callback: (_err, m) => {
        const msg = acceptMessage(dl, m.subject, m.data, WeightsPublished);
        if (!msg) return;
        const { body } = msg;
        const ref = { version: body.version, bucket: body.bucket, name: body.name, digest: body.digest };
        if (this.verified && ref.version <= this.verified.version) return;
        this.candidates.push({ ref, subject: m.subject, raw: m.data.slice() });
        this.candidates.sort((a, b) => a.ref.version - b.ref.version);
        if (this.candidates.length > MAX_CANDIDATES) this.candidates.shift();
        this.log.info({ version: ref.version }, "new weight version announced");
      },
    });
  }

  /** The policy a ref names, fetched once and verified: digest of the bytes and version inside. */
  async get(ref: WeightRef): Promise<Policy> {
    if (!DIGEST.test(ref.digest)) {
      throw new Error(
        `weights ${describe(ref)}: the digest is not of the form sha256:<64 hex digits>; refusing the ref`,
      );
    }
    const key = keyOf(ref);
    let policy = this.policies.get(key);
    if (policy) {
      this.policies.delete(key);
      this.policies.set(key, policy);
      return policy;
    }
    policy = getBlob(this.nc, ref).then((bytes) => {
      const p = policyFromBlob(bytes);
      if (p.version !== ref.version) {
        disposePolicy(p);
        throw new Error(
          `weights ${ref.bucket}/${ref.name} hold version ${p.version}, but the ref names version ${ref.version}`,
        );
      }
      this.log.info({ version: ref.version, bucket: ref.bucket, bytes: bytes.byteLength }, "loaded weights");
      return p;
    });
    this.policies.set(key, policy);
    policy.catch(() => {
      if (this.policies.get(key) === policy) this.policies.delete(key);
    });
    this.evict();
    return policy;
  }

  /** The newest announced version that verifies, or the given fallback when it is newer or none does. */
  async latest(fallback?: WeightRef): Promise<Policy> {
    await this.promote();
    const ref =
      this.verified && (!fallback || this.verified.version >= fallback.version) ? this.verified : fallback;
    if (!ref) throw new Error("no weights have been published yet on this run");
    return this.get(ref);
  }

  /** The version `latest()` stands on: the newest announced one that verified, if any. */
  latestVersion(): number | null {
    return this.verified?.version ?? null;
  }

  // Tries the announcements newer than the verified latest, newest first. Callers share one pass,
  // so a refused announcement is dead-lettered once however many jobs asked.
  private promote(): Promise<void> {
    this.promoting ??= (async () => {
      for (let c = this.candidates.pop(); c; c = this.candidates.pop()) {
        if (this.verified && c.ref.version <= this.verified.version) continue;
        try {
          await this.get(c.ref);
          this.verified = c.ref;
          this.log.info({ version: c.ref.version }, "latest weights verified");
        } catch (err) {
          const reason = `weights.published ${describe(c.ref)} refused: ${(err as Error).message}`;
          if (this.dl) deadLetter(this.dl, c.subject, c.raw, reason);
          else this.log.warn({ reason }, "weight announcement refused");
        }
      }
    })().finally(() => {
      this.promoting = null;
    });
    return this.promoting;
  }

  private evict(): void {
    while (this.policies.size > this.keep) {
      const [oldest, p] = this.policies.entries().next().value as [string, Promise<Policy>];
      this.policies.delete(oldest);
      p.then(disposePolicy, () => {});
    }
  }

  close(): void {
    this.sub?.unsubscribe();
  }
}
