#!/usr/bin/env python3
# Vendored from /work/shared/tools/gmrload/selftest.py; changed only by `ruff format`.
# ruff: noqa: E501, E731, E741, RUF005, RUF015
"""Self-test for gmrload against a misbehaving echo server (stdlib only).

usage: selftest.py [--bin PATH_TO_GMRLOAD]      (runs every case, prints PASS/FAIL)
       selftest.py serve [--ping-every K] [--close-after M] [--eof-after M] [--text-at M]
                         [--corrupt-at M] [--wrong-uuid-at M] [--trickle]
                         [--frag-at M] [--status 404] [--bad-accept] [--raw]

The test server ("serve") listens on 127.0.0.1 (random port, prints READY
<port>), accepts any path, and echoes every binary frame's payload verbatim.
A verbatim echo of a goomerang Frame is a valid reply for gmrload (same kind,
uuid, is_sync, message). BroadcastCmd frames are fanned out as MessageV1
Frames to every connection. Faults are injected on request. It exits by
itself after 120 s.
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import signal
import struct
import subprocess
import sys
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONNS = set()


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def pb_fields(b):
    i, out = 0, []
    while i < len(b):
        tag, i = read_varint(b, i)
        fn, wt = tag >> 3, tag & 7
        if wt == 0:
            v, i = read_varint(b, i)
        elif wt == 2:
            ln, i = read_varint(b, i)
            v, i = b[i : i + ln], i + ln
        elif wt == 1:
            v, i = b[i : i + 8], i + 8
        elif wt == 5:
            v, i = b[i : i + 4], i + 4
        else:
            raise ValueError("wire type")
        out.append((fn, v))
    return out


def read_varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        if not c & 0x80:
            return r, i
        s += 7


def ws_frame(op, payload, fin=True):
    n = len(payload)
    h = bytes([(0x80 if fin else 0) | op])
    if n < 126:
        h += bytes([n])
    elif n < 65536:
        h += bytes([126]) + struct.pack(">H", n)
    else:
        h += bytes([127]) + struct.pack(">Q", n)
    return h + payload


async def handle(reader, writer, a):
    st = {"n": 0}
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        key = [
            l.split(b":", 1)[1].strip()
            for l in head.split(b"\r\n")
            if l.lower().startswith(b"sec-websocket-key:")
        ][0]
        if a.status != 101:
            writer.write(b"HTTP/1.1 %d Nope\r\nContent-Length: 0\r\n\r\n" % a.status)
            await writer.drain()
            writer.close()
            return
        acc = base64.b64encode(hashlib.sha1(key + GUID).digest())
        if a.bad_accept:
            acc = base64.b64encode(b"x" * 20)
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n"
        )
        CONNS.add(writer)
        while True:
            h = await reader.readexactly(2)
            op, ln = h[0] & 15, h[1] & 127
            if ln == 126:
                ln = struct.unpack(">H", await reader.readexactly(2))[0]
            elif ln == 127:
                ln = struct.unpack(">Q", await reader.readexactly(8))[0]
            mask = await reader.readexactly(4) if h[1] & 0x80 else b"\0\0\0\0"
            data = bytearray(await reader.readexactly(ln))
            for i in range(ln):
                data[i] ^= mask[i & 3]
            data = bytes(data)
            if op == 8:
                writer.write(ws_frame(8, data[:2]))
                await writer.drain()
                writer.close()
                return
            if op != 2:
                continue
            st["n"] += 1
            n = st["n"]
            if a.eof_after and n >= a.eof_after:  # drop the TCP connection, no close frame
                writer.close()
                return
            out = []
            f = dict(pb_fields(data)) if not a.raw else {}
            if f.get(2) == b"goomerang.protocol.BroadcastCmd":
                cmd = dict(pb_fields(f[7]))
                msg = cmd[3]
                fr = (
                    b"\x12"
                    + varint(len(cmd[2]))
                    + cmd[2]
                    + b"\x18"
                    + varint(len(msg))
                    + b"\x3a"
                    + varint(len(msg))
                    + msg
                )
                for w in list(CONNS):
                    w.write(ws_frame(2, fr))
                    if a.ping_every and n % a.ping_every == 0:
                        w.write(ws_frame(9, b"ping"))
                if not (a.close_after and n >= a.close_after):
                    continue
                data = None
            if data is not None:  # echo (plus injected faults); None = broadcast already fanned out
                if a.wrong_uuid_at == n and 1 in f:
                    out.append(ws_frame(2, data.replace(f[1], b"f" * 36)))
                if a.text_at == n:
                    out.append(ws_frame(1, b"hello"))
                reply = data[:-1] + bytes([data[-1] ^ 1]) if a.corrupt_at == n else data
                if a.frag_at == n:
                    out.append(ws_frame(2, reply[:10], fin=False) + ws_frame(0, reply[10:]))
                else:
                    out.append(ws_frame(2, reply))
            if a.ping_every and n % a.ping_every == 0:
                out.append(ws_frame(9, b"ping"))
            if a.close_after and n >= a.close_after:
                out.append(ws_frame(8, struct.pack(">H", 1001)))
            buf = b"".join(out)
            if a.trickle:
                for i in range(0, len(buf), 7):
                    writer.write(buf[i : i + 7])
                    await writer.drain()
                    await asyncio.sleep(0.0005)
            else:
                writer.write(buf)
            if a.close_after and n >= a.close_after:
                await writer.drain()
                await asyncio.sleep(0.2)
                writer.close()
                return
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        CONNS.discard(writer)


async def serve(a):
    srv = await asyncio.start_server(lambda r, w: handle(r, w, a), "127.0.0.1", 0)
    print("READY", srv.sockets[0].getsockname()[1], flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, lambda: stop.done() or stop.set_result(None))
    loop.call_later(120, lambda: stop.done() or stop.set_result(None))
    await stop
    srv.close()


def run_case(binpath, name, srv_args, cli_args, check):
    p = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "serve"] + srv_args,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = p.stdout.readline()
        port = line.split()[1]
        t = time.time()
        out = subprocess.run(
            [binpath, "--port", port, "--timeout", "20", "--idle-timeout", "3"] + cli_args,
            capture_output=True,
            text=True,
            timeout=40,
        )
        dt = time.time() - t
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r["_wall"] = dt
        ok = check(r, out.returncode)
        print(
            f"{'PASS' if ok else 'FAIL'} {name:28s} rc={out.returncode} {dt:5.2f}s ok={r.get('ok')} "
            f"err={r.get('error')!r} errors={r.get('err')} pings={r.get('pings_answered')}"
        )
        if not ok:
            print("   ", out.stdout.strip(), out.stderr.strip())
        return ok
    finally:
        p.send_signal(signal.SIGTERM)  # the server we started, by PID
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def main_tests(binpath):
    E = lambda r, k: r["err"][k]
    cases = [
        (
            "pipe+ping",
            ["--ping-every", "997"],
            ["--mode", "pipe", "--n", "20000"],
            lambda r, rc: (
                rc == 0 and r["ok"] and r["pings_answered"] > 0 and r["verified"] == 20000
            ),
        ),
        (
            "pipe verify-every 10",
            [],
            ["--mode", "pipe", "--n", "5000", "--verify-every", "10"],
            lambda r, rc: rc == 0 and r["verified"] == 500,
        ),
        (
            "rr+ping",
            ["--ping-every", "50"],
            ["--mode", "rr", "--n", "2000"],
            lambda r, rc: (
                rc == 0 and r["ok"] and r["pings_answered"] == 40 and r["verified"] == 2000
            ),
        ),
        (
            "conc+ping",
            ["--ping-every", "100"],
            ["--mode", "conc", "--n", "5000", "--conns", "50"],
            lambda r, rc: rc == 0 and r["ok"] and r["pings_answered"] > 0,
        ),
        (
            "bcast+ping",
            ["--ping-every", "10"],
            ["--mode", "bcast", "--n", "200", "--receivers", "20"],
            lambda r, rc: (
                rc == 0 and r["ok"] and r["delivered"] == 4200 and r["per_conn_min"] == 200
            ),
        ),
        (
            "bcast coalesce 500us",
            [],
            ["--mode", "bcast", "--n", "200", "--receivers", "20", "--coalesce-us", "500"],
            lambda r, rc: rc == 0 and r["ok"] and r["per_conn_max"] == 200,
        ),
        (
            "big frames (64-bit len)",
            [],
            [
                "--mode",
                "pipe",
                "--n",
                "300",
                "--window",
                "20",
                "--refill",
                "5",
                "--msg-len",
                "70000",
            ],
            lambda r, rc: rc == 0 and r["ok"] and r["verified"] == 300,
        ),
        (
            "trickled replies rr",
            ["--trickle"],
            ["--mode", "rr", "--n", "100"],
            lambda r, rc: rc == 0 and r["ok"],
        ),
        (
            "trickled replies pipe",
            ["--trickle"],
            ["--mode", "pipe", "--n", "100", "--window", "50", "--refill", "10"],
            lambda r, rc: rc == 0 and r["ok"],
        ),
        (
            "raw ws rr",
            ["--raw"],
            ["--raw", "--mode", "rr", "--n", "500"],
            lambda r, rc: rc == 0 and r["ok"] and r["proto"] == "ws",
        ),
        (
            "server close mid-pipe",
            ["--close-after", "500"],
            ["--mode", "pipe", "--n", "20000"],
            lambda r, rc: rc == 1 and E(r, "close") == 1 and not r["ok"] and r["received"] >= 500,
        ),
        (
            "server close mid-rr",
            ["--close-after", "300"],
            ["--mode", "rr", "--n", "2000"],
            lambda r, rc: rc == 1 and E(r, "close") == 1 and r["received"] == 300,
        ),
        (
            "server close mid-bcast",
            ["--close-after", "20"],
            ["--mode", "bcast", "--n", "200", "--receivers", "5"],
            lambda r, rc: rc == 1 and E(r, "close") == 1,
        ),
        (
            "server EOF mid-conc",
            ["--eof-after", "100"],
            ["--mode", "conc", "--n", "2000", "--conns", "10"],
            lambda r, rc: rc == 1 and E(r, "eof") + E(r, "io") >= 1 and r["_wall"] < 2,
        ),
        (
            "text frame",
            ["--text-at", "100"],
            ["--mode", "pipe", "--n", "1000"],
            lambda r, rc: rc == 1 and E(r, "unexpected") == 1 and r["received"] == 1000,
        ),
        (
            "fragmented reply",
            ["--frag-at", "100"],
            ["--mode", "pipe", "--n", "1000"],
            lambda r, rc: rc == 1 and E(r, "unexpected") >= 1,
        ),  # not reassembled: ends by idle timeout
        (
            "corrupt reply pipe",
            ["--corrupt-at", "321"],
            ["--mode", "pipe", "--n", "1000"],
            lambda r, rc: rc == 1 and E(r, "bad_reply") == 1 and r["received"] == 1000,
        ),
        (
            "corrupt reply rr",
            ["--corrupt-at", "321"],
            ["--mode", "rr", "--n", "1000"],
            lambda r, rc: rc == 1 and E(r, "bad_reply") == 1 and r["received"] == 1000,
        ),
        (
            "wrong uuid then right",
            ["--wrong-uuid-at", "77"],
            ["--mode", "rr", "--n", "1000"],
            lambda r, rc: rc == 1 and E(r, "bad_uuid") == 1 and r["received"] == 1000,
        ),
        (
            "handshake 404",
            ["--status", "404"],
            ["--mode", "pipe", "--n", "10"],
            lambda r, rc: rc == 2 and "101" in r["error"],
        ),
        (
            "bad Sec-WebSocket-Accept",
            ["--bad-accept"],
            ["--mode", "pipe", "--n", "10"],
            lambda r, rc: rc == 2 and "Accept" in r["error"],
        ),
    ]
    res = [run_case(binpath, *c) for c in cases]
    print(f"{sum(res)}/{len(res)} passed")
    return 0 if all(res) else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        ap = argparse.ArgumentParser()
        ap.add_argument("serve")
        for k in (
            "--ping-every",
            "--close-after",
            "--eof-after",
            "--text-at",
            "--corrupt-at",
            "--wrong-uuid-at",
            "--frag-at",
        ):
            ap.add_argument(k, type=int, default=0)
        ap.add_argument("--status", type=int, default=101)
        ap.add_argument("--bad-accept", action="store_true")
        ap.add_argument("--trickle", action="store_true")
        ap.add_argument("--raw", action="store_true")
        asyncio.run(serve(ap.parse_args()))
    else:
        ap = argparse.ArgumentParser()
        ap.add_argument(
            "--bin", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "gmrload")
        )
        sys.exit(main_tests(ap.parse_args().bin))
