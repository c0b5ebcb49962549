/**
 * `make ts-bench`: sendSync round trips/s (one at a time, and WINDOW in
 * flight) and pub/sub latency (a client publishes to a topic it subscribed
 * to; the time until the message is back, p50/p99), from Node and from
 * headless Chromium, against one `goomerang serve`, with the Python asyncio
 * client measured the same way in the same run as the peer row. Bounded in
 * count: N requests per figure (BENCH_N, default 5000).
 */
import { create } from "@bufbuild/protobuf";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { Client } from "../../src/index.js";
import { MessageV1Schema } from "../../src/gen/goomerang_example_pb.js";
import { LineProcess, PKG, PYTHON, startServe, startTestServer } from "../helpers.js";

const N = Number(process.env["BENCH_N"] ?? 5000);
const WINDOW = 100;
type Figures = Record<
  "syncSequentialPerS" | "syncP50Ms" | "syncWindowedPerS" | "pubsubP50Ms" | "pubsubP99Ms",
  number
>;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function node(url: string): Promise<Figures> {
  const c = new Client(url);
  const arrivals = new Map<string, number>();
  let wake: (() => void) | undefined;
  c.handle(MessageV1Schema, (_s, m) => {
    arrivals.set(m.payload.message, performance.now());
    wake?.();
  });
  await c.connect();
  const m = create(MessageV1Schema, { message: "bench" });
  for (let i = 0; i < 200; i++) await c.sendSync(m);
  const rtts: number[] = [];
  let t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const t = performance.now();
    await c.sendSync(m);
    rtts.push(performance.now() - t);
  }
  const sequential = N / ((performance.now() - t0) / 1000);
  let sent = 0;
  t0 = performance.now();
  await Promise.all(
    Array.from({ length: WINDOW }, async () => {
      while (sent < N) {
        sent++;
        await c.sendSync(m);
      }
    }),
  );
  const windowed = N / ((performance.now() - t0) / 1000);
  await c.subscribe("bench-latency");
  await c.sendSync(m);
  const lat: number[] = [];
  for (let i = 0; i < Math.min(N, 1000); i++) {
    const key = `p${i}`;
    const got = new Promise<void>((resolve) => {
      wake = () => arrivals.has(key) && resolve();
    });
    const start = performance.now();
    await c.publish("bench-latency", create(MessageV1Schema, { message: key }));
    await got;
    lat.push(arrivals.get(key)! - start);
  }
  await c.close();
  lat.sort((a, b) => a - b);
  return {
    syncSequentialPerS: sequential,
    syncP50Ms: median(rtts),
    syncWindowedPerS: windowed,
    pubsubP50Ms: lat[Math.floor(lat.length / 2)]!,
    pubsubP99Ms: lat[Math.floor(lat.length * 0.99)]!,
  };
}

async function browser(pageAddr: string, wsUrl: string): Promise<Figures> {
  const profile = mkdtempSync(join(tmpdir(), "goomerang-bench-"));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env["CHROMIUM"] ?? "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await ctx.newPage();
    await page.goto(`http://${pageAddr}/?ws=${encodeURIComponent(wsUrl)}`);
    await page.waitForFunction(() => (window as unknown as { goomerangTest?: { results: { ready: boolean } } }).goomerangTest?.results.ready === true, undefined, { timeout: 15_000 });
    return await page.evaluate(
      ([n, w]) => (window as unknown as { goomerangTest: { bench(n: number, w: number): Promise<Figures> } }).goomerangTest.bench(n!, w!),
      [N, WINDOW],
    );
  } finally {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

async function python(addr: string): Promise<Figures> {
  const p = new LineProcess(PYTHON, ["tests/ts/bench_python_client.py", addr, String(N), String(WINDOW)]);
  const m = await p.line(/^(\{.*\})$/, 300_000);
  await p.stop();
  return JSON.parse(m[1]!) as Figures;
}

const serve = await startServe();
const pages = await startTestServer(["--static", join(PKG, "build/web")]);
try {
  const rows: [string, Figures][] = [];
  rows.push(["TypeScript client, Node " + process.version, await node(serve.url)]);
  rows.push(["TypeScript client, Chromium (headless)", await browser(pages.addr, serve.url)]);
  rows.push(["Python asyncio client (peer)", await python(serve.addr)]);
  const base = rows[2]![1];
  console.log(`goomerang serve (1 worker), ${N} requests per figure, window ${WINDOW}`);
  console.log(
    "| client | sendSync rt/s, 1 in flight (p50 ms) | sendSync rt/s, 100 in flight | pub/sub latency p50 / p99 (ms) |",
  );
  console.log("|---|---|---|---|");
  for (const [name, f] of rows) {
    const r1 = (f.syncSequentialPerS / base.syncSequentialPerS).toFixed(2);
    const r2 = (f.syncWindowedPerS / base.syncWindowedPerS).toFixed(2);
    console.log(
      `| ${name} | ${Math.round(f.syncSequentialPerS).toLocaleString("en-US")} (${r1}x; ${f.syncP50Ms.toFixed(3)}) | ` +
        `${Math.round(f.syncWindowedPerS).toLocaleString("en-US")} (${r2}x) | ` +
        `${f.pubsubP50Ms.toFixed(3)} / ${f.pubsubP99Ms.toFixed(3)} |`,
    );
  }
} finally {
  await pages.proc.stop();
  await serve.proc.stop();
}
