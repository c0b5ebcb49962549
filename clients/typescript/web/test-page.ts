/**
 * The browser test's page: a client of the server that served it (or of
 * `?ws=URL`), authenticated by query parameter (`?token=`). It does a sendSync
 * round trip, subscribes to `news`, and records what it receives in
 * `window.goomerangTest.results`, which the test reads.
 */
import { create } from "@bufbuild/protobuf";
import { Client, HandshakeError, statusName } from "../src/index.js";
import { MessageV1Schema, ReplyV1Schema } from "../src/gen/goomerang_example_pb.js";

interface Results {
  ready: boolean;
  error: string;
  reply: { kind: string; message: string; headers: Record<string, string> } | null;
  received: { message: string; headers: Record<string, string> }[];
  errors: string[];
  statuses: string[];
}

const params = new URLSearchParams(location.search);
const token = params.get("token");
const target = params.get("ws") ?? (token !== null ? `/ws?token=${encodeURIComponent(token)}` : "/ws");
const results: Results = { ready: false, error: "", reply: null, received: [], errors: [], statuses: [] };
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
  let t0 = performance.now();
  for (let i = 0; i < n; i++) await c.sendSync(m);
  const sequential = n / ((performance.now() - t0) / 1000);
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
    syncWindowedPerS: windowed,
    pubsubP50Ms: lat[Math.floor(lat.length * 0.5)]!,
    pubsubP99Ms: lat[Math.floor(lat.length * 0.99)]!,
  };
}

(window as unknown as { goomerangTest: unknown }).goomerangTest = {
  results,
  cookieConnect,
  anonymousConnect,
  bench,
};

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
