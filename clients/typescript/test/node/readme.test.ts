/**
 * The README's TypeScript client example (the ```js block marked `// runnable`)
 * runs against a real `goomerang serve` and exits 0. It imports the package by
 * its own name ("goomerang"), which Node resolves to this package's dist/.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { it } from "node:test";
import { PKG, REPO, startServe, within } from "../helpers.js";

const blocks = [...readFileSync(join(REPO, "README.md"), "utf8").matchAll(/```js\n(.*?)```/gs)]
  .map((m) => m[1]!)
  .filter((b) => b.startsWith("// runnable"));

it("the README's bundle size is the one this build measured (within 1 KiB)", () => {
  const text = readFileSync(join(REPO, "README.md"), "utf8");
  const m = text.match(/([\d.]+) KiB minified, \*\*([\d.]+) KiB gzipped\*\*/);
  assert.ok(m !== null, "the README states the bundle size");
  const size = JSON.parse(readFileSync(join(PKG, "dist/bundle-size.json"), "utf8")) as {
    minified: number;
    gzipped: number;
  };
  assert.ok(Math.abs(Number(m[1]) - size.minified / 1024) < 1, `minified: README ${m[1]} KiB, built ${size.minified} B`);
  assert.ok(Math.abs(Number(m[2]) - size.gzipped / 1024) < 1, `gzipped: README ${m[2]} KiB, built ${size.gzipped} B`);
});

it("the README has a runnable TypeScript client example", () => {
  assert.ok(blocks.length >= 1);
});

blocks.forEach((block, i) => {
  it(`README example ${i} runs against goomerang serve`, async () => {
    const server = await startServe();
    try {
      mkdirSync(join(PKG, "build"), { recursive: true });
      const file = join(PKG, `build/readme-example-${i}.mjs`);
      writeFileSync(file, block);
      const child = spawn(process.execPath, [file], {
        env: { ...process.env, GOOMERANG_URL: server.url },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (out += d.toString()));
      const code = await within(
        new Promise<number | null>((resolve) => child.on("exit", resolve)),
        20_000,
        "the example",
      ).finally(() => child.kill());
      assert.equal(code, 0, out);
      assert.match(out, /reply: ping \{ k: 'v', echo: '1' \}/);
      assert.match(out, /published and received: hello subscribers/);
    } finally {
      await server.proc.stop();
    }
  });
});
