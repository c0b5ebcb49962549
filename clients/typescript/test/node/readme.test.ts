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
