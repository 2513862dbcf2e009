// The NATS connection every actor and CLI command uses: auth from options, reconnects forever with
// jittered backoff once connected, and a clear message when nothing is listening at start.
import { readFileSync } from "node:fs";
import { fromSeed } from "@nats-io/nkeys";
import {
  type Authenticator,
  connect,
  credsAuthenticator,
  type NatsConnection,
  type NodeConnectionOptions,
  nkeyAuthenticator,
} from "@nats-io/transport-node";

export interface BusOptions {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
  /** NKey seed (the `SU...` string). */
  nkeySeed?: string;
  /** Path to a .creds file (JWT + seed). */
  credsFile?: string;
  /** PEM file paths. */
  tls?: { ca?: string; cert?: string; key?: string };
  /** Client name shown in server monitoring. */
  name?: string;
  /** Subject prefix of this client's reply inboxes (bus/permissions.ts gives each role its own). */
  inboxPrefix?: string;
}

export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";

const RECONNECT_BASE_MS = 250;
const RECONNECT_MAX_MS = 10_000;

/**
 * Backoff between reconnect attempts, with jitter: the wait grows with how long the connection has
 * been down (at least RECONNECT_BASE_MS, at most RECONNECT_MAX_MS), so attempts come quickly after
 * a blip and ever more rarely through a long outage. nats.js asks for the wait again each time its
 * dial loop wakes up, not once per dial, so a wait that grew with each call would climb far past
 * the time a restarted server takes to come back; one that follows the clock does not.
 */
export function makeReconnectDelay(now: () => number = Date.now): { next: () => number; reset: () => void } {
  let downSince: number | null = null;
  return {
    next: () => {
      const t = now();
      downSince ??= t;
      const cap = Math.min(RECONNECT_MAX_MS, Math.max(RECONNECT_BASE_MS, t - downSince));
      return Math.round(cap / 2 + (Math.random() * cap) / 2);
    },
    reset: () => {
      downSince = null;
    },
  };
}

function readFileOption(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new Error(`bus: cannot read ${what} file ${path}: ${(err as Error).message}`);
  }
}

export function connectionOptions(opts: BusOptions, reconnectDelay: () => number): NodeConnectionOptions {
  if (opts.servers.length === 0)
    throw new Error("bus: no NATS server given; pass --nats URL or set SRLM_NATS_URL");
  const authenticators: Authenticator[] = [];
  if (opts.nkeySeed) authenticators.push(nkeyAuthenticator(new TextEncoder().encode(opts.nkeySeed)));
  if (opts.credsFile) {
    authenticators.push(
      credsAuthenticator(new TextEncoder().encode(readFileOption(opts.credsFile, "credentials"))),
    );
  }
  const co: NodeConnectionOptions = {
    servers: opts.servers,
    name: opts.name,
    maxReconnectAttempts: -1,
    reconnectDelayHandler: reconnectDelay,
    // Fail fast at start (the caller reports it); only a connection that once worked retries forever.
    waitOnFirstConnect: false,
    timeout: 5_000,
  };
  if (opts.inboxPrefix !== undefined) co.inboxPrefix = opts.inboxPrefix;
  if (opts.user !== undefined) {
    co.user = opts.user;
    co.pass = opts.pass;
  }
  if (opts.token !== undefined) co.token = opts.token;
  if (authenticators.length > 0) co.authenticator = authenticators;
  if (opts.tls) {
    co.tls = {};
    if (opts.tls.ca) co.tls.caFile = opts.tls.ca;
    if (opts.tls.cert) co.tls.certFile = opts.tls.cert;
    if (opts.tls.key) co.tls.keyFile = opts.tls.key;
  }
  return co;
}

export async function connectBus(opts: BusOptions): Promise<NatsConnection> {
  const delay = makeReconnectDelay();
  const co = connectionOptions(opts, delay.next);
  let nc: NatsConnection;
  try {
    nc = await connect(co);
  } catch (err) {
    const urls = opts.servers.join(", ");
    if (isAuthFailure(err)) {
      throw new Error(
        `NATS at ${urls} refused ${who(opts)}: authorization failure (${(err as Error).message}). ` +
          "Check nats.user / nats.pass, nats.token, nats.nkeySeed or nats.credsFile " +
          "(SRLM_NATS__USER, SRLM_NATS__PASS, ...) against the server's accounts.",
      );
    }
    throw new Error(
      `cannot reach NATS at ${urls}: ${(err as Error).message}. ` +
        "Start a JetStream server (`nats-server -js`), or point srlm at one with --nats URL or SRLM_NATS_URL.",
    );
  }
  // The first dial asked for a wait too; the clock of an outage starts at its disconnect.
  delay.reset();
  void resetOnReconnect(nc, delay.reset);
  return nc;
}

async function resetOnReconnect(nc: NatsConnection, reset: () => void): Promise<void> {
  for await (const s of nc.status()) {
    if (s.type === "reconnect") reset();
  }
}

function isAuthFailure(err: unknown): boolean {
  for (let e = err as { name?: string; cause?: unknown } | undefined; e; e = e.cause as typeof e) {
    if (e.name === "AuthorizationError" || e.name === "UserAuthenticationExpiredError") return true;
  }
  return false;
}

// Names the identity tried, never the secret itself.
function who(opts: BusOptions): string {
  if (opts.user !== undefined) return `user ${JSON.stringify(opts.user)}`;
  if (opts.credsFile) return `the credentials in ${opts.credsFile}`;
  if (opts.nkeySeed) return `nkey user ${nkeyPublic(opts.nkeySeed)}`;
  if (opts.token !== undefined) return "the configured token";
  return "an anonymous connection (no user, token, nkey or credentials configured)";
}

// The public half names the user in errors; the seed itself is never shown.
function nkeyPublic(seed: string): string {
  try {
    return fromSeed(new TextEncoder().encode(seed.trim())).getPublicKey();
  } catch {
    return "(a malformed nkey seed)";
  }
}
