"""A fragmented message holds at most its own bytes, however many fragments carry it.

A peer may split a message into as many continuation frames as it likes
(RFC 6455 section 5.4), empty ones included. The reader's state must grow
with the message's payload (bounded by ``max_message_size``), never with the
number of fragments: a list of parts grew by about 60 bytes per fragment.
"""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goomerang_proto import frames as fr

MASK = b"\x01\x02\x03\x04"


def masked_frame(opcode: int, payload: bytes, fin: bool) -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    assert len(payload) < 126
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return head + bytes([0x80 | len(payload)]) + MASK + body


def held_after(fragments: int, size: int) -> int:
    """Bytes still allocated by the reader after ``fragments`` unfinished fragments."""
    reader = fr.FrameReader(expect_masked=True, max_message_size=1 << 20)
    out: list[tuple[int, bytes]] = []
    reader.feed(masked_frame(fr.OP_BINARY, b"ab", fin=False), out)
    chunk = masked_frame(fr.OP_CONTINUATION, b"x" * size, fin=False) * 1000
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(fragments // 1000):
            reader.feed(chunk, out)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert out == []
    return after - before


@pytest.mark.timeout(60)
def test_endless_empty_fragments_hold_no_memory() -> None:
    assert held_after(100_000, 0) < 16 * 1024


@pytest.mark.timeout(60)
def test_tiny_fragments_hold_only_their_payload() -> None:
    held = held_after(100_000, 2)  # 200 KB of payload in 100,000 fragments
    assert held < 2 * 200_000


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=60))
def test_a_fragmented_message_is_delivered_whole(parts: list[bytes]) -> None:
    reader = fr.FrameReader(expect_masked=True, max_message_size=1 << 20)
    out: list[tuple[int, bytes]] = []
    stream = b"".join(
        masked_frame(fr.OP_BINARY if i == 0 else fr.OP_CONTINUATION, p, fin=i == len(parts) - 1)
        for i, p in enumerate(parts)
    )
    reader.feed(stream, out)
    assert out == [(fr.OP_BINARY, b"".join(parts))]
