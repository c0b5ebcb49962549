/**
 * The browser client of Go goomerang users: headless Chromium loads the test
 * page and its client talks to Go goomerang v0.3.0's refserver: a sendSync
 * round trip (Go echoes with header `echo: 1`), a publish from a Python client
 * and a broadcast.
 *
 * Go goomerang only upgrades requests whose Origin is its own host:port
 * (gorilla/websocket's default origin check; v0.3.0 has no option for it) and
 * serves nothing but /ws, so a page must come from the same origin, as behind
 * a reverse proxy. `sameOriginFront` is that proxy: it serves the page and
 * pipes /ws connections to Go unchanged.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { launchChromium, PKG, type ServerHandle, startGoref, startPeer } from "../helpers.js";
import type { PageApi } from "../../web/test-page.js";

/** One origin for the page and Go's /ws: static files here, /ws piped to `goAddr` byte for byte. */
async function sameOriginFront(goAddr: string): Promise<{ addr: string; server: Server }> {
  const web = join(PKG, "build/web");
  const files = new Map<string, [string, Buffer]>([
    ["/", ["text/html", readFileSync(join(web, "index.html"))]],
    ["/page.js", ["text/javascript", readFileSync(join(web, "page.js"))]],
  ]);
  const [goHost, goPort] = [goAddr.slice(0, goAddr.lastIndexOf(":")), Number(goAddr.split(":").pop())];
  const server = createServer((sock) => {
    sock.on("error", () => sock.destroy());
    sock.once("data", (head: Buffer) => {
      const path = (head.toString("latin1").split("\r\n", 1)[0] ?? "").split(" ")[1] ?? "";
      if (path === "/ws" || path.startsWith("/ws?")) {
        const up = connect(goPort, goHost, () => {
          up.write(head);
          sock.pipe(up);
          up.pipe(sock);
        });
        up.on("error", () => sock.destroy());
        sock.on("close", () => up.destroy());
        return;
      }
      const file = files.get(path.split("?")[0]!);
      const [status, type, body] = file ? ["200 OK", file[0], file[1]] : ["404 Not Found", "text/plain", Buffer.from("no\n")];
      sock.end(
        Buffer.concat([
          Buffer.from(
            `HTTP/1.1 ${status}\r\nContent-Type: ${type}\r\nContent-Length: ${body.length}\r\n` +
              "Connection: close\r\n\r\n",
          ),
          body,
        ]),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const a = server.address();
  assert.ok(a !== null && typeof a === "object");
  return { addr: `127.0.0.1:${a.port}`, server };
}

let browser: Awaited<ReturnType<typeof launchChromium>>;
let go: ServerHandle;
let front: { addr: string; server: Server };

before(async () => {
  go = await startGoref();
  front = await sameOriginFront(go.addr);
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  front?.server.close();
  await go?.proc.stop();
});

it("Chromium against the Go server: sendSync, a publish from Python, a broadcast", async () => {
  const page = await browser.context.newPage();
  await page.goto(`http://${front.addr}/`);
  await page.waitForFunction(
    () => {
      const r = (window as unknown as { goomerangTest?: PageApi }).goomerangTest?.results;
      return r !== undefined && (r.ready || r.error !== "");
    },
    undefined,
    { timeout: 15_000 },
  );
  const first = await page.evaluate(() => (window as unknown as { goomerangTest: PageApi }).goomerangTest.results);
  assert.equal(first.error, "");
  assert.deepEqual(first.reply, {
    kind: "goomerang.example.MessageV1",
    message: "hello from the browser",
    headers: { echo: "1" },
  });
  const peer = await startPeer(go.addr);
  try {
    await peer.command({ op: "publish", topic: "news", message: "from python via go", headers: { k: "v" } });
    await peer.command({ op: "broadcast", message: "go broadcast" });
    await page.waitForFunction(
      () => (window as unknown as { goomerangTest: PageApi }).goomerangTest.results.received.length >= 2,
      undefined,
      { timeout: 10_000 },
    );
  } finally {
    await peer.command({ op: "close" });
    await peer.stop();
  }
  const r = await page.evaluate(() => (window as unknown as { goomerangTest: PageApi }).goomerangTest.results);
  // Go handles each command in its own goroutine: the two may arrive in either order.
  const byText = [...r.received].sort((a, b) => a.message.localeCompare(b.message));
  assert.deepEqual(byText, [
    { message: "from python via go", headers: { k: "v" } },
    { message: "go broadcast", headers: {} },
  ]);
  assert.deepEqual(r.errors, []);
  await page.close();
});
