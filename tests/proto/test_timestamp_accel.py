"""The envelope's creation field: the C accelerator (``_timestamp.c``) and the Python
encoder, both against upb's serialization of the same Timestamp.

The C module exists only in the compiled build (``make compiled``), so its tests
are marked ``compiled_only`` (``make unit-compiled`` runs them, ``make unit``
deselects them). The Python encoder's path is checked in both builds, through
``encode_timestamp`` (the C module is absent in the pure build, and out of its
range in both).
"""

from __future__ import annotations

import importlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goomerang_proto import codec
from goomerang_proto.pb import goomerang_frame_pb2 as pb

compiled_only = pytest.mark.compiled_only
LIMIT = 1 << 62  # what codec hands the C encoder


def upb(ns: int) -> bytes:
    """Frame field 5 as upb writes it (Go writes the same: proto3 defaults omitted)."""
    frame = pb.Frame()
    if ns:
        frame.creation.seconds, frame.creation.nanos = divmod(ns, 1_000_000_000)
    return frame.SerializeToString()


# whole seconds, nanos near the varint steps (2**7, 2**14, 2**21, 2**28), the epoch
# around now, and anything below the limit
times = st.one_of(
    st.integers(min_value=0, max_value=LIMIT - 1),
    st.builds(
        lambda s, n: s * 1_000_000_000 + n,
        st.sampled_from([0, 1, 127, 128, 16_383, 16_384, 1_700_000_000, 4_611_686_017]),
        st.sampled_from([0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 999_999_999]),
    ),
)


def accelerator():  # type: ignore[no-untyped-def]
    return importlib.import_module("goomerang_proto._timestamp")


@given(times)
def test_encode_timestamp_matches_upb(ns: int) -> None:
    """Whichever encoder this build uses (twice: the second may come from its cache)."""
    assert codec.encode_timestamp(ns) == upb(ns)
    assert codec.encode_timestamp(ns) == upb(ns)


@compiled_only
def test_codec_uses_the_accelerator() -> None:
    assert codec._TIMESTAMP_FIELD is accelerator().timestamp_field


@compiled_only
@given(times)
def test_accelerator_matches_upb(ns: int) -> None:
    assert accelerator().timestamp_field(ns) == upb(ns)


@compiled_only
@pytest.mark.parametrize("ns", [-1, LIMIT, 1 << 63, 1 << 64, -(1 << 70)])
def test_accelerator_refuses_what_codec_never_hands_it(ns: int) -> None:
    with pytest.raises(ValueError, match="2\\*\\*62"):
        accelerator().timestamp_field(ns)


@compiled_only
@pytest.mark.parametrize("bad", [1.5, "1", None, b"\x01"])
def test_accelerator_takes_only_ints(bad: object) -> None:
    with pytest.raises(TypeError, match="takes an int"):
        accelerator().timestamp_field(bad)


@pytest.mark.parametrize("ns", [LIMIT, (1 << 63) + 5, -5])
def test_times_beyond_the_accelerator_still_encode(ns: int) -> None:
    """Out of the C range (after 2116, before 1970) codec's Python path answers."""
    assert codec.encode_timestamp(ns) == upb(ns)
