"""Fuzz target: ``envelope.read_canonical`` answers what upb decodes, or None.

The compiled build reads canonical envelopes with it instead of upb, so any
input where it answers and upb disagrees (or fails) is a wrong message
delivered. Run with atheris: ``python fuzz/fuzz_envelope.py [corpus_dir]
-max_total_time=N`` (with ``PYTHONPATH=build/compiled`` for the compiled reader).
The pytest suite imports :func:`test_one_input` and runs it without atheris.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from goomerang_proto import codec
from goomerang_proto.envelope import Fields, read_canonical
from goomerang_proto.pb import goomerang_frame_pb2 as pb


def upb_fields(data: bytes) -> Fields | None:
    """What upb reads from ``data`` in read_canonical's shape; None when it raises."""
    try:
        frame = pb.Frame.FromString(data)
    except (DecodeError, ValueError, RuntimeError):
        return None
    creation = frame.creation
    return (
        frame.uuid,
        frame.kind,
        frame.is_sync,
        creation.seconds * 1_000_000_000 + creation.nanos,
        dict(frame.headers),
        frame.payload,
    )


def test_one_input(data: bytes) -> None:
    """read_canonical(data) is None or exactly upb's reading; it never raises."""
    fields = read_canonical(data)
    if fields is not None:
        assert fields == upb_fields(data), (data, fields)


def seeds() -> list[bytes]:
    """Canonical envelopes (ours and upb's) to start a corpus from."""
    ours = codec.pack_envelope(
        "goomerang.example.MessageV1",
        b"\x0a\x05hello",
        {"k": "v", "echo": "1"},
        uuid="0e03ae60-2eee-4b75-9c5b-ee52b321913a",
        is_sync=True,
        creation_ns=1_795_804_511_576_549_878,
    )
    frame = pb.Frame(kind="k", payloadSize=5, payload=b"12345", headers={"a": "b"})
    frame.creation.seconds = 7
    frame.creation.nanos = 999_999_999
    return [ours, frame.SerializeToString(), codec.pack_subscribe_cmd("t1")]


if __name__ == "__main__":
    from atheris_main import fuzz

    fuzz(test_one_input)
