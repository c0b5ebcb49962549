"""Fuzz target: ``codec.unpack`` raises only MalformedFrame or UnknownKind.

Run with atheris: ``python fuzz/fuzz_unpack.py [corpus_dir] -max_total_time=N``.
The pytest suite imports :func:`test_one_input` and runs it without atheris.
"""

from __future__ import annotations

from typing import Any

from goomerang_proto import codec
from goomerang_proto.errors import MalformedFrame, UnknownKind
from goomerang_proto.message import Message
from goomerang_proto.pb import goomerang_example_pb2 as ex
from goomerang_proto.pb import goomerang_frame_pb2 as pb
from goomerang_proto.registry import Registry

REGISTRY = Registry(ex.MessageV1, ex.ReplyV1, pb.BroadcastCmd, pb.PublishCmd)


def test_one_input(data: bytes) -> None:
    """Decode ``data`` as a Frame; any exception but the two documented ones is a crash."""
    try:
        message = codec.unpack(data, REGISTRY)
    except (MalformedFrame, UnknownKind):
        return
    assert message.kind in REGISTRY
    payload: Any = message.payload
    if message.kind in (codec.BROADCAST_CMD, codec.PUBLISH_CMD):
        # The command's inner message decodes through the same two errors.
        try:
            codec.decode_command_message(payload.kind, payload.message, message.headers, REGISTRY)
        except (MalformedFrame, UnknownKind):
            return


def seeds() -> list[bytes]:
    """Valid envelopes to start a corpus from."""
    msg = Message(ex.MessageV1(message="hello"), {"k": "v"})
    return [
        codec.pack(msg, creation_ns=1_795_804_511_576_549_878),
        codec.pack(msg, uuid="0e03ae60-2eee-4b75-9c5b-ee52b321913a", is_sync=True),
        codec.pack_publish_cmd("t1", msg, creation_ns=1),
        codec.pack_broadcast_cmd(msg, creation_ns=2),
        codec.pack_subscribe_cmd("t1"),
        codec.pack_envelope("goomerang.example.Nope", b"\x0a\x01x"),
    ]


if __name__ == "__main__":
    from atheris_main import fuzz

    fuzz(test_one_input)
