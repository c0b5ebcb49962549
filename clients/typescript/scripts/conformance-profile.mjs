// The goomerang conformance client profile on this TypeScript client (Node), for
//   goomerang conformance client -- node clients/typescript/scripts/conformance-profile.mjs
// The task and its parameters come from GOOMERANG_TASK, _URL, _N, _TOPIC, _CLIENTS, _SIZE
// (see goomerang_io/conformance/client_mode.py); prints one JSON line, exits 0 when complete.
import { create } from "@bufbuild/protobuf";
import { Client } from "../dist/index.js";
import { MessageV1Schema } from "../dist/gen/goomerang_example_pb.js";

const env = process.env;
const task = {
  name: env.GOOMERANG_TASK,
  url: env.GOOMERANG_URL,
  n: Number(env.GOOMERANG_N ?? "10"),
  topic: env.GOOMERANG_TOPIC ?? "conformance.topic",
  clients: Number(env.GOOMERANG_CLIENTS ?? "2"),
  size: Number(env.GOOMERANG_SIZE ?? String(512 * 1024)),
};
const UNICODE = { uni: "héllo wörld ✓ 日本語 🚀", empty: "", "ключ": "значение", k: "v" };
const WAIT_MS = 10_000;
const m = (text) => create(MessageV1Schema, { message: text });
const same = (a, b) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

/** A connected client whose MessageV1 handler keeps what arrives; wait(pred) resolves on it. */
async function client() {
  const items = [];
  let poke = () => {};
  const c = new Client(task.url, { maxMessageSize: 4 << 20, syncTimeoutMs: WAIT_MS });
  c.handle(MessageV1Schema, (_s, msg) => {
    items.push(msg);
    poke();
  });
  await c.connect();
  const wait = (pred) =>
    new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), WAIT_MS);
      poke = () => {
        if (pred(items)) {
          clearTimeout(timer);
          resolve(true);
        }
      };
      poke();
    });
  return { c, items, wait };
}
const texts = (items) => items.map((x) => x.payload.message);
const range = (n, p) => Array.from({ length: n }, (_, i) => `${p}${i}`);

const tasks = {
  async send() {
    const { c, items, wait } = await client();
    for (const t of range(task.n, "m")) await c.send(m(t));
    const ok = await wait((xs) => xs.length >= task.n);
    await c.close();
    return ok && same(texts(items), range(task.n, "m"));
  },
  async sync() {
    const { c } = await client();
    const replies = await Promise.all(range(task.n, "s").map((t) => c.sendSync(m(t))));
    await c.close();
    return same(texts(replies), range(task.n, "s"));
  },
  async headers() {
    const { c, wait } = await client();
    let ok = true;
    for (const headers of [UNICODE, {}]) {
      await c.send(m("h-async"), { headers });
      ok = ok && (await wait((xs) => xs.some((x) => same(x.headers, headers))));
      const reply = await c.sendSync(m("h-sync"), { headers });
      ok = ok && same(reply.headers, { ...headers, echo: "1" });
    }
    await c.close();
    return ok;
  },
  async big() {
    const { c, wait } = await client();
    const text = "b".repeat(task.size);
    await c.send(m(text));
    const ok = await wait((xs) => texts(xs).includes(text));
    const reply = await c.sendSync(m(text));
    await c.close();
    return ok && reply.payload.message === text;
  },
  async pubsub() {
    const sub = await client();
    const pub = await client();
    await sub.c.subscribe(task.topic);
    await sub.c.sendSync(m("barrier")); // the subscription is in place once this is answered
    for (const [i, t] of range(task.n, "p").entries()) {
      await pub.c.publish(task.topic, m(t), { headers: { idx: String(i) } });
    }
    const ok = await sub.wait((xs) => xs.length >= task.n);
    await Promise.all([pub.c.close(), sub.c.close()]);
    return ok && same(texts(sub.items), range(task.n, "p"));
  },
  async broadcast() {
    const all = [];
    for (let i = 0; i <= task.clients; i++) all.push(await client());
    for (const t of range(task.n, "b")) await all[0].c.broadcast(m(t));
    let ok = true;
    for (const one of all) ok = (await one.wait((xs) => xs.length >= task.n)) && ok;
    await Promise.all(all.map((one) => one.c.close()));
    return ok;
  },
};

const complete = await tasks[task.name]().catch((err) => {
  console.error(err);
  return false;
});
console.log(JSON.stringify({ mode: task.name, complete }));
process.exit(complete ? 0 : 1);
