// Bad messages on the trainer's control subject are dead-lettered with reason, subject and raw
// bytes, never dropped; valid commands still reach the schedule's gate.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type JetStreamClient, jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { followControl, RunControl } from "../../actors/trainer/control.ts";
import { encode } from "../../bus/codec.ts";
import { connectBus } from "../../bus/connect.ts";
import { decodeEnvelope, encodeEnvelope, makeEnvelope } from "../../bus/envelope.ts";
import type { DeadLetterBody } from "../../bus/messages.ts";
import { ensureStreams } from "../../bus/queues.ts";
import { createStats } from "../../bus/stats.ts";
import { subjects } from "../../bus/subjects.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";

const RUN = "ctl";
const s = subjects(RUN);
const producer = { actor: "trainer", instance: "t0" };
let server: NatsServerHandle;
let nc: NatsConnection;
let js: JetStreamClient;

before(async () => {
  server = await startNatsServer();
  nc = await connectBus({ servers: [server.url] });
  js = jetstream(nc);
  await ensureStreams(await jetstreamManager(nc), RUN);
});
after(async () => {
  await nc?.close();
  await server?.stop();
});

test("garbage and wrongly typed messages on control land in the dead subject; a valid pause applies", async () => {
  const dead: DeadLetterBody[] = [];
  const deadSub = nc.subscribe(s.deadAll, {
    callback: (_err, m) => {
      const d = decodeEnvelope(m.subject, m.data);
      if (d.ok && d.msg.type === "dead.letter") dead.push(d.msg.body as DeadLetterBody);
    },
  });
  const stats = createStats();
  const control = new RunControl();
  const unfollow = followControl(nc, { js, run: RUN, producer, stats }, control);
  try {
    const garbage = new Uint8Array([0xc1, 0x00, 0xff]);
    const wrongType = encodeEnvelope(
      makeEnvelope("metrics", { values: { x: 1 } }, { run: RUN, producer: { actor: "cli", instance: "x" } }),
    );
    const badBody = encode({
      v: 1,
      type: "control",
      run: RUN,
      id: "c1",
      producer: { actor: "cli", instance: "x" },
      ts: Date.now(),
      body: { command: "explode" },
    });
    nc.publish(s.control, garbage);
    nc.publish(s.control, wrongType);
    nc.publish(s.control, badBody);
    const pause = makeEnvelope(
      "control",
      { command: "pause" },
      { run: RUN, producer: { actor: "cli", instance: "x" } },
    );
    nc.publish(s.control, encodeEnvelope(pause));
    await nc.flush();
    const deadline = Date.now() + 5000;
    while (dead.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));

    assert.equal(dead.length, 3, JSON.stringify(dead.map((d) => d.reason)));
    for (const d of dead) {
      assert.equal(d.subject, s.control);
      assert.equal(d.actor, "trainer");
    }
    assert.deepEqual([...dead[0].raw], [...garbage], "raw bytes kept");
    assert.match(dead[0].reason, /bad msgpack on srlm\.ctl\.control/);
    assert.match(dead[1].reason, /type "metrics" on srlm\.ctl\.control, which carries only control/);
    assert.match(dead[2].reason, /bad control body on srlm\.ctl\.control/);
    assert.equal(stats.deadLettered, 3);

    // The pause got through: the gate holds until a resume.
    let passed = false;
    const gate = control.gate().then(() => {
      passed = true;
    });
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(passed, false, "paused");
    control.apply("resume");
    await gate;
  } finally {
    unfollow();
    deadSub.unsubscribe();
  }
});
