// Browser bundles with esbuild, and the size of the library bundle, minified
// and gzipped (level 9), written to dist/bundle-size.json and printed.
//
//   dist/goomerang.min.js  the library (ESM, minified): what the size is about
//   dist/web/              the `goomerang demo --web` page (index.html, demo.js)
//   build/web/             the browser test's page (index.html, page.js)
import { build } from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";

const common = {
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022", "chrome100", "firefox100", "safari15.4"],
  legalComments: "none",
  logLevel: "warning",
};

await build({ ...common, entryPoints: ["src/index.ts"], outfile: "dist/goomerang.min.js", minify: true });
const lib = readFileSync("dist/goomerang.min.js");
const size = { minified: lib.length, gzipped: gzipSync(lib, { level: 9 }).length };
writeFileSync("dist/bundle-size.json", JSON.stringify(size, null, 2) + "\n");
console.log(
  `bundle dist/goomerang.min.js (client + @bufbuild/protobuf runtime + generated types): ` +
    `${(size.minified / 1024).toFixed(1)} KiB minified, ${(size.gzipped / 1024).toFixed(1)} KiB gzipped`,
);

mkdirSync("dist/web", { recursive: true });
await build({ ...common, entryPoints: ["web/demo.ts"], outfile: "dist/web/demo.js", minify: true });
copyFileSync("web/demo.html", "dist/web/index.html");

mkdirSync("build/web", { recursive: true });
await build({ ...common, entryPoints: ["web/test-page.ts"], outfile: "build/web/page.js", sourcemap: true });
copyFileSync("web/test-page.html", "build/web/index.html");
