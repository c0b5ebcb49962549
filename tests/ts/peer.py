"""A Python goomerang client for the TypeScript client's tests (not a pytest module).

``python tests/ts/peer.py HOST:PORT [TOKEN]`` connects (with cookie
``goomerang_token=TOKEN`` when given), prints ``{"event": "ready"}``, then
reads JSON commands from stdin, one per line, and answers each with one JSON line
carrying its ``id``:

* ``{"id": 1, "op": "subscribe", "topic": "t"}`` (answered after a sync round trip,
  so the server has processed the subscribe);
* ``{"id": 2, "op": "publish", "topic": "t", "message": "text", "headers": {...}}``;
* ``{"id": 3, "op": "broadcast", "message": "text"}``;
* ``{"id": 4, "op": "close"}``.

Every MessageV1 this client receives is printed as
``{"event": "message", "message": "text", "headers": {...}, "creation_ns": N,
"received_ns": N}``. Works against Go goomerang's refserver too (it echoes sync
MessageV1 requests with MessageV1).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import Any

from goomerang_io import Client, Message, Sender
from goomerang_proto.pb.goomerang_example_pb2 import MessageV1, ReplyV1


def emit(obj: dict[str, Any]) -> None:
    """One JSON line on stdout."""
    print(json.dumps(obj), flush=True)


def on_message(_sender: Sender, message: Message[Any]) -> None:
    """Report a received MessageV1."""
    emit(
        {
            "event": "message",
            "message": message.payload.message,
            "headers": dict(message.headers),
            "creation_ns": message.creation_ns,
            "received_ns": time.time_ns(),
        }
    )


async def command(client: Client, cmd: dict[str, Any]) -> dict[str, Any]:
    """Run one stdin command; the answer to print."""
    op = cmd.get("op")
    if op == "subscribe":
        await client.subscribe(cmd["topic"])
        await client.send_sync(Message(MessageV1(message="sync-point")), timeout=5)
        return {"ok": True}
    if op == "publish":
        msg = Message(MessageV1(message=cmd["message"]), cmd.get("headers") or {})
        await client.publish(cmd["topic"], msg)
        return {"ok": True}
    if op == "broadcast":
        await client.broadcast(Message(MessageV1(message=cmd["message"])))
        return {"ok": True}
    if op == "close":
        await client.close()
        return {"ok": True}
    return {"ok": False, "error": f"unknown op {op!r}"}


async def main(addr: str, token: str | None) -> int:
    loop = asyncio.get_running_loop()
    headers = [("Cookie", f"goomerang_token={token}")] if token else []
    client = Client(
        addr, headers=headers, on_error=[lambda exc: emit({"event": "error", "error": repr(exc)})]
    )
    client.handle(MessageV1, on_message)
    client.register_message(ReplyV1)
    await client.connect()
    emit({"event": "ready"})
    lines: asyncio.Queue[str | None] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        loop.call_soon_threadsafe(lines.put_nowait, None)

    threading.Thread(target=read_stdin, daemon=True).start()
    while (line := await lines.get()) is not None:
        cmd = json.loads(line)
        try:
            answer = await command(client, cmd)
        except Exception as exc:  # reported to the test, which fails on it
            answer = {"ok": False, "error": repr(exc)}
        emit({"id": cmd.get("id"), **answer})
        if cmd.get("op") == "close":
            return 0
    if client.status.name == "RUNNING":
        await client.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)))
