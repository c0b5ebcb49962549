/**
 * `goomerang demo --web`: a chat room over publish/subscribe with a live
 * message-rate counter, served by the goomerang server's own HTTP route.
 *
 * Topics: `chat` (MessageV1, header `from` = the author's name) and `rate`
 * (burst traffic for the counter; not shown in the room). A sendSync round
 * trip every second shows the latency; "Load test" runs 2,000 sendSync with
 * 100 in flight.
 */
import { create } from "@bufbuild/protobuf";
import { Client, statusName } from "../src/index.js";
import { MessageV1Schema, ReplyV1Schema } from "../src/gen/goomerang_example_pb.js";

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const name = $<HTMLInputElement>("name");
name.value = params.get("name") ?? `guest-${Math.floor(Math.random() * 900 + 100)}`;
const log = $("log");
const msg = (text: string) => create(MessageV1Schema, { message: text });

let total = 0;
let windowCount = 0;
const client = new Client(params.get("ws") ?? "/ws", {
  reconnect: true,
  onStatusChange: (s) => {
    const el = $("status");
    el.textContent = statusName(s);
    el.className = `status-${statusName(s)}`;
  },
  onError: (e) => console.warn(e),
});
$("url").textContent = client.url;
client.registerMessage(ReplyV1Schema);
client.handle(MessageV1Schema, (_sender, m) => {
  total++;
  windowCount++;
  const author = m.headers["from"];
  if (author === undefined) return; // burst traffic: counted, not shown
  const line = document.createElement("div");
  line.className = author === name.value ? "msg mine" : "msg";
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = author;
  const at = document.createElement("span");
  at.className = "at";
  at.textContent = new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  line.append(who, document.createTextNode(m.payload.message), at);
  log.append(line);
  log.scrollTop = log.scrollHeight;
});

// The live counter: messages received in the last second, refreshed twice a second.
const ticks: number[] = [];
setInterval(() => {
  ticks.push(windowCount);
  windowCount = 0;
  if (ticks.length > 2) ticks.shift();
  $("rate").textContent = ticks.reduce((a, b) => a + b, 0).toLocaleString("en-US");
  $("total").textContent = total.toLocaleString("en-US");
}, 500);

// The round-trip gauge: the median of the last 10 pings, one a second.
const rtts: number[] = [];
setInterval(async () => {
  if (statusName(client.status) !== "RUNNING") return;
  const t0 = performance.now();
  try {
    await client.sendSync(msg("ping"), { timeoutMs: 2000 });
    rtts.push(performance.now() - t0);
    if (rtts.length > 10) rtts.shift();
    const sorted = [...rtts].sort((a, b) => a - b);
    const rtt = $("rtt");
    rtt.textContent = `${sorted[Math.floor(sorted.length / 2)]!.toFixed(2)} ms`;
    rtt.dataset["n"] = String(Number(rtt.dataset["n"] ?? "0") + 1);
  } catch {
    $("rtt").textContent = "timeout";
  }
}, 1000);

$("form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $<HTMLInputElement>("text");
  if (text.value.trim() === "") return;
  void client.publish("chat", msg(text.value), { headers: { from: name.value } });
  text.value = "";
});

$("burst").addEventListener("click", async () => {
  for (let i = 0; i < 2000; i++) await client.publish("rate", msg(`b${i}`));
});

$("loadtest").addEventListener("click", async () => {
  const n = 2000;
  let sent = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (sent < n) {
      sent++;
      await client.sendSync(msg("load"), { timeoutMs: 5000 });
    }
  };
  await Promise.all(Array.from({ length: 100 }, worker));
  const rate = n / ((performance.now() - t0) / 1000);
  $("load").textContent = `${Math.round(rate).toLocaleString("en-US")} req/s`;
});

await client.connect();
await client.subscribe("chat");
await client.subscribe("rate");
document.body.dataset["ready"] = "1";
