// The per-role permission table against a real nats-server running the config srlm generates:
// no credentials, no entry; a judge can do a judge's work and nothing of another role's. Every
// refusal is checked next to an allowed twin on the same connection, so a test that passes
// because nothing works at all is not possible.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Objm } from "@nats-io/obj";
import type { NatsConnection } from "@nats-io/transport-node";
import { connectBus } from "../../bus/connect.ts";
import { deadLetter } from "../../bus/dead.ts";
import { getBlob, putBlob } from "../../bus/objects.ts";
import {
  accountsConfig,
  generateRoleKeys,
  inboxPrefix,
  permissionTable,
  ROLES,
  type Role,
  type RoleKey,
  weightsBucket,
} from "../../bus/permissions.ts";
import { bindWorkConsumer, ensureStreams } from "../../bus/queues.ts";
import { subjects } from "../../bus/subjects.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";

const RUN = "perm";
const s = subjects(RUN);
let server: NatsServerHandle;
let keys: Record<Role, RoleKey>;
const open: NatsConnection[] = [];

async function as(role: Role): Promise<NatsConnection> {
  const nc = await connectBus({
    servers: [server.url],
    nkeySeed: keys[role].seed,
    inboxPrefix: inboxPrefix(RUN, role),
    name: `test-${role}`,
  });
  open.push(nc);
  return nc;
}

const js = (nc: NatsConnection): JetStreamClient => jetstream(nc, { timeout: 3000 });
// The server judges subjects, not bodies: any bytes do.
const RAW = new TextEncoder().encode("forged?");

/** Collects what an admin subscriber sees on `subject` for a while. */
function watch(nc: NatsConnection, subject: string): { seen: string[] } {
  const seen: string[] = [];
  nc.subscribe(subject, {
    callback: (_e, m) => {
      seen.push(m.subject);
    },
  });
  return { seen };
}

before(async () => {
  keys = generateRoleKeys();
  const publicKeys = Object.fromEntries(ROLES.map((r) => [r, keys[r].publicKey])) as Record<Role, string>;
  server = await startNatsServer({ conf: accountsConfig(RUN, publicKeys) });
  const admin = await as("trainer");
  await ensureStreams(await jetstreamManager(admin), RUN);
});

after(async () => {
  for (const nc of open) await nc.close().catch(() => {});
  await server?.stop();
});

test("a client without credentials, or with a key the server does not know, is refused by name", async () => {
  await assert.rejects(
    connectBus({ servers: [server.url] }),
    /NATS at nats:\/\/127\.0\.0\.1:\d+ refused an anonymous connection.*authorization failure/,
  );
  const stranger = generateRoleKeys().judge;
  await assert.rejects(
    connectBus({ servers: [server.url], nkeySeed: stranger.seed }),
    new RegExp(`refused nkey user ${stranger.publicKey}: authorization failure`),
  );
  // The role's own key gets in.
  const judge = await as("judge");
  assert.equal(judge.isClosed(), false);
});

test("a judge may publish scores but not weights, control or another role's results", async () => {
  const admin = await as("trainer");
  const judge = js(await as("judge"));
  const seen = watch(admin, s.all);
  await admin.flush();
  for (const subject of [
    s.weights,
    s.control,
    s.result("candidates"),
    s.result("prompts"),
    s.work("judge"),
  ]) {
    await assert.rejects(
      judge.publish(subject, RAW),
      (err: Error) => {
        assert.match(
          err.message,
          new RegExp(`Permissions Violation for Publish to "${subject.replace(/\./g, "\\.")}"`),
        );
        return true;
      },
      `judge published on ${subject}`,
    );
  }
  const ack = await judge.publish(s.result("scores"), RAW, { msgID: "perm-1" });
  assert.equal(ack.stream, s.resultStream);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(seen.seen, [s.result("scores")], "only the allowed publish reached the admin subscriber");
});

test("a judge pulls and acks judge jobs, and cannot touch the generator's queues", async () => {
  const admin = await as("trainer");
  const judgeNc = await as("judge");
  const judge = js(judgeNc);
  await js(admin).publish(s.work("judge"), RAW);
  const consumer = await bindWorkConsumer(judge, RUN, "judge");
  const m = await consumer.next({ expires: 3000 });
  assert.ok(m, "the judge got its job");
  assert.equal(m.subject, s.work("judge"));
  await m.ackAck();
  const info = await (await jetstreamManager(admin)).consumers.info(s.workStream, s.workConsumer("judge"));
  assert.equal(info.num_ack_pending, 0);
  assert.equal(info.num_pending, 0);

  await assert.rejects(
    bindWorkConsumer(judge, RUN, "samples"),
    /Permissions Violation for Publish to "\$JS\.API\.CONSUMER\.INFO\.SRLM_perm_WORK\.srlm-samples"/,
  );
  const judgeJsm = await jetstreamManager(judgeNc, { timeout: 3000 });
  await assert.rejects(
    judgeJsm.streams.add({ name: "ROGUE", subjects: ["rogue.>"] }),
    /Permissions Violation for Publish to "\$JS\.API\.STREAM\.CREATE\.ROGUE"/,
  );
  await assert.rejects(
    judgeJsm.consumers.add(s.workStream, { durable_name: "rogue", filter_subject: s.work("samples") }),
    /Permissions Violation for Publish to "\$JS\.API\.CONSUMER\.(DURABLE\.)?CREATE/,
  );
});

test("a worker dead-letters only under its own role; the trainer sees which", async () => {
  const admin = await as("trainer");
  const judge = js(await as("judge"));
  const seen = watch(admin, s.deadAll);
  await admin.flush();
  deadLetter(
    { js: judge, run: RUN, producer: { actor: "judge", instance: "j" } },
    s.work("judge"),
    new Uint8Array([1]),
    "own",
  );
  await assert.rejects(
    judge.publish(s.deadOf("generator"), RAW),
    /Permissions Violation for Publish to "srlm\.perm\.dead\.generator"/,
  );
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(seen.seen, [s.deadOf("judge")]);
});

test("workers and readers read the weights bucket but cannot write it; only the trainer announces weights", async () => {
  const admin = await as("trainer");
  const ref = await putBlob(admin, weightsBucket(RUN), "v1", new Uint8Array([1, 2, 3, 4]));
  for (const role of ["generator", "judge", "reference", "reader"] as const) {
    const nc = await as(role);
    assert.deepEqual([...(await getBlob(nc, ref))], [1, 2, 3, 4], `${role} reads weights`);
    const store = await new Objm(nc).open(weightsBucket(RUN));
    await assert.rejects(
      store.putBlob({ name: "v2" }, new Uint8Array([9])),
      /Permissions Violation/,
      `${role} wrote`,
    );
    await assert.rejects(
      js(nc).publish(s.weights, RAW),
      /Permissions Violation for Publish to "srlm\.perm\.weights"/,
    );
  }
  const ack = await js(admin).publish(s.weights, RAW);
  assert.equal(ack.stream, s.eventStream);
});

test("a reader only reads; the operator may also send control", async () => {
  const admin = await as("trainer");
  const reader = await as("reader");
  const seen = watch(reader, s.all);
  await reader.flush();
  await js(admin).publish(s.events, RAW);
  await assert.rejects(js(reader).publish(s.control, RAW), /Permissions Violation/);
  await assert.rejects(js(reader).publish(s.result("scores"), RAW), /Permissions Violation/);
  const operator = await as("operator");
  const ack = await js(operator).publish(s.control, RAW);
  assert.equal(ack.stream, s.eventStream);
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(seen.seen, [s.events, s.control], "the reader saw the run's traffic");
});

test("the table gives every worker its own queues and result subjects only", () => {
  const table = permissionTable(RUN);
  assert.ok(table.judge.publish.includes(s.result("scores")));
  for (const role of ["generator", "judge", "reference", "reader", "operator"] as const) {
    const pub = table[role].publish;
    assert.ok(!pub.includes(s.weights) && !pub.includes(s.all), `${role} may publish weights`);
    assert.ok(
      !pub.some((p) => p.startsWith("$JS.API.STREAM.CREATE") || p === "$JS.API.>"),
      `${role} is admin`,
    );
  }
  assert.ok(!table.judge.publish.some((p) => p.includes("srlm-samples") || p.includes("candidates")));
});
