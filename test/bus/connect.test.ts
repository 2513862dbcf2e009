// A server that refuses the credentials must be reported as an authorization failure, naming the
// server and the user, not as a server that is missing.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { connectBus } from "../../bus/connect.ts";
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
