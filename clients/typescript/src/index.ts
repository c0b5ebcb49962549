/**
 * goomerang for browsers and Node: protocol buffers over WebSockets, wire
 * compatible with Go goomerang v0.3.0 and goomerang for Python.
 *
 * @module
 */
export {
  Client,
  DEFAULTS,
  toWebSocketUrl,
  type ClientHooks,
  type ClientOptions,
  type Handler,
  type Received,
  type Sender,
  type SendOptions,
  type SendSyncOptions,
} from "./client.js";
export {
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
export {
  BROADCAST_KIND,
  COMMAND_HEADER_PREFIX,
  type FrameFields,
  now,
  packBroadcast,
  packFrame,
  packPublish,
  packSubscribe,
  packUnsubscribe,
  PUBLISH_KIND,
  SUBSCRIBE_KIND,
  UNSUBSCRIBE_KIND,
  unpackFrame,
} from "./envelope.js";
export type { SocketLike, WebSocketFactory } from "./socket.js";
export { Status, statusName } from "./status.js";
export { uuidv4 } from "./uuid.js";
