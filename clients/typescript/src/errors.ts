/**
 * One error hierarchy, rooted in {@link GoomerangError}, with the names of the
 * Python client's errors (goomerang_proto/errors.py) so that code and docs read
 * the same on both sides.
 *
 * @module
 */

/** Base class of every error this client throws, rejects with or reports. */
export class GoomerangError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The client is not RUNNING: `connect()` first (or again). */
export class NotRunning extends GoomerangError {}

/** `connect()` while already RUNNING. */
export class AlreadyRunning extends GoomerangError {}

/** The client is CLOSING: no new messages are accepted. */
export class Closing extends GoomerangError {}

/** The connection went away while an operation was waiting on it (pending `sendSync`). */
export class ConnectionLost extends GoomerangError {
  /** The WebSocket close code, when one was received (1006: no Close frame). */
  readonly code: number | undefined;

  constructor(message: string, code?: number) {
    super(message);
    this.code = code;
  }
}

/** `connect()` failed: refused, rejected upgrade (HTTP 401/403/503...), or too slow. */
export class HandshakeError extends GoomerangError {}

/** No reply to a `sendSync` within its `timeoutMs`. */
export class Timeout extends GoomerangError {}

/** `sendSync` aborted through its `AbortSignal`. */
export class Aborted extends GoomerangError {}

/** `maxPendingSync` requests are already waiting for their replies. */
export class TooManyPending extends GoomerangError {}

/**
 * A message kind that is not registered on this client: received from the
 * server (reported through `onError`; the connection stays up), or given to
 * `send` without `handle`/`registerMessage` first (thrown).
 */
export class UnknownKind extends GoomerangError {
  readonly kind: string;

  constructor(kind: string) {
    super(`unknown message kind '${kind}': register it with handle() or registerMessage()`);
    this.kind = kind;
  }
}

/** A message larger than `maxMessageSize` (bytes of the whole envelope). */
export class MessageTooLarge extends GoomerangError {
  /** Bytes of the message, when known (Node's `ws` stops reading at the frame header). */
  readonly size: number | undefined;
  readonly limit: number;

  constructor(size: number | undefined, limit: number) {
    super(
      size === undefined
        ? `message exceeds maxMessageSize=${limit}`
        : `message of ${size} bytes exceeds maxMessageSize=${limit}`,
    );
    this.size = size;
    this.limit = limit;
  }
}

/** A binary message that is not a goomerang envelope, or a payload that does not decode. */
export class MalformedFrame extends GoomerangError {}

/** A text WebSocket message: goomerang speaks binary messages only. Reported, ignored. */
export class UnexpectedText extends GoomerangError {}

/** A sync reply nobody waits for (late, after its caller gave up, or never asked). */
export class UnexpectedReply extends GoomerangError {}

/** A user handler threw or rejected; the original is the `cause`. */
export class HandlerError extends GoomerangError {}
