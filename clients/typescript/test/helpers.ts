/**
 * Test helpers: child processes speaking JSON lines (the Python test server,
 * the Python peer client, `goomerang serve`, Go's refserver), and waiting on
 * events with timeouts (never on sleeps).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium } from "playwright-core";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";

/** The repository root (this file is clients/typescript/build/test/helpers.js once compiled). */
export const REPO = fileURLToPath(new URL("../../../../", import.meta.url));
/** The package root, clients/typescript/. */
export const PKG = fileURLToPath(new URL("../../", import.meta.url));
/** The Python of the project's virtual environment (override with $PYTHON). */
export const PYTHON = process.env["PYTHON"] ?? `${REPO}.venv/bin/python`;

/** Resolve when `predicate()` holds, checking on every call of the returned `poke`; reject after `ms`. */
export class Waiter {
  #checks = new Set<() => void>();

  /** Re-run the pending checks (call it whenever the watched state changed). */
  poke(): void {
    for (const check of [...this.#checks]) check();
  }

  until(predicate: () => boolean, ms: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (predicate()) {
          this.#checks.delete(check);
          clearTimeout(timer);
          resolve();
        }
      };
      const timer = setTimeout(() => {
        this.#checks.delete(check);
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      this.#checks.add(check);
      check();
    });
  }
}

/** A child process whose stdout is JSON lines (or plain lines before the first JSON one). */
export class LineProcess {
  readonly proc: ChildProcess;
  readonly lines: string[] = [];
  readonly events: Record<string, unknown>[] = [];
  readonly waiter = new Waiter();
  stderr = "";
  exitCode: number | null | undefined;
  #answers = new Map<number, (answer: Record<string, unknown>) => void>();
  #nextId = 1;

  constructor(cmd: string, args: string[], env: Record<string, string> = {}) {
    this.proc = spawn(cmd, args, {
      cwd: REPO,
      env: { ...process.env, PYTHONUNBUFFERED: "1", ...env },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const rl = createInterface({ input: this.proc.stdout! });
    rl.on("line", (line) => {
      this.lines.push(line);
      if (line.startsWith("{")) {
        const obj = JSON.parse(line) as Record<string, unknown>;
        const id = obj["id"];
        if (typeof id === "number" && this.#answers.has(id)) {
          const answer = this.#answers.get(id)!;
          this.#answers.delete(id);
          answer(obj);
        } else {
          this.events.push(obj);
        }
      }
      this.waiter.poke();
    });
    this.proc.stderr!.on("data", (chunk: Buffer) => {
      this.stderr += chunk.toString();
      if (this.stderr.length > 20000) this.stderr = this.stderr.slice(-20000);
    });
    this.proc.on("exit", (code) => {
      this.exitCode = code;
      this.waiter.poke();
    });
  }

  /** Wait for a stdout line matching `re`; its match. */
  async line(re: RegExp, ms = 15_000): Promise<RegExpMatchArray> {
    let found: RegExpMatchArray | null = null;
    try {
      await this.waiter.until(
        () => {
          for (const l of this.lines) {
            found = l.match(re);
            if (found !== null) return true;
          }
          return this.exitCode !== undefined;
        },
        ms,
        `a line matching ${String(re)}`,
      );
    } catch (err) {
      throw new Error(`${String(err)}; stderr: ${this.stderr}`);
    }
    if (found === null) {
      throw new Error(`process exited (${String(this.exitCode)}) before ${String(re)}: ${this.stderr}`);
    }
    return found;
  }

  /** Send a JSON command with a fresh id; resolves with the answer carrying that id. */
  command(cmd: Record<string, unknown>, ms = 15_000): Promise<Record<string, unknown>> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#answers.delete(id);
        reject(new Error(`no answer to ${JSON.stringify(cmd)} within ${ms} ms; stderr: ${this.stderr}`));
      }, ms);
      this.#answers.set(id, (answer) => {
        clearTimeout(timer);
        if (answer["ok"] !== true) {
          reject(new Error(`command ${JSON.stringify(cmd)} failed: ${JSON.stringify(answer)}`));
        } else {
          resolve(answer);
        }
      });
      this.proc.stdin!.write(JSON.stringify({ id, ...cmd }) + "\n");
    });
  }

  /** Wait until `n` events satisfy `match`; those events. */
  async eventsMatching(
    match: (e: Record<string, unknown>) => boolean,
    n: number,
    ms = 10_000,
  ): Promise<Record<string, unknown>[]> {
    await this.waiter.until(() => this.events.filter(match).length >= n, ms, `${n} matching events`);
    return this.events.filter(match);
  }

  /** SIGTERM (graceful stop) and wait for the exit; SIGKILL after `ms`. */
  async stop(ms = 10_000): Promise<number | null | undefined> {
    if (this.exitCode === undefined) {
      this.proc.kill("SIGTERM");
      try {
        await this.waiter.until(() => this.exitCode !== undefined, ms, "the process to exit");
      } catch {
        this.proc.kill("SIGKILL");
        await this.waiter.until(() => this.exitCode !== undefined, 5_000, "the process to die");
      }
    }
    return this.exitCode;
  }
}

/** A goomerang server under test: its address, URL and process. */
export interface ServerHandle {
  readonly name: string;
  readonly addr: string;
  readonly url: string;
  readonly proc: LineProcess;
}

/** `goomerang serve --listen 127.0.0.1:PORT` (port 0: any free one), from the project's venv. */
export async function startServe(port = 0): Promise<ServerHandle> {
  const proc = new LineProcess(PYTHON, ["-m", "goomerang_io", "serve", "--listen", `127.0.0.1:${port}`]);
  const m = await proc.line(/listening on (ws:\/\/(\S+)\/ws)/);
  return { name: "goomerang serve", addr: m[2]!, url: m[1]!, proc };
}

/** tests/ts/server.py: handlers, static routes, limits, auth; see its docstring. */
export async function startTestServer(args: string[] = []): Promise<ServerHandle> {
  const proc = new LineProcess(PYTHON, ["tests/ts/server.py", "--listen", "127.0.0.1:0", ...args]);
  const m = await proc.line(/^READY (\S+)$/);
  return { name: "python test server", addr: m[1]!, url: `ws://${m[1]!}/ws`, proc };
}

/** tests/ts/peer.py: a Python client of `addr` (with a token cookie), ready when this resolves. */
export async function startPeer(addr: string, token?: string): Promise<LineProcess> {
  const peer = new LineProcess(PYTHON, ["tests/ts/peer.py", addr, ...(token !== undefined ? [token] : [])]);
  await peer.waiter.until(
    () => peer.events.some((e) => e["event"] === "ready") || peer.exitCode !== undefined,
    15_000,
    "the Python peer to connect",
  );
  if (peer.exitCode !== undefined) throw new Error(`peer exited: ${peer.stderr}`);
  return peer;
}

/** Go goomerang v0.3.0's refserver from $GOREF_DIR (the bin folder that scripts/goref.sh builds). */
export async function startGoref(): Promise<ServerHandle> {
  const dir = process.env["GOREF_DIR"];
  if (dir === undefined || dir === "") {
    throw new Error(
      "GOREF_DIR is not set: build the Go reference server with " +
        "`scripts/goref.sh DIR` (as root; `make interop` does it) and run with GOREF_DIR=DIR/bin",
    );
  }
  const bin = `${dir}/refserver`;
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`make goref\``);
  const proc = new LineProcess(bin, ["-addr", "127.0.0.1:0"]);
  const m = await proc.line(/READY (\S+)/);
  return { name: "Go refserver", addr: m[1]!, url: `ws://${m[1]!}/ws`, proc };
}

/** Resolve with what `promise` settles to, or reject after `ms` (so a hang fails the test). */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Debian's Chromium (or $CHROMIUM); never a browser downloaded by playwright. */
export const CHROMIUM = process.env["CHROMIUM"] ?? "/usr/bin/chromium";

/** The flags of every browser test: headless as root on a machine without network. */
export const CHROMIUM_FLAGS = [
  "--no-sandbox", // root on CI
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Headless Chromium with a fresh profile (playwright passes it as
 * --user-data-dir and adds --headless); `close()` also removes the profile.
 */
export async function launchChromium(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: run scripts/ensure-chromium.sh (apt-get install chromium)`);
  }
  const profile = mkdtempSync(join(tmpdir(), "goomerang-chromium-"));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_FLAGS,
      viewport: { width: 1100, height: 620 },
      timeout: 30_000,
    });
    return {
      context,
      close: async () => {
        await context.close();
        rmSync(profile, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(profile, { recursive: true, force: true });
    throw err;
  }
}
