/**
 * The browser test's page: a client of the server that served it (or of
 * `?ws=URL`), authenticated by query parameter (`?token=`). It does a sendSync
 * round trip, subscribes to `news`, and records what it receives in
 * `window.goomerangTest.results`, which the test reads.
 */
import { create } from "@bufbuild/protobuf";
import { Client, HandshakeError, statusName } from "../src/index.js";
import {
  BadReplyV1Schema,
  MessageV1Schema,
  ReplyV1Schema,
} from "../src/gen/goomerang_example_pb.js";

/** What the page records; the tests read it. */
export interface Results {
  ready: boolean;
  error: string;
  reply: { kind: string; message: string; headers: Record<string, string> } | null;
  received: { message: string; headers: Record<string, string> }[];
  errors: string[];
  statuses: string[];
  closes: (number | undefined)[];
  lost: string[];
  tiny: { errors: string[]; status: string; closeCode: number | undefined; received: number };
}

const params = new URLSearchParams(location.search);
const token = params.get("token");
const target = params.get("ws") ?? (token !== null ? `/ws?token=${encodeURIComponent(token)}` : "/ws");
const results: Results = {
  ready: false,
  error: "",
  reply: null,
  received: [],
  errors: [],
  statuses: [],
  closes: [],
  lost: [],
  tiny: { errors: [], status: "NEW", closeCode: undefined, received: 0 },
};
const out = document.getElementById("out")!;
const show = (): void => {
  out.textContent = JSON.stringify(results, null, 2);
};

const msg = (text: string) => create(MessageV1Schema, { message: text });

function newClient(url: string): Client {
  const client = new Client(url, {
    onError: (e) => {
      results.errors.push(`${e.name}: ${e.message}`);
      show();
    },
  });
  client.handle(MessageV1Schema, () => undefined);
  client.registerMessage(ReplyV1Schema);
  return client;
}

const client = newClient(target);
client.addHook("onStatusChange", (s) => results.statuses.push(statusName(s)));
client.addHook("onClose", (code) => results.closes.push(code));
client.registerMessage(BadReplyV1Schema);

/** `n` sendSync calls that the server leaves unanswered (no handler); their outcomes go to `results.lost`. */
function pendingCalls(n: number): number {
  for (let i = 0; i < n; i++) {
    client
      .sendSync(create(BadReplyV1Schema, { message: `q${i}` }), { timeoutMs: 60_000 })
      .then(
        () => results.lost.push("resolved"),
        (e: Error) => results.lost.push(e.name),
      );
  }
  return client.pendingCount;
}

/** A second client with maxMessageSize 512, subscribed to `big`; what happens goes to `results.tiny`. */
async function tinyClient(): Promise<void> {
  const t = results.tiny;
  const c = new Client(target, {
    maxMessageSize: 512,
    onError: (e) => t.errors.push(e.name),
    onStatusChange: (s) => (t.status = statusName(s)),
    onClose: (code) => (t.closeCode = code),
  });
  c.handle(MessageV1Schema, () => {
    t.received++;
  });
  c.registerMessage(ReplyV1Schema);
  await c.connect();
  await c.subscribe("big");
  await c.sendSync(msg("sync-point"), { timeoutMs: 5000 });
}
client.handle(MessageV1Schema, (_sender, m) => {
  results.received.push({ message: m.payload.message, headers: { ...m.headers } });
  show();
});

/** Connect with the token in a cookie instead; the reply text of one round trip. */
async function cookieConnect(value: string): Promise<string> {
  document.cookie = `goomerang_token=${encodeURIComponent(value)}; path=/; SameSite=Strict`;
  const c = newClient("/ws");
  try {
    await c.connect();
    const reply = await c.sendSync(msg("cookie"), { timeoutMs: 5000 });
    await c.close();
    return (reply.payload as unknown as { message: string }).message;
  } finally {
    document.cookie = "goomerang_token=; path=/; max-age=0";
  }
}

/** Connect without any token: the error's class name (HandshakeError expected). */
async function anonymousConnect(): Promise<string> {
  const c = newClient("/ws");
  try {
    await c.connect();
    await c.close();
    return "connected";
  } catch (e) {
    return e instanceof HandshakeError ? "HandshakeError" : String(e);
  }
}

/**
 * Measurements, bounded in count: sequential sendSync round trips, a window of
 * `window` in flight, and pub/sub latency (this client publishes to a topic it
 * subscribed to; the time until the message comes back through the server).
 */
async function bench(n: number, window: number): Promise<Record<string, number>> {
  const c = newClient(target);
  const arrivals = new Map<string, number>();
  let wake: (() => void) | undefined;
  c.handle(MessageV1Schema, (_s, m) => {
    arrivals.set(m.payload.message, performance.now());
    wake?.();
  });
  await c.connect();
  const m = msg("bench");
  for (let i = 0; i < 200; i++) await c.sendSync(m); // warm-up
  const rtts: number[] = [];
  let t0 = performance.now();
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await c.sendSync(m);
    rtts.push(performance.now() - t);
  }
  const sequential = n / ((performance.now() - t0) / 1000);
  rtts.sort((a, b) => a - b);
  t0 = performance.now();
  let sent = 0;
  const worker = async (): Promise<void> => {
    while (sent < n) {
      sent++;
      await c.sendSync(m);
    }
  };
  await Promise.all(Array.from({ length: window }, worker));
  const windowed = n / ((performance.now() - t0) / 1000);
  await c.subscribe("bench-latency");
  await c.sendSync(m);
  const lat: number[] = [];
  const samples = Math.min(n, 1000);
  for (let i = 0; i < samples; i++) {
    const key = `p${i}`;
    const got = new Promise<void>((resolve) => {
      wake = () => {
        if (arrivals.has(key)) resolve();
      };
    });
    const start = performance.now();
    await c.publish("bench-latency", msg(key));
    await got;
    lat.push(arrivals.get(key)! - start);
  }
  await c.close();
  lat.sort((a, b) => a - b);
  return {
    syncSequentialPerS: sequential,
    syncP50Ms: rtts[Math.floor(rtts.length / 2)]!,
    syncWindowedPerS: windowed,
    pubsubP50Ms: lat[Math.floor(lat.length * 0.5)]!,
    pubsubP99Ms: lat[Math.floor(lat.length * 0.99)]!,
  };
}

const api = { results, cookieConnect, anonymousConnect, bench, pendingCalls, tinyClient };
/** `window.goomerangTest`: what the tests call in the page. */
export type PageApi = typeof api;
(window as unknown as { goomerangTest: PageApi }).goomerangTest = api;

try {
  await client.connect();
  const reply = await client.sendSync(msg("hello from the browser"), { timeoutMs: 5000 });
  results.reply = {
    kind: reply.kind,
    message: (reply.payload as unknown as { message: string }).message,
    headers: { ...reply.headers },
  };
  await client.subscribe("news");
  await client.sendSync(msg("sync-point"), { timeoutMs: 5000 }); // the subscribe was processed
  results.ready = true;
} catch (e) {
  results.error = String(e);
}
show();
