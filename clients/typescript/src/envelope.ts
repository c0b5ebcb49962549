/**
 * The goomerang v0.3.0 envelope (`goomerang.protocol.Frame`) and the client
 * commands, packed and unpacked with the generated protobuf-es schemas.
 *
 * Field order and proto3 defaults follow PROTOCOL.md ("What the Go
 * implementation puts on the wire"): protobuf-es writes fields in
 * field-number order and omits defaults, so a plain send carries no `uuid`
 * and no `is_sync`, exactly like the Go client.
 *
 * @module
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { MalformedFrame } from "./errors.js";
import {
  BroadcastCmdSchema,
  type Frame,
  FrameSchema,
  PublishCmdSchema,
  SubscribeCmdSchema,
  UnsubscribeCmdSchema,
} from "./gen/goomerang_frame_pb.js";

/** Kind of the broadcast command (`goomerang.protocol.BroadcastCmd`). */
export const BROADCAST_KIND = BroadcastCmdSchema.typeName;
/** Kind of the publish command (`goomerang.protocol.PublishCmd`). */
export const PUBLISH_KIND = PublishCmdSchema.typeName;
/** Kind of the subscribe command (`goomerang.protocol.SubscribeCmd`). */
export const SUBSCRIBE_KIND = SubscribeCmdSchema.typeName;
/** Kind of the unsubscribe command (`goomerang.protocol.UnsubscribeCmd`). */
export const UNSUBSCRIBE_KIND = UnsubscribeCmdSchema.typeName;

/** Header key prefix of a command's original headers (PROTOCOL.md, "Commands"). */
export const COMMAND_HEADER_PREFIX = "message-";

/** What goes into one envelope. */
export interface FrameFields {
  /** Full protobuf name of the payload type, e.g. `goomerang.example.MessageV1`. */
  kind: string;
  /** The serialized user message. */
  payload: Uint8Array;
  /** User headers (written in insertion order). */
  headers?: Readonly<Record<string, string>> | undefined;
  /** Correlation id of a sync request or reply (36-char UUID text); empty on plain sends. */
  uuid?: string | undefined;
  /** True on a sync request and its reply. */
  isSync?: boolean | undefined;
  /** Creation time; now when absent. */
  creation?: Timestamp | undefined;
}

/**
 * Now as a protobuf Timestamp, with sub-millisecond nanos where the platform
 * has a high-resolution clock (`performance.timeOrigin + performance.now()`).
 */
export function now(): Timestamp {
  const perf = globalThis.performance;
  const ms = perf !== undefined ? perf.timeOrigin + perf.now() : Date.now();
  const whole = Math.floor(ms / 1000);
  const nanos = Math.min(999_999_999, Math.floor((ms - whole * 1000) * 1_000_000));
  return create(TimestampSchema, { seconds: BigInt(whole), nanos });
}

/** Pack one envelope (the bytes of one binary WebSocket message). */
export function packFrame(fields: FrameFields): Uint8Array {
  const frame = create(FrameSchema, {
    uuid: fields.uuid ?? "",
    kind: fields.kind,
    payloadSize: BigInt(fields.payload.byteLength),
    isSync: fields.isSync ?? false,
    creation: fields.creation ?? now(),
    headers: fields.headers !== undefined ? { ...fields.headers } : {},
    payload: fields.payload,
  });
  return toBinary(FrameSchema, frame);
}

/**
 * Unpack one envelope.
 *
 * @throws MalformedFrame when the bytes are not a `goomerang.protocol.Frame`,
 *   or carry no kind.
 */
export function unpackFrame(bytes: Uint8Array): Frame {
  let frame: Frame;
  try {
    frame = fromBinary(FrameSchema, bytes);
  } catch (err) {
    throw new MalformedFrame(
      `binary message of ${bytes.byteLength} bytes is not a goomerang envelope: ${String(err)}`,
    );
  }
  if (frame.kind === "") {
    throw new MalformedFrame(`binary message of ${bytes.byteLength} bytes carries no kind`);
  }
  return frame;
}

function prefixed(headers: Readonly<Record<string, string>> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (headers !== undefined) {
    for (const [k, v] of Object.entries(headers)) {
      out[COMMAND_HEADER_PREFIX + k] = v;
    }
  }
  return out;
}

/** A `BroadcastCmd` envelope: the server sends the message to every client (sender included). */
export function packBroadcast(
  kind: string,
  message: Uint8Array,
  headers?: Readonly<Record<string, string>>,
): Uint8Array {
  const payload = toBinary(BroadcastCmdSchema, create(BroadcastCmdSchema, { kind, message }));
  return packFrame({ kind: BROADCAST_KIND, payload, headers: prefixed(headers) });
}

/** A `PublishCmd` envelope: the server sends the message to the subscribers of `topic`. */
export function packPublish(
  topic: string,
  kind: string,
  message: Uint8Array,
  headers?: Readonly<Record<string, string>>,
): Uint8Array {
  const payload = toBinary(PublishCmdSchema, create(PublishCmdSchema, { topic, kind, message }));
  return packFrame({ kind: PUBLISH_KIND, payload, headers: prefixed(headers) });
}

/** A `SubscribeCmd` envelope (no acknowledgement on the wire). */
export function packSubscribe(topic: string): Uint8Array {
  const payload = toBinary(SubscribeCmdSchema, create(SubscribeCmdSchema, { topic }));
  return packFrame({ kind: SUBSCRIBE_KIND, payload });
}

/** An `UnsubscribeCmd` envelope. */
export function packUnsubscribe(topic: string): Uint8Array {
  const payload = toBinary(UnsubscribeCmdSchema, create(UnsubscribeCmdSchema, { topic }));
  return packFrame({ kind: UNSUBSCRIBE_KIND, payload });
}
