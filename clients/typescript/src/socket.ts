/**
 * The WebSocket the client runs over: the platform's `WebSocket` in browsers
 * (and in Node 22+), the `ws` package in Node 20. Only the part of the
 * WHATWG WebSocket interface that both offer is used.
 *
 * @module
 */

/** The event handlers' arguments, reduced to what the client reads. */
export interface SocketMessageEvent {
  readonly data: unknown;
}
export interface SocketCloseEvent {
  readonly code: number;
  readonly reason: string;
}
export interface SocketErrorEvent {
  readonly message?: string;
  readonly error?: unknown;
}

/** The subset of the WHATWG `WebSocket` interface (and of `ws`'s) that the client uses. */
export interface SocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  // `any`: the platform's handlers take DOM events, ws's its own; the client
  // reads only the fields of SocketMessageEvent, SocketCloseEvent and SocketErrorEvent.
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: any) => void) | null;
  onclose: ((ev: any) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** What Node's `ws` adds: protocol-level pings and an abrupt close. */
export interface PingableSocket extends SocketLike {
  ping(data?: string): void;
  terminate(): void;
  on(event: "pong", listener: () => void): unknown;
}

/** Opens a WebSocket to `url`. `maxPayload` is the largest message to accept, in bytes. */
export type WebSocketFactory = (url: string, maxPayload: number) => SocketLike;

export function isPingable(sock: SocketLike): sock is PingableSocket {
  const s = sock as Partial<PingableSocket>;
  return typeof s.ping === "function" && typeof s.terminate === "function" && typeof s.on === "function";
}

type WebSocketCtor = new (url: string) => SocketLike;
type WsCtor = new (url: string, protocols: string[], options: { maxPayload: number }) => SocketLike;

/**
 * The default factory: `globalThis.WebSocket` when the platform has one,
 * else `ws` (loaded on first use; Node only). With `ws`, `maxPayload` is
 * enforced while reading (the frame header decides; close code 1009).
 *
 * @throws Error when neither is available.
 */
export async function defaultFactory(): Promise<WebSocketFactory> {
  const platform = (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
  if (platform !== undefined) {
    return (url) => new platform(url);
  }
  let mod: { WebSocket?: WsCtor; default?: WsCtor };
  try {
    const name = "ws";
    mod = (await import(/* @vite-ignore */ name)) as { WebSocket?: WsCtor; default?: WsCtor };
  } catch (err) {
    throw new Error(
      "no WebSocket implementation: this platform has no global WebSocket and the 'ws' " +
        `package could not be loaded (npm install ws): ${String(err)}`,
    );
  }
  const Ws = mod.WebSocket ?? mod.default;
  if (Ws === undefined) {
    throw new Error("the 'ws' package has no WebSocket export");
  }
  return (url, maxPayload) => new Ws(url, [], { maxPayload });
}
