/**
 * The integration tests that both servers' behaviour allows (goomerang for
 * Python's `goomerang serve` and Go goomerang v0.3.0's refserver): send,
 * sendSync with 1,000 in flight, pub/sub with a Python client on the other
 * side, broadcast, graceful shutdown. Both servers echo MessageV1 and answer
 * a sync MessageV1 with the same payload plus header `echo: 1`.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import {
  Client,
  type ClientOptions,
  ConnectionLost,
  type GoomerangError,
  NotRunning,
  type Received,
  Status,
} from "../../src/index.js";
import {
  BadReplyV1Schema,
  type MessageV1,
  MessageV1Schema,
  ReplyV1Schema,
} from "../../src/gen/goomerang_example_pb.js";
import { type LineProcess, type ServerHandle, startPeer, Waiter, within } from "../helpers.js";

export const msg = (text: string): MessageV1 => create(MessageV1Schema, { message: text });

/** A client that records what it receives, its errors and its status changes. */
export class Recorder {
  readonly client: Client;
  readonly received: Received<MessageV1>[] = [];
  readonly errors: GoomerangError[] = [];
  readonly statuses: Status[] = [];
  readonly closes: (number | undefined)[] = [];
  readonly attempts: number[] = [];
  readonly waiter = new Waiter();

  constructor(url: string, options: ClientOptions = {}) {
    this.client = new Client(url, {
      ...options,
      onError: (e) => {
        this.errors.push(e);
        this.waiter.poke();
      },
      onStatusChange: (s) => {
        this.statuses.push(s);
        this.waiter.poke();
      },
      onClose: (code) => {
        this.closes.push(code);
        this.waiter.poke();
      },
      onReconnectAttempt: (n) => {
        this.attempts.push(n);
        this.waiter.poke();
      },
    });
    this.client.handle(MessageV1Schema, (_sender, m) => {
      this.received.push(m);
      this.waiter.poke();
    });
    this.client.registerMessage(ReplyV1Schema, BadReplyV1Schema);
  }

  texts(): string[] {
    return this.received.map((m) => m.payload.message);
  }

  /** Wait until a message with `text` arrived; that message. */
  async got(text: string, ms = 5_000): Promise<Received<MessageV1>> {
    await this.waiter.until(() => this.texts().includes(text), ms, `message '${text}'`);
    return this.received.find((m) => m.payload.message === text)!;
  }

  /** A sync round trip: proves the server has processed everything sent before it. */
  async syncPoint(): Promise<void> {
    const reply = await this.client.sendSync(msg("sync-point"), { timeoutMs: 5_000 });
    assert.equal(reply.headers["echo"], "1");
  }

  async closeIfRunning(): Promise<void> {
    if (this.client.status === Status.RUNNING) await this.client.close();
  }
}

/** Register the common tests; `start` starts a fresh server (stopped by the suite). */
export function commonSuite(
  label: string,
  start: () => Promise<ServerHandle>,
  traits: { ordered: boolean },
): void {
  describe(`${label}: send, sendSync, pub/sub, broadcast`, () => {
    let server: ServerHandle;
    let peer: LineProcess;
    const clients: Recorder[] = [];
    const connect = async (options: ClientOptions = {}): Promise<Recorder> => {
      const r = new Recorder(server.url, options);
      clients.push(r);
      await r.client.connect();
      return r;
    };

    before(async () => {
      server = await start();
      peer = await startPeer(server.addr);
    });
    after(async () => {
      for (const r of clients) await r.closeIfRunning();
      await peer?.command({ op: "close" }).catch(() => undefined);
      await peer?.stop();
      await server?.proc.stop();
    });

    it(`send: messages and their headers are echoed${traits.ordered ? ", in order" : ""}`, async () => {
      const r = await connect();
      assert.equal(r.client.status, Status.RUNNING);
      for (let i = 0; i < 100; i++) {
        const size = await r.client.send(msg(`m${i}`), { headers: { seq: String(i), k: "v" } });
        assert.equal(size, 2 + `m${i}`.length);
      }
      await r.waiter.until(() => r.received.length >= 100, 5_000, "100 echoes");
      const seqs = r.received.map((m) => Number(m.headers["seq"]));
      const expected = Array.from({ length: 100 }, (_, i) => i);
      // Go runs each message's handler in its own goroutine: echoes may overtake each other.
      assert.deepEqual(traits.ordered ? seqs : [...seqs].sort((a, b) => a - b), expected);
      assert.ok(r.received.every((m) => m.headers["k"] === "v" && !m.isSync));
      const m7 = r.received.find((m) => m.headers["seq"] === "7")!;
      assert.equal(m7.payload.message, "m7");
      assert.equal(m7.kind, "goomerang.example.MessageV1");
      assert.deepEqual(r.errors, []);
    });

    it("sendSync: 1,000 requests in flight, each reply to its caller", async () => {
      const r = await connect();
      const texts = Array.from({ length: 1000 }, (_, i) => `s${i}`);
      const calls = texts.map((t) => r.client.sendSync(msg(t), { timeoutMs: 10_000 }));
      assert.equal(r.client.pendingCount, 1000);
      const replies = await within(Promise.all(calls), 15_000, "1,000 sync replies");
      assert.deepEqual(
        replies.map((m) => (m.payload as MessageV1).message),
        texts,
      );
      assert.ok(replies.every((m) => m.isSync && m.headers["echo"] === "1" && m.uuid.length === 36));
      assert.equal(new Set(replies.map((m) => m.uuid)).size, 1000);
      assert.equal(r.client.pendingCount, 0);
      assert.deepEqual(r.errors, []);
    });

    it("pub/sub both ways with a Python client, headers kept, unsubscribe honoured", async () => {
      const r = await connect();
      await r.client.subscribe("news");
      await r.client.subscribe("marker");
      await r.syncPoint();
      await peer.command({ op: "publish", topic: "news", message: "from python", headers: { k: "v" } });
      const got = await r.got("from python");
      assert.deepEqual({ ...got.headers }, { k: "v" });

      await peer.command({ op: "subscribe", topic: "back" });
      await r.client.publish("back", msg("from ts"), { headers: { lang: "ts" } });
      const [seen] = await peer.eventsMatching(
        (e) => e["event"] === "message" && e["message"] === "from ts",
        1,
      );
      assert.deepEqual(seen!["headers"], { lang: "ts" });

      await r.client.unsubscribe("news");
      assert.deepEqual([...r.client.topics], ["marker"]);
      await r.syncPoint();
      await peer.command({ op: "publish", topic: "news", message: "not for ts" });
      await peer.command({ op: "publish", topic: "marker", message: "after unsubscribe" });
      await r.got("after unsubscribe");
      assert.ok(!r.texts().includes("not for ts"));
      assert.deepEqual(r.errors, []);
    });

    it("broadcast reaches every client, the sender and the Python client included", async () => {
      const a = await connect();
      const b = await connect();
      await a.client.broadcast(msg("to everyone"), { headers: { from: "a" } });
      const ga = await a.got("to everyone");
      const gb = await b.got("to everyone");
      assert.equal(ga.headers["from"], "a");
      assert.equal(gb.headers["from"], "a");
      await peer.eventsMatching((e) => e["event"] === "message" && e["message"] === "to everyone", 1);
      assert.deepEqual([...a.errors, ...b.errors], []);
    });
  });

  describe(`${label}: graceful shutdown`, () => {
    it("pending sendSync calls are rejected at once with ConnectionLost; CLOSED, code 1000", async () => {
      const server = await start();
      const r = new Recorder(server.url);
      try {
        await r.client.connect();
        // Neither server answers a kind it does not know: these stay pending.
        const calls = Array.from({ length: 10 }, (_, i) =>
          r.client.sendSync(create(BadReplyV1Schema, { message: `q${i}` }), { timeoutMs: 60_000 }),
        );
        await r.syncPoint(); // the requests reached the server
        assert.equal(r.client.pendingCount, 10);
        const t0 = performance.now();
        const stopped = server.proc.stop();
        const results = await within(Promise.allSettled(calls), 8_000, "pending calls");
        const ms = performance.now() - t0;
        for (const res of results) {
          assert.equal(res.status, "rejected");
          assert.ok((res as PromiseRejectedResult).reason instanceof ConnectionLost);
        }
        assert.ok(ms < 8_000, `rejected after ${ms} ms`);
        await r.waiter.until(() => r.client.status === Status.CLOSED, 5_000, "CLOSED");
        assert.deepEqual(r.closes, [1000]);
        assert.deepEqual(r.statuses, [Status.RUNNING, Status.CLOSED]);
        assert.deepEqual(r.errors, []); // a clean close by the server is no error
        await assert.rejects(r.client.send(msg("late")), NotRunning);
        assert.equal(await stopped, 0);
      } finally {
        await server.proc.stop();
      }
    });
  });
}
