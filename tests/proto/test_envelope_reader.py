"""``envelope.read_canonical`` against upb, the protobuf runtime it stands in for.

Where it answers, it must answer exactly what upb decodes; where it answers
None, upb decodes instead (never wrong, only slower). Every Frame a goomerang
peer writes (our encoder, upb's) must get an answer, or the compiled build's
fast path would be dead code. Runs in both builds: ``make unit`` on the Python
module, ``make unit-compiled`` on the mypyc one, where the engine uses it.
"""

from __future__ import annotations

import importlib.util
import os
import random
from collections.abc import Callable
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from types import ModuleType

from hypothesis import example, given, settings
from hypothesis import strategies as st

from goomerang_proto import codec, envelope
from goomerang_proto.envelope import read_canonical
from goomerang_proto.pb import goomerang_frame_pb2 as pb

NS = 1_000_000_000


def _load_fuzz_target() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "fuzz" / "fuzz_envelope.py"
    spec = importlib.util.spec_from_file_location("fuzz_envelope_oracle", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# What upb reads, in read_canonical's shape (None: DecodeError): the fuzz target's oracle
upb_fields: Callable[[bytes], envelope.Fields | None] = _load_fuzz_target().upb_fields


texts = st.text(max_size=40)
headers = st.dictionaries(texts, texts, max_size=4)
# (large ones drawn from a seed: hypothesis refuses to draw many KB of bytes itself)
payloads = st.binary(max_size=300) | st.builds(
    lambda n, seed: random.Random(seed).randbytes(n),
    st.integers(min_value=16_000, max_value=17_000),
    st.integers(min_value=0, max_value=2**32),
)
# seconds up to the 63-bit limit of creation_ns, nanos below 10**9: what peers send
creations = st.integers(min_value=0, max_value=(1 << 63) - 1)


@given(
    uuid=texts, kind=texts, payload=payloads, headers=headers, is_sync=st.booleans(),
    creation_ns=creations,
)  # fmt: skip
@example(uuid="", kind="", payload=b"", headers={}, is_sync=False, creation_ns=0)
@example(uuid="", kind="k", payload=b"", headers={"": ""}, is_sync=True, creation_ns=NS)
def test_our_frames_are_read_as_upb_reads_them(
    uuid: str, kind: str, payload: bytes, headers: dict[str, str], is_sync: bool, creation_ns: int
) -> None:
    data = codec.pack_envelope(
        kind, payload, headers, uuid=uuid, is_sync=is_sync, creation_ns=creation_ns
    )
    fields = read_canonical(data)
    assert fields is not None  # the fast path takes every Frame we write
    assert fields == upb_fields(data)
    assert fields == (uuid, kind, is_sync, creation_ns, headers, payload)


@given(
    uuid=texts, kind=texts, payload=payloads, headers=headers, is_sync=st.booleans(),
    seconds=st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1),
    nanos=st.integers(min_value=-(1 << 31), max_value=(1 << 31) - 1),
    has_creation=st.booleans(), payload_size=st.integers(-(1 << 63), (1 << 63) - 1),
)  # fmt: skip
def test_upb_frames_are_read_as_upb_reads_them(
    uuid: str,
    kind: str,
    payload: bytes,
    headers: dict[str, str],
    is_sync: bool,
    seconds: int,
    nanos: int,
    has_creation: bool,
    payload_size: int,
) -> None:
    frame = pb.Frame(
        uuid=uuid, kind=kind, payload=payload, headers=headers, is_sync=is_sync,
        payloadSize=payload_size,
    )  # fmt: skip
    if has_creation:
        frame.creation.seconds = seconds
        frame.creation.nanos = nanos
    data = frame.SerializeToString()
    fields = read_canonical(data)
    canonical_time = not has_creation or (0 <= seconds <= (1 << 63) // NS and 0 <= nanos < NS)
    if canonical_time and payload_size >= 0:
        assert fields is not None
    if fields is not None:
        assert fields == upb_fields(data)


def _frames() -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda u, k, p, h, s, c: codec.pack_envelope(k, p, h, uuid=u, is_sync=s, creation_ns=c),
        texts, texts, st.binary(max_size=40), headers, st.booleans(), creations,
    )  # fmt: skip


@settings(max_examples=1000)
@given(
    frame=_frames(),
    cut=st.integers(min_value=0, max_value=400),
    flips=st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4),
    extra=st.binary(max_size=12),
)
def test_damaged_frames_get_upb_meaning_or_none(
    frame: bytes, cut: int, flips: list[tuple[int, int]], extra: bytes
) -> None:
    data = bytearray(frame[: max(0, len(frame) - cut % (len(frame) + 1))] + extra)
    for at, value in flips:
        if data:
            data[at % len(data)] = value
    fields = read_canonical(bytes(data))
    if fields is not None:
        assert fields == upb_fields(bytes(data))


@settings(max_examples=2000)  # cheap examples; the parser's edge cases are many
@given(st.binary(max_size=200))
@example(b"\x0a\x02\xc3\x28")  # uuid that is not UTF-8
@example(b"\x32\x04\x0a\x02\xed\xa0")  # header key that is not UTF-8
@example(b"\x2a\x02\x08\x01\x2a\x02\x08\x02")  # creation twice: upb merges
@example(b"\x12\x01a\x12\x01b")  # kind twice: upb keeps the last
@example(b"\x20\x02")  # is_sync 2: upb reads True
@example(b"\x32\x06\x12\x01v\x0a\x01k")  # map entry value before key
@example(b"\x2a\x02\x10\x01\x2a\x00")  # nanos then an empty creation
@example(b"\x32\x80\x80\x80\x80\x80\x80\x80\x00")  # 8-byte length: upb refuses it
@example(b"\x0a\x80\x00")  # a padded length
@example(b"\x20\x81\x00")  # a padded is_sync
def test_arbitrary_bytes_get_upb_meaning_or_none(data: bytes) -> None:
    fields = read_canonical(data)
    if fields is not None:
        assert fields == upb_fields(data)


def test_the_engine_reads_with_it_exactly_in_the_compiled_build() -> None:
    compiled = str(envelope.__file__).endswith(tuple(EXTENSION_SUFFIXES))
    assert envelope.FAST is compiled
    if os.environ.get("GOOMERANG_COMPILED", "") not in ("", "0"):  # make unit-compiled
        assert envelope.FAST
