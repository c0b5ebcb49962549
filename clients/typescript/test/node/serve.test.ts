/**
 * Node integration tests against a real `goomerang serve` (and the small
 * Python test server, tests/ts/server.py, where a feature needs more), each
 * started by the test on a free port.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import WebSocket from "ws";
import {
  Aborted,
  Client,
  ConnectionLost,
  HandshakeError,
  MessageTooLarge,
  NotRunning,
  Status,
  Timeout,
  TooManyPending,
  UnknownKind,
} from "../../src/index.js";
import { BadReplyV1Schema, MessageV1Schema, ReplyV1Schema } from "../../src/gen/goomerang_example_pb.js";
import {
  type ServerHandle,
  startPeer,
  startServe,
  startTestServer,
  within,
} from "../helpers.js";
import { commonSuite, msg, Recorder } from "./suite.js";

commonSuite("goomerang serve", () => startServe(), { ordered: true });

describe("goomerang serve: lifecycle, limits, reconnect", () => {
  let server: ServerHandle;
  const recorders: Recorder[] = [];
  const make = (options = {}): Recorder => {
    const r = new Recorder(server.url, options);
    recorders.push(r);
    return r;
  };
  before(async () => {
    server = await startServe();
  });
  after(async () => {
    for (const r of recorders) await r.closeIfRunning().catch(() => undefined);
    await server?.proc.stop();
  });

  it("status NEW, RUNNING, CLOSING, CLOSED; connect again after close", async () => {
    const r = make();
    assert.equal(r.client.status, Status.NEW);
    await assert.rejects(r.client.send(msg("x")), NotRunning);
    await assert.rejects(r.client.close(), NotRunning);
    await r.client.connect();
    await assert.rejects(r.client.connect(), /already connected/);
    await r.client.close();
    assert.deepEqual(r.statuses, [Status.RUNNING, Status.CLOSING, Status.CLOSED]);
    assert.deepEqual(r.closes, [1000]);
    await assert.rejects(r.client.sendSync(msg("x")), NotRunning);
    await r.client.connect();
    await r.syncPoint();
    await r.client.close();
    assert.deepEqual(r.errors, []);
  });

  it("close() rejects pending sendSync calls with ConnectionLost", async () => {
    const r = make();
    await r.client.connect();
    const pending = r.client.sendSync(create(BadReplyV1Schema, { message: "never answered" }), {
      timeoutMs: 60_000,
    });
    await r.client.close();
    await assert.rejects(pending, ConnectionLost);
  });

  it("sendSync: timeout, AbortSignal, maxPendingSync", async () => {
    const r = make({ maxPendingSync: 3 });
    await r.client.connect();
    const bad = (t: string) => create(BadReplyV1Schema, { message: t });
    await assert.rejects(r.client.sendSync(bad("a"), { timeoutMs: 100 }), Timeout);
    const ctl = new AbortController();
    const aborted = r.client.sendSync(bad("b"), { timeoutMs: 60_000, signal: ctl.signal });
    const keep = [r.client.sendSync(bad("c"), { timeoutMs: 60_000 }), r.client.sendSync(bad("d"), { timeoutMs: 60_000 })];
    await assert.rejects(r.client.sendSync(bad("e")), TooManyPending);
    ctl.abort();
    await assert.rejects(aborted, Aborted);
    assert.equal(r.client.pendingCount, 2);
    await assert.rejects(r.client.sendSync(bad("f"), { signal: ctl.signal }), Aborted);
    await r.syncPoint(); // a slot is free again and the connection is fine
    await r.client.close();
    for (const k of keep) await assert.rejects(k, ConnectionLost);
  });

  it("unknown kind: the server reports it and keeps the connection; sending an unregistered type throws", async () => {
    const r = make();
    await r.client.connect();
    await r.client.send(create(BadReplyV1Schema, { message: "unknown to the server" }));
    await assert.rejects(
      r.client.sendSync(create(BadReplyV1Schema, { message: "no answer" }), { timeoutMs: 200 }),
      Timeout,
    );
    await r.syncPoint();
    const bare = new Client(server.url);
    await bare.connect();
    try {
      await assert.rejects(bare.send(msg("not registered here")), UnknownKind);
    } finally {
      await bare.close();
    }
    assert.deepEqual(r.errors, []);
  });

  it("oversized: refused before sending, and above the server's limit it closes with 1009", async () => {
    const small = make({ maxMessageSize: 1024 });
    await small.client.connect();
    await assert.rejects(small.client.send(msg("x".repeat(2000))), MessageTooLarge);
    await assert.rejects(small.client.sendSync(msg("x".repeat(2000))), MessageTooLarge);
    await small.syncPoint(); // nothing was sent; the connection is fine

    const big = make({ maxMessageSize: 8 * 1024 * 1024 });
    await big.client.connect();
    const pending = big.client.sendSync(create(BadReplyV1Schema, { message: "pending" }), {
      timeoutMs: 60_000,
    });
    await big.client.send(msg("y".repeat(2 * 1024 * 1024))); // server limit: 1 MiB
    const err = await within(pending.then(() => null, (e: unknown) => e), 5_000, "the pending call");
    assert.ok(err instanceof ConnectionLost);
    assert.equal(err.code, 1009);
    await big.waiter.until(() => big.client.status === Status.CLOSED, 5_000, "CLOSED");
    assert.deepEqual(big.closes, [1009]);
    assert.ok(big.errors.some((e) => e instanceof ConnectionLost && e.code === 1009));
  });

  it("oversized incoming: a message above maxMessageSize closes with 1009, pending calls fail", async () => {
    const r = make({ maxMessageSize: 4096 });
    await r.client.connect();
    await r.client.subscribe("big");
    await r.syncPoint();
    const pending = r.client.sendSync(create(BadReplyV1Schema, { message: "pending" }), {
      timeoutMs: 60_000,
    });
    const peer = await startPeer(server.addr);
    try {
      await peer.command({ op: "publish", topic: "big", message: "z".repeat(10_000) });
      const err = await within(pending.then(() => null, (e: unknown) => e), 5_000, "the pending call");
      assert.ok(err instanceof ConnectionLost, String(err));
      await r.waiter.until(() => r.client.status === Status.CLOSED, 5_000, "CLOSED");
      assert.deepEqual(r.closes, [1009]);
      assert.ok(!r.texts().some((t) => t.startsWith("zzz")));
    } finally {
      await peer.command({ op: "close" });
      await peer.stop();
    }
  });

  it("reconnect: backoff attempts while the server is down, then re-subscribed", async () => {
    const own = await startServe();
    const port = Number(own.addr.split(":").pop());
    const client = new Recorder(own.url, { reconnect: true, reconnectInitialMs: 50, reconnectMaxMs: 400 });
    recorders.push(client);
    let second: ServerHandle | undefined;
    try {
      await client.client.connect();
      await client.client.subscribe("r");
      await client.syncPoint();
      const pending = client.client.sendSync(create(BadReplyV1Schema, { message: "p" }), {
        timeoutMs: 60_000,
      });
      const failed = pending.then(() => null, (e: unknown) => e);
      await own.proc.stop();
      assert.ok((await within(failed, 5_000, "pending call")) instanceof ConnectionLost);
      await client.waiter.until(() => client.attempts.length >= 2, 5_000, "two reconnect attempts");
      assert.equal(client.client.status, Status.CLOSED);
      await assert.rejects(client.client.send(msg("while down")), NotRunning);
      assert.ok(client.errors.some((e) => /reconnect attempt 1 failed/.test(e.message)));
      second = await startServe(port);
      await client.waiter.until(() => client.client.status === Status.RUNNING, 10_000, "RUNNING again");
      await client.syncPoint(); // the re-subscribe went before this request
      const peer = await startPeer(second.addr);
      try {
        await peer.command({ op: "publish", topic: "r", message: "after reconnect" });
        await client.got("after reconnect");
      } finally {
        await peer.command({ op: "close" });
        await peer.stop();
      }
      assert.deepEqual(client.closes, [1000]);
      assert.deepEqual(client.statuses, [Status.RUNNING, Status.CLOSED, Status.RUNNING]);
      const attempts = client.attempts;
      assert.deepEqual(attempts, Array.from({ length: attempts.length }, (_, i) => i + 1));
      await client.client.close();
      assert.equal(client.client.status, Status.CLOSED);
    } finally {
      await second?.proc.stop();
      await own.proc.stop();
    }
  });
});

describe("python test server: auth in the upgrade, unknown kinds from the server", () => {
  let server: ServerHandle;
  before(async () => {
    server = await startTestServer(["--token", "s3cret"]);
  });
  after(async () => {
    await server?.proc.stop();
  });

  it("no token: connect() rejects with HandshakeError (HTTP 401)", async () => {
    const c = new Client(server.url);
    await assert.rejects(c.connect(), (e: unknown) => e instanceof HandshakeError && /401/.test(e.message));
    assert.equal(c.status, Status.NEW);
  });

  it("token by query parameter, and by cookie", async () => {
    const byQuery = new Recorder(`${server.url}?token=s3cret`);
    await byQuery.client.connect();
    const reply = await byQuery.client.sendSync(msg("hi"));
    assert.equal(reply.kind, ReplyV1Schema.typeName);
    await byQuery.client.close();
    const byCookie = new Client(server.url, {
      webSocket: (url, maxPayload) =>
        new WebSocket(url, { maxPayload, headers: { Cookie: "goomerang_token=s3cret" } }),
    });
    byCookie.registerMessage(MessageV1Schema, ReplyV1Schema);
    await byCookie.connect();
    await byCookie.sendSync(msg("hi"));
    await byCookie.close();
  });

  it("a kind the client does not know is reported as UnknownKind; the connection stays", async () => {
    const r = new Recorder(`${server.url}?token=s3cret`);
    // This client does not know BadReplyV1.
    const c = new Client(`${server.url}?token=s3cret`, {
      onError: (e) => {
        r.errors.push(e);
        r.waiter.poke();
      },
    });
    c.handle(MessageV1Schema, () => undefined).registerMessage(ReplyV1Schema);
    await c.connect();
    await server.proc.command({ op: "broadcast-unknown" });
    await r.waiter.until(() => r.errors.length > 0, 5_000, "an error");
    assert.ok(r.errors[0] instanceof UnknownKind);
    assert.equal((r.errors[0] as UnknownKind).kind, "goomerang.example.BadReplyV1");
    const reply = await c.sendSync(msg("still up"));
    assert.equal((reply.payload as unknown as { message: string }).message, "STILL UP");
    await c.close();
  });
});
