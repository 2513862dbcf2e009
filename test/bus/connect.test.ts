// A server that refuses the credentials must be reported as an authorization failure, naming the
// server and the user, not as a server that is missing; and reconnect waits stay short early in an outage.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { connectBus, makeReconnectDelay } from "../../bus/connect.ts";
import { type NatsServerHandle, startNatsServer } from "../helpers/nats.ts";

let server: NatsServerHandle;

before(async () => {
  server = await startNatsServer({ conf: 'authorization { user: "alice", password: "right-one" }' });
});
after(async () => {
  await server?.stop();
});

test("wrong password: an authorization failure naming the server and the user, without the password", async () => {
  await assert.rejects(
    connectBus({ servers: [server.url], user: "alice", pass: "wrong-one" }),
    (err: Error) => {
      assert.match(err.message, /authorization failure/);
      assert.ok(err.message.includes(server.url), err.message);
      assert.match(err.message, /user "alice"/);
      assert.doesNotMatch(err.message, /wrong-one/);
      assert.doesNotMatch(err.message, /Start a JetStream server/);
      return true;
    },
  );
});

test("no credentials at all: says the connection was anonymous", async () => {
  await assert.rejects(connectBus({ servers: [server.url] }), /refused an anonymous connection/);
});

test("the right password connects", async () => {
  const nc = await connectBus({ servers: [server.url], user: "alice", pass: "right-one" });
  await nc.close();
});

test("reconnect waits follow how long the connection has been down, not how often nats.js asks", () => {
  let now = 1_000;
  const delay = makeReconnectDelay(() => now);
  // nats.js asks again each time its dial loop wakes: many asks in one moment stay short.
  for (let i = 0; i < 50; i++) assert.ok(delay.next() <= 250, "a fresh outage is retried within 250 ms");
  now += 4_000;
  const later = delay.next();
  assert.ok(later >= 2_000 && later <= 4_000, `4 s into the outage: ${later} ms`);
  now += 60_000;
  const long = delay.next();
  assert.ok(long >= 5_000 && long <= 10_000, `a minute into the outage: ${long} ms`);
  delay.reset();
  assert.ok(delay.next() <= 250, "after a reconnect the next outage starts short again");
});
