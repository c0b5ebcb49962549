/**
 * The goomerang client: send, sendSync, broadcast, publish/subscribe,
 * handlers by kind, hooks, opt-in reconnect. It mirrors the Python client
 * (goomerang_io/client.py) in the idioms of JavaScript: Promises,
 * `AbortSignal`, camelCase.
 *
 * @module
 */
import {
  type DescMessage,
  fromBinary,
  type Message,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import {
  packBroadcast,
  packFrame,
  packPublish,
  packSubscribe,
  packUnsubscribe,
  unpackFrame,
} from "./envelope.js";
import {
  Aborted,
  AlreadyRunning,
  Closing,
  ConnectionLost,
  GoomerangError,
  HandlerError,
  HandshakeError,
  MalformedFrame,
  MessageTooLarge,
  NotRunning,
  Timeout,
  TooManyPending,
  UnexpectedReply,
  UnexpectedText,
  UnknownKind,
} from "./errors.js";
import type { Frame } from "./gen/goomerang_frame_pb.js";
import {
  defaultFactory,
  isPingable,
  type SocketCloseEvent,
  type SocketErrorEvent,
  type SocketLike,
  type SocketMessageEvent,
  type WebSocketFactory,
} from "./socket.js";
import { Status } from "./status.js";
import { uuidv4 } from "./uuid.js";

/** A message as received: the decoded payload and its envelope's fields. */
export interface Received<T extends Message = Message> {
  /** The decoded user message. */
  readonly payload: T;
  /** User headers. */
  readonly headers: Readonly<Record<string, string>>;
  /** Full protobuf name of the payload type, e.g. `goomerang.example.ReplyV1`. */
  readonly kind: string;
  /** Correlation id (sync replies only; empty otherwise). */
  readonly uuid: string;
  /** True on a sync reply. */
  readonly isSync: boolean;
  /** When the sender packed the envelope. */
  readonly creation: Timestamp | undefined;
  /** Bytes of the serialized payload. */
  readonly payloadSize: number;
}

/** What a handler is given to answer with: sends go back to the server. */
export interface Sender {
  /** Send `message` to the server (see {@link Client.send}). */
  send(message: Message, options?: SendOptions): Promise<number>;
}

/** A handler for one message kind; a returned Promise is awaited for error reporting only. */
export type Handler<T extends Message = Message> = (
  sender: Sender,
  message: Received<T>,
) => void | Promise<void>;

/** Options of `send`, `broadcast` and `publish`. */
export interface SendOptions {
  /** User headers carried with the message. */
  headers?: Readonly<Record<string, string>>;
}

/** Options of `sendSync`. */
export interface SendSyncOptions<R extends DescMessage = DescMessage> extends SendOptions {
  /** Milliseconds to wait for the reply (default: the client's `syncTimeoutMs`); `Infinity`: no limit. */
  timeoutMs?: number;
  /** Aborting it rejects the call with {@link Aborted}; a late reply is then dropped. */
  signal?: AbortSignal;
  /**
   * The reply's type: the result is typed by it, it need not be registered,
   * and a reply of another kind rejects the call with {@link UnexpectedReply}.
   */
  replyType?: R;
}

/** Hooks: each option takes a function or a list of functions; `addHook` adds more later. */
export interface ClientHooks {
  /** Every status change, after it happened. */
  onStatusChange?: HookList<(status: Status) => void>;
  /** Errors that have no caller to reject: unknown kinds, malformed frames, handler errors, lost connections. */
  onError?: HookList<(error: GoomerangError) => void>;
  /** The client reached CLOSED; `code` is the WebSocket close code when known. */
  onClose?: HookList<(code: number | undefined) => void>;
  /** A reconnect attempt starts: attempt number from 1, and the delay waited before it (ms). */
  onReconnectAttempt?: HookList<(attempt: number, delayMs: number) => void>;
}
type HookList<F> = F | readonly F[];
type HookName = keyof ClientHooks;
type HookFn<N extends HookName> = Exclude<ClientHooks[N], readonly unknown[] | undefined>;

/** Client settings; every one is optional. The defaults are those of the Python client. */
export interface ClientOptions extends ClientHooks {
  /** Largest message (whole envelope, bytes) accepted or sent; bigger ones close with 1009 / throw. Default 1 MiB. */
  maxMessageSize?: number;
  /** Sync requests waiting for replies at once; more throw {@link TooManyPending}. Default 10,000. */
  maxPendingSync?: number;
  /** Default `sendSync` timeout, ms. Default 5,000. */
  syncTimeoutMs?: number;
  /** Time to open the WebSocket, ms; then `connect()` rejects with {@link HandshakeError}. Default 10,000. */
  connectTimeoutMs?: number;
  /** Time to wait for the server's Close answer, ms. Default 5,000. */
  closeTimeoutMs?: number;
  /**
   * Ping interval, ms (Node `ws` only: browsers cannot send pings; there a dead
   * server shows as a `sendSync` timeout or the socket's close). 0 disables. Default 5,000 (Go's).
   */
  heartbeatIntervalMs?: number;
  /** Time the server has to answer a ping before the connection is dropped, ms. Default 20,000. */
  pingTimeoutMs?: number;
  /** `send` waits while the socket's `bufferedAmount` is above this many bytes. Default 256 KiB. */
  writeLimit?: number;
  /** Reconnect when the connection is lost (not after `close()`). Default false. */
  reconnect?: boolean;
  /** First reconnect delay, ms (jittered to 50-100 %, doubled per failure). Default 100. */
  reconnectInitialMs?: number;
  /** Cap of the reconnect delay, ms. Default 10,000. */
  reconnectMaxMs?: number;
  /** Opens the socket; default: the platform WebSocket, or `ws` in Node 20. */
  webSocket?: WebSocketFactory;
}

interface Settings {
  maxMessageSize: number;
  maxPendingSync: number;
  syncTimeoutMs: number;
  connectTimeoutMs: number;
  closeTimeoutMs: number;
  heartbeatIntervalMs: number;
  pingTimeoutMs: number;
  writeLimit: number;
  reconnect: boolean;
  reconnectInitialMs: number;
  reconnectMaxMs: number;
}

/** The defaults of {@link ClientOptions}. */
export const DEFAULTS: Readonly<Settings> = Object.freeze({
  maxMessageSize: 1024 * 1024,
  maxPendingSync: 10_000,
  syncTimeoutMs: 5_000,
  connectTimeoutMs: 10_000,
  closeTimeoutMs: 5_000,
  heartbeatIntervalMs: 5_000,
  pingTimeoutMs: 20_000,
  writeLimit: 256 * 1024,
  reconnect: false,
  reconnectInitialMs: 100,
  reconnectMaxMs: 10_000,
});

interface Pending {
  resolve: (reply: Received) => void;
  reject: (error: GoomerangError) => void;
  kind: string;
  replyType: DescMessage | undefined;
}

interface Route {
  schema: DescMessage;
  handler: Handler | undefined;
}

const HOOK_NAMES: readonly HookName[] = [
  "onStatusChange",
  "onError",
  "onClose",
  "onReconnectAttempt",
];

/**
 * Turn what the user gave into a WebSocket URL: `ws://` / `wss://` as is,
 * `http(s)://` to `ws(s)://`, a path (`/ws`) against the page's location,
 * `host:port` to `ws://host:port/ws`.
 */
export function toWebSocketUrl(url: string): string {
  if (/^wss?:\/\//i.test(url)) return url;
  if (/^https?:\/\//i.test(url)) return url.replace(/^http/i, "ws");
  const loc = (globalThis as { location?: { protocol: string; host: string } }).location;
  if (url.startsWith("/") && loc !== undefined) {
    return `${loc.protocol === "https:" ? "wss" : "ws"}://${loc.host}${url}`;
  }
  return `ws://${url}/ws`;
}

/**
 * A goomerang client.
 *
 * ```ts
 * const client = new Client("ws://127.0.0.1:8080/ws", { reconnect: true });
 * client.handle(MessageV1Schema, (sender, m) => console.log(m.payload.message));
 * client.registerMessage(ReplyV1Schema);
 * await client.connect();
 * const reply = await client.sendSync(create(MessageV1Schema, { message: "hi" }), { timeoutMs: 1000 });
 * ```
 */
export class Client {
  /** The WebSocket URL (e.g. `ws://127.0.0.1:8080/ws`). */
  readonly url: string;
  /** The settings in force (defaults filled in). */
  readonly options: Readonly<Settings>;
  /** The close code of the last connection, once it closed. */
  closeCode: number | undefined;

  #status: Status = Status.NEW;
  #socket: SocketLike | null = null;
  #factory: WebSocketFactory | undefined;
  #routes = new Map<string, Route>();
  #pending = new Map<string, Pending>();
  #topics = new Set<string>();
  #hooks = new Map<HookName, ((...args: never[]) => void)[]>();
  #closedByUser = false;
  #connecting = false;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #pongDeadline: ReturnType<typeof setTimeout> | undefined;
  #closeWaiter: (() => void) | undefined;
  #lostCode: number | undefined;
  #sender: Sender;

  /**
   * @param url `ws://host:port/ws`, `wss://...`, `http(s)://...`, a path such
   *   as `/ws` (in a page: the page's own server), or `host:port`.
   * @param options limits, hooks and the socket factory; see {@link ClientOptions}.
   */
  constructor(url: string, options: ClientOptions = {}) {
    this.url = toWebSocketUrl(url);
    const settings: Settings = { ...DEFAULTS };
    for (const key of Object.keys(DEFAULTS) as (keyof Settings)[]) {
      const value = options[key];
      if (value !== undefined) (settings as unknown as Record<string, unknown>)[key] = value;
    }
    for (const key of [
      "maxMessageSize",
      "maxPendingSync",
      "connectTimeoutMs",
      "closeTimeoutMs",
      "reconnectInitialMs",
      "reconnectMaxMs",
    ] as const) {
      if (!(settings[key] > 0)) throw new RangeError(`${key} must be > 0, got ${settings[key]}`);
    }
    this.options = Object.freeze(settings);
    this.#factory = options.webSocket;
    for (const name of HOOK_NAMES) {
      const given = options[name];
      if (given === undefined) continue;
      const list = (Array.isArray(given) ? given : [given]) as HookFn<typeof name>[];
      for (const fn of list) this.addHook(name, fn);
    }
    this.#sender = { send: (message, opts) => this.send(message, opts) };
  }

  // ------------------------------------------------------------------ registry
  /**
   * Handle messages of `schema`'s kind with `handler(sender, received)`;
   * one handler per kind (a second call replaces the first). Handlers run in
   * arrival order; a handler that throws or rejects is reported as
   * {@link HandlerError} through `onError`.
   */
  handle<Desc extends DescMessage>(schema: Desc, handler: Handler<MessageShape<Desc>>): this {
    this.#routes.set(schema.typeName, { schema, handler: handler as unknown as Handler });
    return this;
  }

  /** Make a kind known without a handler: for sync replies, and for what this client sends. */
  registerMessage(...schemas: DescMessage[]): this {
    for (const schema of schemas) {
      const route = this.#routes.get(schema.typeName);
      if (route === undefined) this.#routes.set(schema.typeName, { schema, handler: undefined });
    }
    return this;
  }

  /** Add a hook (see {@link ClientHooks}); hooks run in registration order. */
  addHook<N extends HookName>(name: N, fn: HookFn<N>): this {
    if (!HOOK_NAMES.includes(name)) throw new RangeError(`unknown hook ${String(name)}`);
    if (typeof fn !== "function") throw new TypeError(`hook ${name} is not a function`);
    let list = this.#hooks.get(name);
    if (list === undefined) {
      list = [];
      this.#hooks.set(name, list);
    }
    list.push(fn as (...args: never[]) => void);
    return this;
  }

  // -------------------------------------------------------------------- status
  /** NEW, RUNNING, CLOSING or CLOSED (see {@link Status}). */
  get status(): Status {
    return this.#status;
  }

  /** Sync requests waiting for their replies. */
  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Topics this client is subscribed to (re-subscribed after a reconnect). */
  get topics(): ReadonlySet<string> {
    return this.#topics;
  }

  // ------------------------------------------------------------------- connect
  /**
   * Open the connection; resolves once it is RUNNING. Works again after CLOSED.
   *
   * @throws AlreadyRunning when RUNNING or while another attempt is under way.
   * @throws Closing while CLOSING.
   * @throws HandshakeError when the socket cannot be opened within
   *   `connectTimeoutMs` (refused, or the server rejected the upgrade: browsers
   *   do not say why; Node's `ws` gives the HTTP status in the message).
   */
  async connect(): Promise<void> {
    if (this.#status === Status.RUNNING) throw new AlreadyRunning("client is already connected");
    if (this.#status === Status.CLOSING) throw new Closing("client is closing");
    if (this.#connecting) throw new AlreadyRunning("a connection attempt is under way");
    this.#cancelReconnect();
    this.#closedByUser = false;
    this.#connecting = true;
    try {
      await this.#open();
    } finally {
      this.#connecting = false;
    }
    this.#move(Status.RUNNING);
    this.#startHeartbeat();
  }

  async #open(): Promise<void> {
    if (this.#factory === undefined) {
      try {
        this.#factory = await defaultFactory();
      } catch (err) {
        throw new HandshakeError(String(err instanceof Error ? err.message : err));
      }
    }
    const factory = this.#factory;
    const url = this.url;
    const timeoutMs = this.options.connectTimeoutMs;
    await new Promise<void>((resolve, reject) => {
      let sock: SocketLike;
      try {
        sock = factory(url, this.options.maxMessageSize);
      } catch (err) {
        reject(new HandshakeError(`could not connect to ${url}: ${String(err)}`));
        return;
      }
      sock.binaryType = "arraybuffer";
      let settled = false;
      let errorText = "";
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        detach(sock);
        abort(sock);
        reject(new HandshakeError(`could not connect to ${url} within ${timeoutMs} ms`));
      }, timeoutMs);
      sock.onerror = (ev: SocketErrorEvent) => {
        errorText = errorMessage(ev);
      };
      sock.onopen = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.#attach(sock);
        resolve();
      };
      sock.onclose = (ev: SocketCloseEvent) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        detach(sock);
        const why = errorText !== "" ? errorText : `closed with code ${ev.code}`;
        reject(new HandshakeError(`could not connect to ${url}: ${why}`));
      };
    });
  }

  #attach(sock: SocketLike): void {
    this.#socket = sock;
    this.#lostCode = undefined;
    this.closeCode = undefined;
    sock.onmessage = (ev: SocketMessageEvent) => {
      if (this.#socket === sock) this.#onData(sock, ev.data);
    };
    sock.onerror = (ev: SocketErrorEvent) => {
      // Followed by a close event. Node's `ws` enforces maxPayload from the
      // frame header, closes with 1009 and reports it here (the close event
      // then says 1006): fail the pending calls now, with the real code.
      const code = (ev.error as { code?: unknown } | undefined)?.code;
      if (code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH" && this.#socket === sock) {
        this.#report(new MessageTooLarge(undefined, this.options.maxMessageSize));
        this.#lostCode = 1009;
        this.#failPending(
          new ConnectionLost(`connection to ${this.url} dropped: message too big (code 1009)`, 1009),
        );
      }
    };
    sock.onclose = (ev: SocketCloseEvent) => {
      this.#onSocketClosed(sock, ev.code);
    };
  }

  // --------------------------------------------------------------------- input
  #onData(sock: SocketLike, data: unknown): void {
    if (typeof data === "string") {
      this.#report(
        new UnexpectedText(
          `text message of ${data.length} characters ignored: goomerang messages are binary`,
        ),
      );
      return;
    }
    const bytes = toBytes(data);
    if (bytes === undefined) {
      this.#report(new MalformedFrame(`unexpected message data of type ${typeof data}`));
      return;
    }
    if (bytes.byteLength > this.options.maxMessageSize) {
      // Browsers have read it already; policy is kept: close with 1009 (RFC 6455 7.4.1).
      this.#report(new MessageTooLarge(bytes.byteLength, this.options.maxMessageSize));
      this.#drop(sock, 1009, "message too big");
      return;
    }
    let frame: Frame;
    try {
      frame = unpackFrame(bytes);
    } catch (err) {
      this.#report(err as GoomerangError);
      return;
    }
    if (frame.isSync) {
      this.#onReply(frame);
      return;
    }
    const route = this.#routes.get(frame.kind);
    if (route === undefined) {
      this.#report(new UnknownKind(frame.kind));
      return;
    }
    if (route.handler === undefined) {
      this.#report(new GoomerangError(`no handler for kind '${frame.kind}'`));
      return;
    }
    let received: Received;
    try {
      received = received_(frame, route.schema);
    } catch (err) {
      this.#report(new MalformedFrame(`payload of kind '${frame.kind}' does not decode: ${String(err)}`));
      return;
    }
    const handler = route.handler;
    try {
      const result = handler(this.#sender, received);
      if (result !== undefined && typeof (result as Promise<void>).then === "function") {
        (result as Promise<void>).catch((err: unknown) => this.#handlerFailed(frame.kind, err));
      }
    } catch (err) {
      this.#handlerFailed(frame.kind, err);
    }
  }

  #handlerFailed(kind: string, err: unknown): void {
    this.#report(new HandlerError(`handler for '${kind}' failed: ${String(err)}`, { cause: err }));
  }

  #onReply(frame: Frame): void {
    const call = this.#pending.get(frame.uuid);
    if (call === undefined) {
      this.#report(
        new UnexpectedReply(
          `sync reply ${frame.uuid} (${frame.kind}) arrived after its caller gave up, or was ` +
            "never asked for; dropped",
        ),
      );
      return;
    }
    this.#pending.delete(frame.uuid);
    let schema = call.replyType;
    if (schema !== undefined && schema.typeName !== frame.kind) {
      call.reject(
        new UnexpectedReply(
          `sync reply ${frame.uuid} is a ${frame.kind}, not the ${schema.typeName} asked for`,
        ),
      );
      return;
    }
    schema ??= this.#routes.get(frame.kind)?.schema;
    if (schema === undefined) {
      call.reject(new UnknownKind(frame.kind));
      return;
    }
    try {
      call.resolve(received_(frame, schema));
    } catch (err) {
      call.reject(
        new MalformedFrame(`reply payload of kind '${frame.kind}' does not decode: ${String(err)}`),
      );
    }
  }

  #onSocketClosed(sock: SocketLike, code: number): void {
    if (sock !== this.#socket) return;
    detach(sock);
    this.#socket = null;
    this.#stopHeartbeat();
    const effective = this.#lostCode ?? code;
    this.closeCode = effective;
    this.#failPending(
      new ConnectionLost(`connection to ${this.url} lost (code ${effective})`, effective),
    );
    if (this.#status === Status.CLOSING) {
      const waiter = this.#closeWaiter;
      this.#closeWaiter = undefined;
      waiter?.();
      return;
    }
    if (this.#status !== Status.RUNNING) return;
    if (effective !== 1000 && effective !== 1001) {
      this.#report(
        new ConnectionLost(`connection to ${this.url} lost (code ${effective})`, effective),
      );
    }
    this.#move(Status.CLOSED);
    this.#run("onClose", effective);
    if (this.options.reconnect && !this.#closedByUser) {
      this.#scheduleReconnect(1, this.options.reconnectInitialMs);
    }
  }

  /** Give up on a connection from our side: pending calls fail at once, close with `code`. */
  #drop(sock: SocketLike, code: number, reason: string): void {
    if (this.#lostCode !== undefined) return;
    this.#lostCode = code;
    this.#failPending(
      new ConnectionLost(`connection to ${this.url} dropped: ${reason} (code ${code})`, code),
    );
    try {
      sock.close(code, reason);
    } catch {
      // Browsers only let scripts send 1000 and 3000-4999: 4009 says 1009 in the
      // private-use range (RFC 6455 section 7.4.2).
      try {
        sock.close(4000 + (code % 1000), reason);
      } catch {
        abort(sock);
      }
    }
  }

  // -------------------------------------------------------------------- output
  #checkRunning(): SocketLike {
    const sock = this.#socket;
    // readyState 1 is OPEN: once the server's Close arrived, the socket is CLOSING
    // (2) before its close event, and a send would be dropped without a word.
    if (
      this.#status === Status.RUNNING &&
      sock !== null &&
      sock.readyState === 1 &&
      this.#lostCode === undefined
    ) {
      return sock;
    }
    if (this.#status === Status.CLOSING) {
      throw new Closing("client is closing: no new messages are accepted");
    }
    if (this.#status === Status.RUNNING) {
      throw new NotRunning("the connection is closing or lost: no new messages are accepted");
    }
    const name = ["NEW", "RUNNING", "CLOSING", "CLOSED"][this.#status];
    throw new NotRunning(`client is ${name}: connect() first`);
  }

  #schemaOf(message: Message): DescMessage {
    const route = this.#routes.get(message.$typeName);
    if (route === undefined) throw new UnknownKind(message.$typeName);
    return route.schema;
  }

  #write(sock: SocketLike, frame: Uint8Array): void {
    if (frame.byteLength > this.options.maxMessageSize) {
      throw new MessageTooLarge(frame.byteLength, this.options.maxMessageSize);
    }
    sock.send(frame);
  }

  async #drain(sock: SocketLike): Promise<void> {
    // The WebSocket API has no drain event: poll bufferedAmount while above the limit.
    while (sock.bufferedAmount > this.options.writeLimit && this.#socket === sock) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  /**
   * Send `message` to the server; no reply expected. Resolves with the payload
   * size in bytes once handed to the socket (after waiting while the socket
   * buffers more than `writeLimit`).
   *
   * @throws NotRunning / Closing when not RUNNING; UnknownKind when the kind is
   *   not registered; MessageTooLarge past `maxMessageSize`.
   */
  async send(message: Message, options: SendOptions = {}): Promise<number> {
    const sock = this.#checkRunning();
    const payload = toBinary(this.#schemaOf(message), message);
    this.#write(sock, packFrame({ kind: message.$typeName, payload, headers: options.headers }));
    if (sock.bufferedAmount > this.options.writeLimit) await this.#drain(sock);
    return payload.byteLength;
  }

  /**
   * Send `message` as a request and resolve with the server's reply. The
   * reply's kind must be registered (`handle` or `registerMessage`).
   *
   * @throws NotRunning / Closing / UnknownKind / MessageTooLarge / TooManyPending at once.
   * @throws Timeout when no reply comes within `timeoutMs`.
   * @throws Aborted when `signal` aborts.
   * @throws ConnectionLost when the connection goes away first (at once, never left hanging).
   * @throws UnknownKind / MalformedFrame when the reply cannot be decoded.
   * @throws UnexpectedReply when `replyType` is given and the reply is of another kind.
   */
  sendSync<R extends DescMessage = DescMessage>(
    message: Message,
    options: SendSyncOptions<R> = {},
  ): Promise<Received<MessageShape<R>>> {
    let sock: SocketLike;
    let frame: Uint8Array;
    const uuid = uuidv4();
    const kind = message.$typeName;
    try {
      sock = this.#checkRunning();
      if (options.signal?.aborted === true) {
        throw new Aborted(`sync request (${kind}) aborted before it was sent`);
      }
      if (this.#pending.size >= this.options.maxPendingSync) {
        throw new TooManyPending(
          `${this.#pending.size} sync requests already pending ` +
            `(maxPendingSync=${this.options.maxPendingSync})`,
        );
      }
      const payload = toBinary(this.#schemaOf(message), message);
      frame = packFrame({ kind, payload, headers: options.headers, uuid, isSync: true });
      if (frame.byteLength > this.options.maxMessageSize) {
        throw new MessageTooLarge(frame.byteLength, this.options.maxMessageSize);
      }
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const timeoutMs = options.timeoutMs ?? this.options.syncTimeoutMs;
    const signal = options.signal;
    return new Promise<Received<MessageShape<R>>>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = (): void => {
        if (this.#pending.get(uuid) !== call) return;
        this.#pending.delete(uuid);
        done();
        reject(new Aborted(`sync request ${uuid} (${kind}) aborted`));
      };
      const done = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      };
      const call: Pending = {
        kind,
        replyType: options.replyType,
        resolve: (reply) => {
          done();
          resolve(reply as Received<MessageShape<R>>);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      this.#pending.set(uuid, call);
      if (Number.isFinite(timeoutMs)) {
        timer = setTimeout(() => {
          if (this.#pending.get(uuid) !== call) return;
          this.#pending.delete(uuid);
          done();
          reject(new Timeout(`no reply to sync request ${uuid} (${kind}) within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      sock.send(frame);
    });
  }

  /**
   * Ask the server to send `message` to every connected client, this one
   * included. The server must know the kind. Resolves with the payload size.
   */
  async broadcast(message: Message, options: SendOptions = {}): Promise<number> {
    const sock = this.#checkRunning();
    const payload = toBinary(this.#schemaOf(message), message);
    this.#write(sock, packBroadcast(message.$typeName, payload, options.headers));
    return payload.byteLength;
  }

  /**
   * Ask the server to send `message` to the subscribers of `topic`. Resolves with the payload size.
   *
   * @throws RangeError for the empty topic, which is reserved (docs/PROTOCOL-extensions.md).
   */
  async publish(topic: string, message: Message, options: SendOptions = {}): Promise<number> {
    checkTopic(topic);
    const sock = this.#checkRunning();
    const payload = toBinary(this.#schemaOf(message), message);
    this.#write(sock, packPublish(topic, message.$typeName, payload, options.headers));
    return payload.byteLength;
  }

  /**
   * Subscribe to `topic` (kept across reconnects). There is no acknowledgement
   * on the wire (as in Go goomerang): a `sendSync` round trip after it proves
   * the server has processed it.
   */
  async subscribe(topic: string): Promise<void> {
    checkTopic(topic);
    const sock = this.#checkRunning();
    this.#write(sock, packSubscribe(topic));
    this.#topics.add(topic);
  }

  /** Unsubscribe from `topic`. */
  async unsubscribe(topic: string): Promise<void> {
    checkTopic(topic);
    const sock = this.#checkRunning();
    this.#write(sock, packUnsubscribe(topic));
    this.#topics.delete(topic);
  }

  // --------------------------------------------------------------------- close
  /**
   * Close gracefully: send a Close frame with `code` (browsers allow 1000 and
   * 3000-4999), wait up to `closeTimeoutMs` for the server's answer, reject
   * pending `sendSync` calls with {@link ConnectionLost}, end CLOSED. Also stops
   * a pending reconnect.
   *
   * @throws NotRunning when there is nothing to close.
   */
  async close(code = 1000): Promise<void> {
    if (this.#status !== Status.RUNNING) {
      if (this.#status === Status.CLOSED && (this.#reconnectTimer !== undefined || this.#connecting)) {
        this.#closedByUser = true;
        this.#cancelReconnect();
        return;
      }
      throw new NotRunning(`client is ${["NEW", "RUNNING", "CLOSING", "CLOSED"][this.#status]}: nothing to close`);
    }
    this.#closedByUser = true;
    this.#move(Status.CLOSING);
    this.#stopHeartbeat();
    const sock = this.#socket;
    if (sock !== null) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          this.#closeWaiter = undefined;
          if (this.#socket === sock) {
            detach(sock);
            this.#socket = null;
            abort(sock);
          }
          resolve();
        }, this.options.closeTimeoutMs);
        this.#closeWaiter = () => {
          clearTimeout(timer);
          resolve();
        };
        try {
          sock.close(code);
        } catch (err) {
          this.#closeWaiter = undefined;
          clearTimeout(timer);
          detach(sock);
          this.#socket = null;
          abort(sock);
          this.#report(new GoomerangError(`close(${code}) refused: ${String(err)}`));
          resolve();
        }
      });
    }
    this.#failPending(new ConnectionLost("client closed while the request was pending"));
    this.closeCode ??= code;
    this.#move(Status.CLOSED);
    this.#run("onClose", this.closeCode);
  }

  #failPending(error: ConnectionLost): void {
    if (this.#pending.size === 0) return;
    const pending = this.#pending;
    this.#pending = new Map();
    for (const call of pending.values()) call.reject(error);
  }

  // ----------------------------------------------------------------- reconnect
  #scheduleReconnect(attempt: number, delayMs: number): void {
    const wait = delayMs * (0.5 + Math.random() / 2);
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#reconnect(attempt, delayMs, wait);
    }, wait);
  }

  async #reconnect(attempt: number, delayMs: number, waited: number): Promise<void> {
    if (this.#closedByUser || this.#status !== Status.CLOSED || this.#connecting) return;
    this.#run("onReconnectAttempt", attempt, waited);
    this.#connecting = true; // connect() meanwhile: AlreadyRunning, never a second socket
    try {
      await this.#open();
    } catch (err) {
      this.#connecting = false;
      this.#report(new ConnectionLost(`reconnect attempt ${attempt} failed: ${errorText(err)}`));
      if (!this.#closedByUser && this.#status === Status.CLOSED) {
        this.#scheduleReconnect(attempt + 1, Math.min(delayMs * 2, this.options.reconnectMaxMs));
      }
      return;
    }
    this.#connecting = false;
    const sock = this.#socket;
    if (sock === null) return; // lost again before we got here; its close handler decided
    if (this.#closedByUser) {
      detach(sock);
      this.#socket = null;
      sock.close(1000);
      return;
    }
    this.#move(Status.RUNNING);
    this.#startHeartbeat();
    for (const topic of this.#topics) sock.send(packSubscribe(topic));
  }

  #cancelReconnect(): void {
    if (this.#reconnectTimer !== undefined) {
      clearTimeout(this.#reconnectTimer);
      this.#reconnectTimer = undefined;
    }
  }

  // ----------------------------------------------------------------- heartbeat
  #startHeartbeat(): void {
    const sock = this.#socket;
    const interval = this.options.heartbeatIntervalMs;
    if (sock === null || !(interval > 0) || !isPingable(sock)) return;
    sock.on("pong", () => {
      if (this.#pongDeadline !== undefined) clearTimeout(this.#pongDeadline);
      this.#pongDeadline = undefined;
    });
    this.#heartbeat = setInterval(() => {
      if (this.#socket !== sock) return;
      sock.ping("ping");
      if (this.#pongDeadline === undefined && this.options.pingTimeoutMs > 0) {
        this.#pongDeadline = setTimeout(() => {
          this.#pongDeadline = undefined;
          this.#report(new ConnectionLost(`${this.url} did not answer pings; dropping`));
          sock.terminate();
        }, this.options.pingTimeoutMs);
      }
    }, interval);
    unref(this.#heartbeat);
  }

  #stopHeartbeat(): void {
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    if (this.#pongDeadline !== undefined) clearTimeout(this.#pongDeadline);
    this.#heartbeat = undefined;
    this.#pongDeadline = undefined;
  }

  // --------------------------------------------------------------------- hooks
  #move(status: Status): void {
    if (this.#status === status) return;
    this.#status = status;
    this.#run("onStatusChange", status);
  }

  #report(error: GoomerangError): void {
    const list = this.#hooks.get("onError");
    if (list === undefined || list.length === 0) return;
    for (const fn of list) {
      try {
        (fn as (e: GoomerangError) => void)(error);
      } catch (err) {
        console.error("goomerang: an onError hook threw", err);
      }
    }
  }

  #run(name: Exclude<HookName, "onError">, ...args: unknown[]): void {
    const list = this.#hooks.get(name);
    if (list === undefined) return;
    for (const fn of list) {
      try {
        (fn as (...a: unknown[]) => void)(...args);
      } catch (err) {
        this.#report(new HandlerError(`hook ${name} threw: ${String(err)}`, { cause: err }));
      }
    }
  }
}

/** The empty topic is reserved (the servers' backplanes use it for broadcast). */
function checkTopic(topic: string): void {
  if (topic === "") throw new RangeError("the empty topic is reserved: name a topic");
}

function received_(frame: Frame, schema: DescMessage): Received {
  return {
    payload: fromBinary(schema, frame.payload),
    headers: frame.headers,
    kind: frame.kind,
    uuid: frame.uuid,
    isSync: frame.isSync,
    creation: frame.creation,
    payloadSize: frame.payload.byteLength,
  };
}

function toBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}

function detach(sock: SocketLike): void {
  sock.onopen = null;
  sock.onmessage = null;
  sock.onerror = null;
  sock.onclose = null;
}

function abort(sock: SocketLike): void {
  if (isPingable(sock)) {
    sock.terminate();
  } else {
    try {
      sock.close();
    } catch {
      // already closed
    }
  }
}

function errorMessage(ev: { message?: string; error?: unknown }): string {
  if (typeof ev.message === "string" && ev.message !== "") return ev.message;
  if (ev.error instanceof Error) return ev.error.message;
  return "";
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function unref(timer: unknown): void {
  const t = timer as { unref?: () => void };
  if (typeof t.unref === "function") t.unref();
}
