/**
 * The client in a real browser: Debian's headless Chromium driven by
 * playwright-core (no browser download: executablePath /usr/bin/chromium or
 * $CHROMIUM), loading a page served by the Python server's own HTTP route.
 * The page authenticates by query parameter (and by cookie), does a sendSync
 * round trip, receives a publish from a Python client and a broadcast; the
 * test reads the results from the page. A second test opens the
 * `goomerang demo --web` page and takes the README's screenshot.
 */
import assert from "node:assert/strict";
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { BrowserContext, Page } from "playwright-core";
import {
  launchChromium,
  LineProcess,
  PKG,
  PYTHON,
  REPO,
  type ServerHandle,
  startPeer,
  startTestServer,
} from "../helpers.js";
import type { PageApi, Results as PageResults } from "../../web/test-page.js";

let browser: Awaited<ReturnType<typeof launchChromium>>;
let context: BrowserContext;

before(async () => {
  browser = await launchChromium();
  context = browser.context;
});

after(async () => {
  await browser?.close();
});

describe("in Chromium, against the Python server that served the page", () => {
  let server: ServerHandle;
  let page: Page;

  before(async () => {
    server = await startTestServer(["--static", join(PKG, "build/web"), "--token", "s3cret"]);
    page = await context.newPage();
    page.on("pageerror", (e) => console.error("page error:", e));
  });
  after(async () => {
    await page?.close();
    await server?.proc.stop();
  });

  it("sendSync round trip, a publish from a Python client, a broadcast", async () => {
    await page.goto(`http://${server.addr}/?token=s3cret`);
    await page.waitForFunction(
      () => {
        const r = (window as unknown as { goomerangTest?: { results: PageResults } }).goomerangTest?.results;
        return r !== undefined && (r.ready || r.error !== "");
      },
      undefined,
      { timeout: 15_000 },
    );
    const first = await results(page);
    assert.equal(first.error, "");
    assert.deepEqual(first.reply, {
      kind: "goomerang.example.ReplyV1",
      message: "HELLO FROM THE BROWSER",
      headers: { echo: "1" },
    });

    const peer = await startPeer(server.addr, "s3cret");
    try {
      await peer.command({ op: "publish", topic: "news", message: "from python", headers: { k: "v" } });
      await peer.command({ op: "broadcast", message: "to everyone" });
      await page.waitForFunction(
        () => {
          const r = (window as unknown as { goomerangTest: { results: PageResults } }).goomerangTest.results;
          return r.received.length >= 2;
        },
        undefined,
        { timeout: 10_000 },
      );
      await peer.eventsMatching((e) => e["event"] === "message" && e["message"] === "to everyone", 1);
    } finally {
      await peer.command({ op: "close" });
      await peer.stop();
    }
    const r = await results(page);
    assert.deepEqual(r.received, [
      { message: "from python", headers: { k: "v" } },
      { message: "to everyone", headers: {} },
    ]);
    assert.deepEqual(r.statuses, ["RUNNING"]);
    assert.deepEqual(r.errors, []);
  });

  it("a message above maxMessageSize: the browser client closes (4009), reports MessageTooLarge", async () => {
    await page.evaluate(() => (window as unknown as { goomerangTest: PageApi }).goomerangTest.tinyClient());
    const peer = await startPeer(server.addr, "s3cret");
    try {
      await peer.command({ op: "publish", topic: "big", message: "b".repeat(2000) });
    } finally {
      await peer.command({ op: "close" });
      await peer.stop();
    }
    await page.waitForFunction(
      () => (window as unknown as { goomerangTest: PageApi }).goomerangTest.results.tiny.status === "CLOSED",
      undefined,
      { timeout: 10_000 },
    );
    const { tiny } = await results(page);
    assert.equal(tiny.received, 0);
    assert.equal(tiny.closeCode, 1009);
    assert.deepEqual(tiny.errors, ["MessageTooLarge", "ConnectionLost"]);
  });

  it("auth in the browser: token by cookie works, no token is refused", async () => {
    const viaCookie = await page.evaluate(() =>
      (window as unknown as { goomerangTest: { cookieConnect(v: string): Promise<string> } }).goomerangTest.cookieConnect(
        "s3cret",
      ),
    );
    assert.equal(viaCookie, "COOKIE");
    const anonymous = await page.evaluate(() =>
      (window as unknown as { goomerangTest: { anonymousConnect(): Promise<string> } }).goomerangTest.anonymousConnect(),
    );
    assert.equal(anonymous, "HandshakeError");
  });
});

describe("in Chromium: the server shuts down", () => {
  it("pending sendSync calls are rejected with ConnectionLost; CLOSED with code 1000", async () => {
    const server = await startTestServer(["--static", join(PKG, "build/web")]);
    const page = await context.newPage();
    try {
      await page.goto(`http://${server.addr}/`);
      await page.waitForFunction(
        () => (window as unknown as { goomerangTest?: PageApi }).goomerangTest?.results.ready === true,
        undefined,
        { timeout: 15_000 },
      );
      const pending = await page.evaluate(() =>
        (window as unknown as { goomerangTest: PageApi }).goomerangTest.pendingCalls(5),
      );
      assert.equal(pending, 5);
      const stopped = server.proc.stop();
      await page.waitForFunction(
        () => (window as unknown as { goomerangTest: PageApi }).goomerangTest.results.lost.length === 5,
        undefined,
        { timeout: 10_000 }, // the calls' own timeout is 60 s
      );
      const r = await results(page);
      assert.deepEqual(r.lost, Array(5).fill("ConnectionLost"));
      assert.deepEqual(r.statuses, ["RUNNING", "CLOSED"]);
      assert.deepEqual(r.closes, [1000]);
      assert.equal(await stopped, 0);
    } finally {
      await page.close();
      await server.proc.stop();
    }
  });
});

describe("goomerang demo --web", () => {
  it("two pages chat over pub/sub with a Python client; the screenshot", async () => {
    const demo = new LineProcess(PYTHON, ["-m", "goomerang_io", "demo", "--web", "--listen", "127.0.0.1:0"]);
    const m = await demo.line(/open http:\/\/(\S+)\//);
    const addr = m[1]!;
    const alice = await context.newPage();
    const bob = await context.newPage();
    try {
      await alice.goto(`http://${addr}/?name=alice`);
      await bob.goto(`http://${addr}/?name=bob`);
      for (const p of [alice, bob]) await p.waitForSelector("body[data-ready='1']", { timeout: 15_000 });
      const peer = await startPeer(addr);
      try {
        await peer.command({ op: "subscribe", topic: "chat" });
        await peer.command({
          op: "publish",
          topic: "chat",
          message: "Hello from a Python client!",
          headers: { from: "python-bot" },
        });
        await say(alice, "Hi all, this is Chromium speaking protobuf");
        await say(bob, "Same page, one server port: page, /ws and pub/sub");
        await peer.eventsMatching((e) => e["event"] === "message" && e["headers"] !== undefined, 3);
      } finally {
        await peer.command({ op: "close" });
        await peer.stop();
      }
      for (const p of [alice, bob]) {
        await p.waitForFunction(() => document.querySelectorAll("#log .msg").length >= 3, undefined, {
          timeout: 10_000,
        });
      }
      const lines = await alice.$$eval("#log .msg", (els) => els.map((e) => e.textContent ?? ""));
      assert.ok(lines[0]!.startsWith("python-botHello from a Python client!"), lines[0]);
      assert.ok(lines[1]!.startsWith("aliceHi all"), lines[1]);
      assert.ok(lines[2]!.startsWith("bobSame page"), lines[2]);
      // Traffic for the live counter, the round trip and the load test figures, then the picture.
      await alice.click("#loadtest");
      await alice.waitForFunction(() => document.getElementById("load")!.textContent!.endsWith("req/s"), undefined, {
        timeout: 20_000,
      });
      await alice.click("#burst");
      await alice.waitForFunction(() => Number(document.getElementById("total")!.textContent!.replace(/,/g, "")) >= 2003, undefined, {
        timeout: 20_000,
      });
      // A round trip measured after the burst was delivered (not one queued behind it).
      const seen = await alice.evaluate(() => Number(document.getElementById("rtt")!.dataset["n"] ?? "0"));
      await alice.waitForFunction(
        (n) => Number(document.getElementById("rtt")!.dataset["n"] ?? "0") >= n + 2,
        seen,
        { timeout: 10_000 },
      );
      // The picture while a second burst flows, so that the live counter shows it.
      await alice.click("#burst");
      await alice.waitForFunction(() => document.getElementById("rate")!.textContent !== "0", undefined, {
        timeout: 10_000,
      });
      const shot = join(PKG, "build/typescript-web-demo.png");
      mkdirSync(join(PKG, "build"), { recursive: true });
      await alice.screenshot({ path: shot });
      assert.ok(existsSync(shot));
      if (process.env["GOOMERANG_UPDATE_DOCS"] === "1") {
        copyFileSync(shot, join(REPO, "docs/typescript-web-demo.png"));
      }
    } finally {
      await alice.close();
      await bob.close();
      await demo.stop();
    }
  });
});

async function results(page: Page): Promise<PageResults> {
  return page.evaluate(
    () => (window as unknown as { goomerangTest: { results: PageResults } }).goomerangTest.results,
  );
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill("#text", text);
  await page.click("button[type=submit]");
}
