// Who may do what on a run's bus: one NATS user per role, each allowed only the subjects its work
// needs. This table is the one truth behind both the embedded server `srlm run` / `srlm up` start
// and the config `srlm nats-config` writes for a user's own server, so the two cannot drift.
//
// What the table protects: only the trainer creates streams and consumers, enqueues work,
// publishes weights (and writes their object store) and reads results; each worker pulls only its
// own queues, answers only on its own result subjects and dead-letters only under its own name, so
// a judge cannot forge candidates, fail a generator's jobs or announce weights. The subjects were
// found by running every role against a server with these permissions and reading the violations
// it logged (test/bus/permissions.test.ts and the embedded `srlm run` test keep them honest).
import { createUser } from "@nats-io/nkeys";
import { PROTOCOL } from "./protocol.ts";
import { QUEUES, type QueueName, subjects } from "./subjects.ts";

export const ROLES = ["trainer", "generator", "judge", "reference", "reader", "operator"] as const;
export type Role = (typeof ROLES)[number];
export const WORKER_ROLES = ["generator", "judge", "reference"] as const;
export type WorkerRole = (typeof WORKER_ROLES)[number];

export function isRole(name: string): name is Role {
  return (ROLES as readonly string[]).includes(name);
}

export interface RolePermissions {
  publish: string[];
  subscribe: string[];
  /** What the role is for, in the README's and `srlm nats-config`'s words. */
  purpose: string;
}

/** The object store bucket holding a run's weight versions. */
export function weightsBucket(run: string): string {
  return `srlm-${run}-weights`;
}

/**
 * Each role's own inbox prefix. Replies (JetStream acks, API answers, service responses) come back
 * on the requester's inbox; with one shared `_INBOX.>` any user could read every other user's.
 */
export function inboxPrefix(run: string, role: Role): string {
  return `_INBOX_${subjects(run).run}_${role}`;
}

/** The queues a worker role pulls from: the ones bus/protocol.ts says it answers. */
export function queuesOf(role: Role): QueueName[] {
  return QUEUES.filter((q) => PROTOCOL[q].answeredBy === role);
}

/** Dead letters go out under the publisher's role, so one role cannot fail another's jobs. */
export function deadSubjectOf(run: string, actor: string): string {
  return subjects(run).deadOf(actor);
}

function objectStoreRead(run: string): string[] {
  const stream = `OBJ_${weightsBucket(run)}`;
  return [
    `$JS.API.STREAM.INFO.${stream}`,
    `$JS.API.STREAM.MSG.GET.${stream}`,
    `$JS.API.DIRECT.GET.${stream}.>`,
    // An object's chunks are read through an ephemeral ordered consumer.
    `$JS.API.CONSUMER.CREATE.${stream}`,
    `$JS.API.CONSUMER.CREATE.${stream}.>`,
    `$JS.API.CONSUMER.DELETE.${stream}.>`,
    `$JS.API.CONSUMER.MSG.NEXT.${stream}.>`,
    `$JS.FC.${stream}.>`,
  ];
}

/** The permission table of one run. */
export function permissionTable(run: string): Record<Role, RolePermissions> {
  const s = subjects(run);
  const inbox = (role: Role) => `${inboxPrefix(run, role)}.>`;
  const worker = (role: WorkerRole): RolePermissions => {
    const queues = queuesOf(role);
    return {
      purpose: `pulls ${queues.map((q) => s.work(q)).join(", ")}; answers on ${queues
        .map((q) => s.result(PROTOCOL[q].resultKind))
        .join(", ")}`,
      publish: [
        "$JS.API.INFO",
        ...queues.flatMap((q) => [
          `$JS.API.CONSUMER.INFO.${s.workStream}.${s.workConsumer(q)}`,
          `$JS.API.CONSUMER.MSG.NEXT.${s.workStream}.${s.workConsumer(q)}`,
          `$JS.ACK.${s.workStream}.${s.workConsumer(q)}.>`,
          s.result(PROTOCOL[q].resultKind),
        ]),
        `$JS.API.STREAM.INFO.${s.workStream}`,
        ...objectStoreRead(run),
        s.events,
        s.metrics,
        s.deadOf(role),
      ],
      subscribe: [inbox(role), s.weights, "$SRV.>", `srlm.${run}.svc.${role}.>`],
    };
  };
  const reader: RolePermissions = {
    purpose:
      "reads: live subjects (srlm tap), replays of the RESULTS and EVENTS streams, srlm status, " +
      "and the published weights (srlm serve --run)",
    publish: [
      "$JS.API.INFO",
      `$JS.API.STREAM.INFO.*`,
      `$JS.API.CONSUMER.INFO.*.*`,
      ...[s.resultStream, s.eventStream].flatMap((stream) => [
        `$JS.API.CONSUMER.CREATE.${stream}`,
        `$JS.API.CONSUMER.CREATE.${stream}.>`,
        `$JS.API.CONSUMER.DELETE.${stream}.>`,
        `$JS.API.CONSUMER.MSG.NEXT.${stream}.>`,
        `$JS.FC.${stream}.>`,
      ]),
      // Service discovery (`srlm status`) asks every actor on these subjects.
      "$SRV.>",
      // `srlm serve --run` follows the weights: the newest announcement, then the blob it names.
      `$JS.API.STREAM.MSG.GET.${s.eventStream}`,
      ...objectStoreRead(run),
    ],
    subscribe: [inbox("reader"), s.all],
  };
  return {
    trainer: {
      purpose:
        "owns the run: creates streams and consumers, enqueues work, reads results, publishes weights " +
        "and writes their object store; also the admin user (the stream setup of `srlm run` and `srlm up`)",
      publish: [s.all, "$JS.API.>", "$JS.ACK.>", "$JS.FC.>", `$O.${weightsBucket(run)}.>`, "$SRV.>"],
      subscribe: [
        inbox("trainer"),
        s.all,
        `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${s.workStream}.*`,
        "$SRV.>",
      ],
    },
    generator: worker("generator"),
    judge: worker("judge"),
    reference: worker("reference"),
    reader,
    operator: {
      purpose: `a reader that may also send ${s.control} (srlm control pause | resume | stop)`,
      publish: [...reader.publish, s.control],
      subscribe: [inbox("operator"), s.all],
    },
  };
}

export interface RoleKey {
  /** The user's public nkey (`U...`): what a server config holds. */
  publicKey: string;
  /** The seed (`SU...`): the secret the role's processes sign with. */
  seed: string;
}

/** A fresh nkey user per role: the server config holds only the public halves. */
export function generateRoleKeys(): Record<Role, RoleKey> {
  const keys = {} as Record<Role, RoleKey>;
  for (const role of ROLES) {
    const kp = createUser();
    keys[role] = { publicKey: kp.getPublicKey(), seed: new TextDecoder().decode(kp.getSeed()) };
  }
  return keys;
}

/** The account a run's users live in: JetStream assets and `$SRV` discovery stay inside it. */
export function accountName(run: string): string {
  return `SRLM_${subjects(run).run}`;
}

const quote = (s: string) => JSON.stringify(s);

/**
 * The `accounts` block of a nats-server config for one run: one account with JetStream, one nkey
 * user per role with that role's permissions. Workers and the trainer answer service-discovery
 * requests, hence `allow_responses` (a reply to a request they received, nothing else).
 */
export function accountsConfig(run: string, publicKeys: Record<Role, string>): string {
  const table = permissionTable(run);
  const list = (xs: string[], indent: string) =>
    `[\n${xs.map((x) => `${indent}  ${quote(x)}`).join(",\n")}\n${indent}]`;
  const users = ROLES.map((role) => {
    const p = table[role];
    const responds = role !== "reader" && role !== "operator";
    return [
      `      # ${role}: ${p.purpose}`,
      `      {`,
      `        nkey: ${quote(publicKeys[role])}`,
      `        permissions: {`,
      `          publish: { allow: ${list(p.publish, "          ")} }`,
      `          subscribe: { allow: ${list(p.subscribe, "          ")} }`,
      ...(responds ? [`          allow_responses: true`] : []),
      `        }`,
      `      }`,
    ].join("\n");
  });
  return [
    `accounts: {`,
    `  ${quote(accountName(run))}: {`,
    `    jetstream: enabled`,
    `    users: [`,
    users.join("\n"),
    `    ]`,
    `  }`,
    `}`,
  ].join("\n");
}
