/**
 * The envelope codec against a real Go goomerang v0.3.0 session (the bytes the
 * Python tests use, tests/proto/data/go-session.txt), and property tests of
 * the pack/unpack round trips (fast-check).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import fc from "fast-check";
import {
  MalformedFrame,
  packBroadcast,
  packFrame,
  packPublish,
  packSubscribe,
  packUnsubscribe,
  unpackFrame,
  uuidv4,
} from "../../src/index.js";
import { MessageV1Schema } from "../../src/gen/goomerang_example_pb.js";
import {
  BroadcastCmdSchema,
  PublishCmdSchema,
  SubscribeCmdSchema,
  UnsubscribeCmdSchema,
} from "../../src/gen/goomerang_frame_pb.js";
import { REPO } from "../helpers.js";

interface GoldenFrame {
  line: number;
  hex: string;
  fields: {
    uuid: string;
    kind: string;
    payloadSize: number;
    isSync: boolean;
    seconds: bigint;
    nanos: number;
    headers: Record<string, string>;
    payloadHex: string;
  };
}

/** Every binary frame of the capture: the envelope hex and the fields the capture lists. */
function goldenFrames(): GoldenFrame[] {
  const text = readFileSync(`${REPO}tests/proto/data/go-session.txt`, "utf8").split("\n");
  const out: GoldenFrame[] = [];
  for (let i = 0; i < text.length; i++) {
    const m = text[i]!.match(/^\s+unmasked payload hex: ([0-9a-f]+)$/);
    if (m === null || !/opcode=2\(binary\)/.test(text[i - 1]!)) continue;
    const f: GoldenFrame["fields"] = {
      uuid: "",
      kind: "",
      payloadSize: 0,
      isSync: false,
      seconds: 0n,
      nanos: 0,
      headers: {},
      payloadHex: "",
    };
    for (let j = i + 1; j < text.length && /^ {6}\d /.test(text[j]!); j++) {
      const line = text[j]!.trim();
      let g: RegExpMatchArray | null;
      if ((g = line.match(/^1 uuid='(.*)'$/))) f.uuid = g[1]!;
      else if ((g = line.match(/^2 kind='(.*)'$/))) f.kind = g[1]!;
      else if ((g = line.match(/^3 payloadSize=(\d+)$/))) f.payloadSize = Number(g[1]);
      else if ((g = line.match(/^4 is_sync=1$/))) f.isSync = true;
      else if ((g = line.match(/^5 creation=\{seconds:(\d+) nanos:(\d+)\}/))) {
        f.seconds = BigInt(g[1]!);
        f.nanos = Number(g[2]);
      } else if ((g = line.match(/^6 headers\['(.*)'\]='(.*)'$/))) f.headers[g[1]!] = g[2]!;
      else if ((g = line.match(/^7 payload\(\d+B\)=([0-9a-f]*)/))) f.payloadHex = g[1]!;
      else assert.fail(`unparsed field line ${j + 1}: ${line}`);
    }
    out.push({ line: i + 1, hex: m[1]!, fields: f });
  }
  return out;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const bytes = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, "hex"));

describe("envelope codec against the Go v0.3.0 capture", () => {
  const frames = goldenFrames();

  it("finds every binary frame of the capture", () => {
    assert.equal(frames.length, 9);
    const kinds = new Set(frames.map((f) => f.fields.kind));
    assert.deepEqual(
      [...kinds].sort(),
      [
        "goomerang.example.MessageV1",
        "goomerang.protocol.BroadcastCmd",
        "goomerang.protocol.PublishCmd",
        "goomerang.protocol.SubscribeCmd",
      ],
    );
  });

  it("decodes each frame to the fields the capture shows", () => {
    for (const g of frames) {
      const frame = unpackFrame(bytes(g.hex));
      assert.equal(frame.uuid, g.fields.uuid, `uuid, line ${g.line}`);
      assert.equal(frame.kind, g.fields.kind, `kind, line ${g.line}`);
      assert.equal(frame.payloadSize, BigInt(g.fields.payloadSize), `payloadSize, line ${g.line}`);
      assert.equal(frame.isSync, g.fields.isSync, `is_sync, line ${g.line}`);
      assert.equal(frame.creation?.seconds, g.fields.seconds, `seconds, line ${g.line}`);
      assert.equal(frame.creation?.nanos, g.fields.nanos, `nanos, line ${g.line}`);
      assert.deepEqual({ ...frame.headers }, g.fields.headers, `headers, line ${g.line}`);
      assert.equal(hex(frame.payload), g.fields.payloadHex, `payload, line ${g.line}`);
    }
  });

  it("packs the same fields to the very same bytes as Go", () => {
    for (const g of frames) {
      const packed = packFrame({
        kind: g.fields.kind,
        payload: bytes(g.fields.payloadHex),
        headers: g.fields.headers,
        uuid: g.fields.uuid,
        isSync: g.fields.isSync,
        creation: create(TimestampSchema, { seconds: g.fields.seconds, nanos: g.fields.nanos }),
      });
      assert.equal(hex(packed), g.hex, `frame at line ${g.line}`);
    }
  });

  it("packs the publish, broadcast and subscribe commands' payloads as Go does", () => {
    const msg = (text: string): Uint8Array =>
      toBinary(MessageV1Schema, create(MessageV1Schema, { message: text }));
    const byKind = (kind: string): GoldenFrame => frames.find((f) => f.fields.kind === kind)!;
    const pub = unpackFrame(packPublish("t1", "goomerang.example.MessageV1", msg("pub"), { k: "v" }));
    const goPub = byKind("goomerang.protocol.PublishCmd");
    assert.equal(hex(pub.payload), goPub.fields.payloadHex);
    assert.deepEqual({ ...pub.headers }, goPub.fields.headers);
    const bc = unpackFrame(packBroadcast("goomerang.example.MessageV1", msg("bcast")));
    assert.equal(hex(bc.payload), byKind("goomerang.protocol.BroadcastCmd").fields.payloadHex);
    const sub = unpackFrame(packSubscribe("t1"));
    const goSub = byKind("goomerang.protocol.SubscribeCmd");
    assert.equal(sub.kind, goSub.fields.kind);
    assert.equal(hex(sub.payload), goSub.fields.payloadHex);
  });

  it("rejects bytes that are not an envelope with MalformedFrame", () => {
    assert.throws(() => unpackFrame(bytes("ff")), MalformedFrame);
    assert.throws(() => unpackFrame(bytes("12")), MalformedFrame); // truncated kind
    assert.throws(() => unpackFrame(new Uint8Array(0)), MalformedFrame); // no kind
  });
});

const plain = (o: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(o));
const headersArb = fc.dictionary(fc.string(), fc.string(), { maxKeys: 5 });

describe("envelope round trips (fast-check)", () => {
  it("unpack(pack(fields)) gives the fields back", () => {
    fc.assert(
      fc.property(
        fc.record({
          kind: fc.string({ minLength: 1 }),
          payload: fc.uint8Array({ maxLength: 300 }),
          headers: headersArb,
          sync: fc.boolean(),
          seconds: fc.bigInt({ min: 0n, max: 253402300799n }),
          nanos: fc.integer({ min: 0, max: 999_999_999 }),
        }),
        (r) => {
          const uuid = r.sync ? uuidv4() : "";
          const creation = create(TimestampSchema, { seconds: r.seconds, nanos: r.nanos });
          const wire = packFrame({ ...r, uuid, isSync: r.sync, creation });
          const frame = unpackFrame(wire);
          assert.equal(frame.kind, r.kind);
          assert.equal(frame.uuid, uuid);
          assert.equal(frame.isSync, r.sync);
          assert.equal(frame.payloadSize, BigInt(r.payload.byteLength));
          assert.deepEqual(frame.payload, r.payload);
          assert.deepEqual(plain(frame.headers), plain(r.headers));
          assert.equal(frame.creation?.seconds, r.seconds);
          assert.equal(frame.creation?.nanos, r.nanos);
          // Deterministic: packing the decoded frame again gives the same bytes.
          assert.deepEqual(packFrame({ ...frame, creation: frame.creation }), wire);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("commands carry the message, kind, topic and prefixed headers", () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.string({ minLength: 1 }),
        fc.uint8Array({ maxLength: 200 }),
        headersArb,
        (topic, kind, message, headers) => {
          const prefixed = Object.fromEntries(
            Object.entries(headers).map(([k, v]) => [`message-${k}`, v]),
          );
          const pub = unpackFrame(packPublish(topic, kind, message, headers));
          assert.equal(pub.kind, "goomerang.protocol.PublishCmd");
          assert.deepEqual(plain(pub.headers), prefixed);
          const p = fromBinary(PublishCmdSchema, pub.payload);
          assert.deepEqual([p.topic, p.kind, p.message], [topic, kind, message]);
          const bc = unpackFrame(packBroadcast(kind, message, headers));
          assert.equal(bc.kind, "goomerang.protocol.BroadcastCmd");
          assert.deepEqual(plain(bc.headers), prefixed);
          const b = fromBinary(BroadcastCmdSchema, bc.payload);
          assert.deepEqual([b.kind, b.message], [kind, message]);
          assert.equal(fromBinary(SubscribeCmdSchema, unpackFrame(packSubscribe(topic)).payload).topic, topic);
          assert.equal(
            fromBinary(UnsubscribeCmdSchema, unpackFrame(packUnsubscribe(topic)).payload).topic,
            topic,
          );
        },
      ),
      { numRuns: 200 },
    );
  });

  it("unpack never throws anything but MalformedFrame on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (data) => {
        try {
          const frame = unpackFrame(data);
          assert.notEqual(frame.kind, "");
        } catch (err) {
          assert.ok(err instanceof MalformedFrame, `threw ${String(err)}`);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("uuidv4 gives RFC 9562 version 4 text, all distinct", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const u = uuidv4();
      assert.match(u, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      seen.add(u);
    }
    assert.equal(seen.size, 5000);
  });
});
