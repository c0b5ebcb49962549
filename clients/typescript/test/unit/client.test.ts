/**
 * The client over a scripted socket (no network): the paths a real server
 * seldom takes (text messages, malformed frames, late replies, handler and
 * hook errors, browser-only close codes, handshake and close timeouts), and a
 * model-based property test of the status machine and pending calls
 * (fast-check commands).
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import {
  Client,
  type ClientOptions,
  Closing,
  ConnectionLost,
  type GoomerangError,
  HandlerError,
  HandshakeError,
  MalformedFrame,
  MessageTooLarge,
  NotRunning,
  packFrame,
  type SocketLike,
  Status,
  toWebSocketUrl,
  UnexpectedReply,
  UnexpectedText,
  UnknownKind,
  unpackFrame,
} from "../../src/index.js";
import {
  BadReplyV1Schema,
  MessageV1Schema,
  ReplyV1Schema,
} from "../../src/gen/goomerang_example_pb.js";
import { Waiter, within } from "../helpers.js";

/** A WebSocket whose peer is the test. */
class FakeSocket implements SocketLike {
  binaryType = "blob";
  readyState = 0;
  bufferedAmount = 0;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  readonly sent: Uint8Array[] = [];
  readonly closeCalls: (number | undefined)[] = [];
  /** Browsers refuse close codes other than 1000 and 3000-4999. */
  browserCodes = false;
  /** The server answers our Close. */
  answerClose = true;

  send(data: Uint8Array): void {
    if (this.readyState !== 1) throw new Error("InvalidStateError");
    this.sent.push(data.slice());
  }

  close(code?: number): void {
    if (this.browserCodes && code !== undefined && code !== 1000 && (code < 3000 || code > 4999)) {
      throw new Error(`InvalidAccessError: close code ${code}`);
    }
    this.closeCalls.push(code);
    if (this.readyState === 1) this.readyState = 2;
    if (this.answerClose) queueMicrotask(() => this.peerClose(code ?? 1005));
  }

  open(): void {
    this.readyState = 1;
    this.onopen?.({});
  }

  peerClose(code: number): void {
    if (this.readyState === 3) return;
    this.readyState = 3;
    this.onclose?.({ code, reason: "" });
  }

  deliver(data: Uint8Array | string): void {
    this.onmessage?.({ data: typeof data === "string" ? data : data.slice().buffer });
  }

  /** Answer the sync request `index` of what was sent with a reply of `kind`. */
  reply(index: number, kind = "goomerang.example.ReplyV1", text = "ok"): void {
    const req = unpackFrame(this.sent[index]!);
    assert.ok(req.isSync);
    const payload = toBinary(ReplyV1Schema, create(ReplyV1Schema, { message: text }));
    this.deliver(packFrame({ kind, payload, uuid: req.uuid, isSync: true }));
  }
}

interface Rig {
  client: Client;
  sockets: FakeSocket[];
  errors: GoomerangError[];
  statuses: Status[];
  sock(): FakeSocket;
  /** What the next socket does: opens, is refused, or waits for the test. */
  server: "open" | "refuse" | "manual";
}

function rig(options: ClientOptions = {}, autoOpen = true): Rig {
  const sockets: FakeSocket[] = [];
  const errors: GoomerangError[] = [];
  const statuses: Status[] = [];
  const r: Rig = {
    client: undefined as unknown as Client,
    sockets,
    errors,
    statuses,
    sock: () => sockets[sockets.length - 1]!,
    server: autoOpen ? "open" : "manual",
  };
  r.client = new Client("ws://test/ws", {
    ...options,
    onError: (e) => errors.push(e),
    onStatusChange: (s) => statuses.push(s),
    webSocket: () => {
      const s = new FakeSocket();
      sockets.push(s);
      if (r.server === "open") queueMicrotask(() => s.open());
      if (r.server === "refuse") queueMicrotask(() => s.peerClose(1006));
      return s;
    },
  });
  r.client.registerMessage(MessageV1Schema, ReplyV1Schema);
  return r;
}

const msg = (text: string) => create(MessageV1Schema, { message: text });
const frameOf = (text: string, headers: Record<string, string> = {}): Uint8Array =>
  packFrame({
    kind: "goomerang.example.MessageV1",
    payload: toBinary(MessageV1Schema, msg(text)),
    headers,
  });

describe("client over a scripted socket", () => {
  it("URLs: ws(s) kept, http(s) mapped, host:port gets /ws", () => {
    assert.equal(toWebSocketUrl("ws://h:1/ws"), "ws://h:1/ws");
    assert.equal(toWebSocketUrl("https://h/ws?token=x"), "wss://h/ws?token=x");
    assert.equal(toWebSocketUrl("127.0.0.1:8080"), "ws://127.0.0.1:8080/ws");
  });

  it("options are checked", () => {
    assert.throws(() => new Client("ws://h/ws", { maxMessageSize: 0 }), RangeError);
    assert.throws(() => new Client("ws://h/ws", { maxPendingSync: -1 }), RangeError);
  });

  it("a text message, a malformed frame and an unknown kind are reported; the connection stays", async () => {
    const r = rig();
    const got: string[] = [];
    r.client.handle(MessageV1Schema, (_s, m) => {
      got.push(m.payload.message);
    });
    await r.client.connect();
    r.sock().deliver("hello?");
    r.sock().deliver(new Uint8Array([0xff, 0x01]));
    r.sock().deliver(packFrame({ kind: "x.Unknown", payload: new Uint8Array() }));
    // A known kind whose payload does not decode as that type.
    r.sock().deliver(packFrame({ kind: "goomerang.example.MessageV1", payload: new Uint8Array([0x0a, 0x05]) }));
    r.sock().deliver(frameOf("fine", { a: "b" }));
    assert.deepEqual(
      r.errors.map((e) => e.constructor),
      [UnexpectedText, MalformedFrame, UnknownKind, MalformedFrame],
    );
    assert.equal((r.errors[2] as UnknownKind).kind, "x.Unknown");
    assert.deepEqual(got, ["fine"]);
    assert.equal(r.client.status, Status.RUNNING);
  });

  it("a registered kind without handler is reported", async () => {
    const r = rig();
    await r.client.connect();
    r.sock().deliver(frameOf("nobody handles me"));
    assert.match(r.errors[0]!.message, /no handler/);
  });

  it("sync replies: to their caller, late ones reported, unknown reply kinds reject the caller", async () => {
    const r = rig();
    await r.client.connect();
    const a = r.client.sendSync(msg("a"));
    const b = r.client.sendSync(msg("b"));
    const c = r.client.sendSync(msg("c"), { timeoutMs: 10 });
    r.sock().reply(1, undefined, "for b");
    r.sock().reply(0, "goomerang.example.BadReplyV1");
    assert.equal(((await b).payload as unknown as { message: string }).message, "for b");
    await assert.rejects(a, UnknownKind);
    await assert.rejects(c, /no reply/);
    r.sock().reply(2); // after its timeout
    assert.ok(r.errors[0] instanceof UnexpectedReply);
    assert.equal(r.client.pendingCount, 0);
  });

  it("sendSync with replyType: a typed reply, unregistered is fine, another kind rejects", async () => {
    const r = rig();
    await r.client.connect();
    const typed = r.client.sendSync(msg("t"), { replyType: BadReplyV1Schema });
    const wrong = r.client.sendSync(msg("w"), { replyType: BadReplyV1Schema });
    r.sock().reply(0, "goomerang.example.BadReplyV1", "typed");
    r.sock().reply(1, "goomerang.example.ReplyV1", "wrong");
    const reply = await typed;
    assert.equal(reply.payload.message, "typed"); // typed as BadReplyV1: no cast
    assert.equal(reply.payload.$typeName, "goomerang.example.BadReplyV1");
    await assert.rejects(wrong, (e: unknown) => e instanceof UnexpectedReply && /not the goomerang.example.BadReplyV1/.test(e.message));
  });

  it("handler errors, sync and async, and hook errors go to onError", async () => {
    const r = rig();
    const boom = new Error("boom");
    r.client.handle(MessageV1Schema, async (_s, m) => {
      if (m.payload.message === "async") throw boom;
      if (m.payload.message === "sync") throw new Error("sync boom");
    });
    r.client.addHook("onStatusChange", () => {
      throw new Error("hook boom");
    });
    await r.client.connect();
    r.sock().deliver(frameOf("async"));
    await new Promise((resolve) => setImmediate(resolve));
    assert.ok(r.errors.every((e) => e instanceof HandlerError));
    assert.ok(r.errors.some((e) => e.cause === boom));
    assert.ok(r.errors.some((e) => /hook onStatusChange threw/.test(e.message)));
  });

  it("browser: an oversized message closes with 4009 (1009 is refused to scripts), pending calls fail at once", async () => {
    const r = rig({ maxMessageSize: 100 });
    await r.client.connect();
    r.sock().browserCodes = true;
    r.sock().answerClose = false;
    const pending = r.client.sendSync(msg("p"), { timeoutMs: 60_000 });
    const big = frameOf("x".repeat(200));
    r.sock().deliver(big);
    await assert.rejects(pending, (e: unknown) => e instanceof ConnectionLost && e.code === 1009);
    assert.ok(r.errors[0] instanceof MessageTooLarge);
    assert.equal((r.errors[0] as MessageTooLarge).size, big.byteLength);
    assert.deepEqual(r.sock().closeCalls, [4009]);
    await assert.rejects(r.client.send(msg("no")), NotRunning); // closing: nothing more is sent
    r.sock().peerClose(1006);
    assert.equal(r.client.status, Status.CLOSED);
    assert.equal(r.client.closeCode, 1009);
  });

  it("connect: refused, and too slow", async () => {
    const refused = rig({}, false);
    const p = refused.client.connect();
    await Promise.resolve();
    refused.sock().onerror?.({ message: "ECONNREFUSED" });
    refused.sock().peerClose(1006);
    await assert.rejects(p, (e: unknown) => e instanceof HandshakeError && /ECONNREFUSED/.test(e.message));
    assert.equal(refused.client.status, Status.NEW);
    const slow = rig({ connectTimeoutMs: 20 }, false);
    await assert.rejects(slow.client.connect(), (e: unknown) => e instanceof HandshakeError && /within 20 ms/.test(e.message));
    assert.deepEqual(slow.sock().closeCalls, [undefined]);
  });

  it("close: a server that never answers the Close is dropped after closeTimeoutMs", async () => {
    const r = rig({ closeTimeoutMs: 20 });
    await r.client.connect();
    r.sock().answerClose = false;
    const pending = r.client.sendSync(msg("p"), { timeoutMs: 60_000 });
    const closing = r.client.close();
    assert.equal(r.client.status, Status.CLOSING);
    await assert.rejects(r.client.send(msg("x")), Closing);
    await closing;
    await assert.rejects(pending, ConnectionLost);
    assert.deepEqual(r.statuses, [Status.RUNNING, Status.CLOSING, Status.CLOSED]);
  });

  it("reconnect: backoff while refused, connect() meanwhile refused, topics re-subscribed; close() stops it", async () => {
    const r = rig({ reconnect: true, reconnectInitialMs: 5, reconnectMaxMs: 20 });
    const attempts: number[] = [];
    const waiter = new Waiter();
    r.client.addHook("onReconnectAttempt", (n, delay) => {
      assert.ok(delay > 0 && delay <= 20);
      attempts.push(n);
      if (n === 3) r.server = "manual";
      waiter.poke();
    });
    await r.client.connect();
    await r.client.subscribe("a");
    await r.client.subscribe("b");
    const pending = r.client.sendSync(msg("p"), { timeoutMs: 60_000 });
    r.server = "refuse";
    r.sock().peerClose(1006);
    await assert.rejects(pending, ConnectionLost);
    assert.equal(r.client.status, Status.CLOSED);
    await waiter.until(() => attempts.length >= 3, 5_000, "three reconnect attempts");
    await new Promise((resolve) => setImmediate(resolve));
    // Attempt 3 is waiting for its socket to open: connect() must not open a second one.
    const count = r.sockets.length;
    await assert.rejects(r.client.connect(), /under way/);
    assert.equal(r.sockets.length, count);
    r.sock().open();
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(r.client.status, Status.RUNNING);
    const resent = r.sock().sent.map((b) => unpackFrame(b).kind);
    assert.deepEqual(resent, ["goomerang.protocol.SubscribeCmd", "goomerang.protocol.SubscribeCmd"]);
    assert.deepEqual(attempts, [1, 2, 3]);
    assert.ok(r.errors.some((e) => e instanceof ConnectionLost && /code 1006/.test(e.message)));
    assert.ok(r.errors.some((e) => /reconnect attempt 2 failed/.test(e.message)));
    // Lost again, then closed by the user during the backoff: no attempt in the
    // next 60 ms, where an unstopped backoff (at most 20 ms) would make several.
    r.server = "refuse";
    r.sock().peerClose(1006);
    await r.client.close();
    const before = r.sockets.length;
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(r.sockets.length, before);
    assert.equal(r.client.status, Status.CLOSED);
  });

  it("Node heartbeat: pings, and a server that stops answering is dropped", async () => {
    const errors: GoomerangError[] = [];
    const waiter = new Waiter();
    class PingSocket extends FakeSocket {
      pings = 0;
      answer = true;
      terminated = false;
      #pong: (() => void) | undefined;
      ping(): void {
        this.pings++;
        waiter.poke();
        if (this.answer) queueMicrotask(() => this.#pong?.());
      }
      terminate(): void {
        this.terminated = true;
        this.peerClose(1006);
      }
      on(_event: "pong", listener: () => void): this {
        this.#pong = listener;
        return this;
      }
    }
    let sock: PingSocket | undefined;
    const c = new Client("ws://test/ws", {
      heartbeatIntervalMs: 5,
      pingTimeoutMs: 15,
      onError: (e) => {
        errors.push(e);
        waiter.poke();
      },
      onClose: () => waiter.poke(),
      webSocket: () => {
        sock = new PingSocket();
        const s = sock;
        queueMicrotask(() => s.open());
        return s;
      },
    });
    await c.connect();
    await waiter.until(() => sock!.pings >= 10, 5_000, "ten answered pings (50 ms > the 15 ms deadline)");
    assert.equal(c.status, Status.RUNNING); // answered pings keep it up
    sock!.answer = false;
    await waiter.until(() => c.status === Status.CLOSED, 5_000, "the dead server dropped");
    assert.ok(sock!.terminated);
    assert.ok(errors.some((e) => e instanceof ConnectionLost && /did not answer pings/.test(e.message)));
  });

  it("send waits while the socket buffers more than writeLimit", async () => {
    const r = rig({ writeLimit: 100 });
    await r.client.connect();
    r.sock().bufferedAmount = 1000;
    let done = false;
    const sending = r.client.send(msg("x")).then(() => (done = true));
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(done, false); // still above the limit
    r.sock().bufferedAmount = 0;
    await within(sending, 2_000, "send after the drain");
    assert.equal(r.sock().sent.length, 1);
  });

  it("sends carry kind, headers and payload; unregistered types throw UnknownKind", async () => {
    const r = rig();
    await r.client.connect();
    assert.equal(await r.client.send(msg("hi"), { headers: { k: "v" } }), 4);
    const f = unpackFrame(r.sock().sent[0]!);
    assert.deepEqual([f.kind, f.isSync, f.uuid, { ...f.headers }], ["goomerang.example.MessageV1", false, "", { k: "v" }]);
    await assert.rejects(r.client.send(create(BadReplyV1Schema, { message: "x" })), UnknownKind);
    for (const call of [r.client.publish("", msg("x")), r.client.subscribe(""), r.client.unsubscribe("")]) {
      await assert.rejects(call, RangeError); // the empty topic is reserved
    }
    assert.equal(r.sock().sent.length, 1);
  });
});

// ------------------------------------------------------------ model-based test
interface Model {
  status: Status;
  pending: number;
}
type Real = Rig & { calls: Promise<unknown>[]; settled: number };

const ops = [
  fc.constant("connect"),
  fc.constant("close"),
  fc.constant("serverClose"),
  fc.constant("send"),
  fc.constant("sendSync"),
  fc.constant("replyAll"),
] as const;

async function step(op: string, m: Model, r: Real): Promise<void> {
  const c = r.client;
  switch (op) {
    case "connect":
      if (m.status === Status.RUNNING) {
        await assert.rejects(c.connect(), /already/);
      } else {
        await c.connect();
        m.status = Status.RUNNING;
      }
      break;
    case "close":
      if (m.status !== Status.RUNNING) {
        await assert.rejects(c.close(), NotRunning);
      } else {
        await c.close();
        m.status = Status.CLOSED;
        m.pending = 0;
      }
      break;
    case "serverClose":
      if (m.status === Status.RUNNING) {
        r.sock().peerClose(1000);
        m.status = Status.CLOSED;
        m.pending = 0;
      }
      break;
    case "send":
      if (m.status === Status.RUNNING) {
        await c.send(msg("s"));
      } else {
        await assert.rejects(c.send(msg("s")), NotRunning);
      }
      break;
    case "sendSync":
      if (m.status === Status.RUNNING) {
        const p = c.sendSync(msg("q"), { timeoutMs: 60_000 });
        r.calls.push(p.finally(() => r.settled++).catch(() => undefined));
        m.pending++;
      } else {
        await assert.rejects(c.sendSync(msg("q")), NotRunning);
      }
      break;
    case "replyAll":
      if (m.status === Status.RUNNING) {
        const s = r.sock();
        s.sent.forEach((bytes, i) => {
          if (unpackFrame(bytes).isSync) s.reply(i);
        });
        s.sent.length = 0;
        m.pending = 0;
      }
      break;
  }
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(c.status, m.status, `status after ${op}`);
  assert.equal(c.pendingCount, m.pending, `pending after ${op}`);
  // Every call that is not pending any more has settled: none is left hanging.
  assert.equal(r.calls.length - r.settled, m.pending, `unsettled calls after ${op}`);
}

describe("client status machine (fast-check model)", () => {
  it("status, pending calls and errors follow the model for any sequence of operations", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.oneof(...ops), { maxLength: 40 }), async (seq) => {
        const r: Real = { ...rig(), calls: [], settled: 0 };
        const m: Model = { status: Status.NEW, pending: 0 };
        for (const op of seq) await step(op, m, r);
        if (m.status === Status.RUNNING) await r.client.close();
        await Promise.all(r.calls);
        assert.equal(r.settled, r.calls.length);
        // Server closes with 1000 and our own closes are no errors.
        assert.deepEqual(r.errors, []);
        // Statuses alternate as the lifecycle allows.
        const allowed: Record<number, Status[]> = {
          [Status.NEW]: [Status.RUNNING],
          [Status.RUNNING]: [Status.CLOSING, Status.CLOSED],
          [Status.CLOSING]: [Status.CLOSED],
          [Status.CLOSED]: [Status.RUNNING],
        };
        let prev: Status = Status.NEW;
        for (const s of r.statuses) {
          assert.ok(allowed[prev]!.includes(s), `${prev} -> ${s}`);
          prev = s;
        }
      }),
      { numRuns: 150 },
    );
  });
});
