// Weight versions as an actor sees them: fetched from the object store by ref, verified by digest,
// kept for the few versions in use (the newest for sampling, a frozen one for the reference), and
// the newest announced version tracked for streaming jobs that ask for "the latest".
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "pino";
import { decodeEnvelope } from "../bus/envelope.ts";
import type { WeightRef, WeightsPublishedBody } from "../bus/messages.ts";
import { getBlob } from "../bus/objects.ts";
import { subjects } from "../bus/subjects.ts";
import { disposePolicy, type Policy, policyFromBlob } from "./policy.ts";

export class WeightCache {
  private policies = new Map<number, Promise<Policy>>();
  private latestRef: WeightRef | null = null;
  private sub?: Subscription;

  constructor(
    private nc: NatsConnection,
    private log: Logger,
    private keep = 3,
  ) {}

  /** Follows srlm.<run>.weights so `latest()` knows the newest version without a restart. */
  follow(run: string): void {
    this.sub = this.nc.subscribe(subjects(run).weights, {
      callback: (_err, m) => {
        const decoded = decodeEnvelope(m.subject, m.data);
        if (!decoded.ok || decoded.msg.type !== "weights.published") return;
        const body = decoded.msg.body as WeightsPublishedBody;
        if (!this.latestRef || body.version > this.latestRef.version) {
          this.latestRef = {
            version: body.version,
            bucket: body.bucket,
            name: body.name,
            digest: body.digest,
          };
          this.log.info({ version: body.version }, "new weight version announced");
        }
      },
    });
  }

  async get(ref: WeightRef): Promise<Policy> {
    let policy = this.policies.get(ref.version);
    if (!policy) {
      policy = getBlob(this.nc, ref).then((bytes) => {
        const p = policyFromBlob(bytes);
        this.log.info({ version: ref.version, bytes: bytes.byteLength }, "loaded weights");
        return p;
      });
      this.policies.set(ref.version, policy);
      policy.catch(() => this.policies.delete(ref.version));
      await this.evict();
    }
    return policy;
  }

  /** The newest announced version, or the given fallback when none was announced yet. */
  async latest(fallback?: WeightRef): Promise<Policy> {
    const ref =
      this.latestRef && (!fallback || this.latestRef.version >= fallback.version) ? this.latestRef : fallback;
    if (!ref) throw new Error("no weights have been published yet on this run");
    return this.get(ref);
  }

  private async evict(): Promise<void> {
    const versions = [...this.policies.keys()].sort((a, b) => a - b);
    while (versions.length > this.keep) {
      const old = versions.shift()!;
      const p = this.policies.get(old);
      this.policies.delete(old);
      p?.then(disposePolicy, () => {});
    }
  }

  close(): void {
    this.sub?.unsubscribe();
  }
}
