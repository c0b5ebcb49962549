"""The C masking accelerator (``goomerang_proto/_mask.c``) against a byte-by-byte oracle.

It exists only in the compiled build (``make compiled``), so these tests are
marked ``compiled_only``: ``make unit-compiled`` runs them, ``make unit``
deselects them (never skips). The pure fallback is checked against the same
oracle in ``test_pure_unmask_matches_the_oracle`` (runs in both builds), and
the whole frame reader in both builds against wsproto
(``tests/test_frames_differential.py``).
"""

from __future__ import annotations

import importlib
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from goomerang_proto import frames

compiled_only = pytest.mark.compiled_only


def oracle(payload: bytes, key: bytes) -> bytes:
    """RFC 6455 5.3, as written: octet i XOR key octet i mod 4."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(payload))


keys = st.binary(min_size=4, max_size=4)
# sizes across the 8-byte steps and the byte tail, and now and then a large one
# (large ones drawn from a seed: hypothesis refuses to draw 60 KB of bytes itself)
payloads = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda n, seed: random.Random(seed).randbytes(n),
        st.integers(min_value=60_000, max_value=70_000),
        st.integers(min_value=0, max_value=2**32),
    ),
)


def accelerator():  # type: ignore[no-untyped-def]
    return importlib.import_module("goomerang_proto._mask")


@compiled_only
def test_frames_uses_the_accelerator() -> None:
    mod = accelerator()
    assert frames._c_unmask_at is mod.unmask_at
    assert frames._c_mask is mod.mask


@compiled_only
@given(
    payload=payloads,
    key=keys,
    before=st.binary(max_size=11),
    after=st.binary(max_size=11),
    kind=st.sampled_from([bytes, bytearray, memoryview]),
)
def test_unmask_at_matches_the_oracle(
    payload: bytes, key: bytes, before: bytes, after: bytes, kind: type
) -> None:
    buf = kind(before + key + payload + after)
    assert accelerator().unmask_at(buf, len(before), len(payload)) == oracle(payload, key)


@compiled_only
@given(payload=payloads, key=keys, kind=st.sampled_from([bytes, bytearray, memoryview]))
def test_mask_matches_the_oracle_and_undoes_itself(payload: bytes, key: bytes, kind: type) -> None:
    mod = accelerator()
    masked = mod.mask(kind(payload), kind(key))
    assert masked == oracle(payload, key)
    assert mod.mask(masked, key) == payload


@compiled_only
@pytest.mark.parametrize(
    ("start", "length", "error"),
    [
        (-1, 0, ValueError),
        (0, -1, ValueError),
        (0, 7, ValueError),  # 4 + 7 > 10
        (7, 0, ValueError),  # the key itself does not fit
        (6, 1, ValueError),
        (2**70, 0, OverflowError),
        (0, 2**70, OverflowError),
        ("0", 0, TypeError),
        (0, 1.0, TypeError),
    ],
)
def test_unmask_at_refuses_what_does_not_fit(start: object, length: object, error: type) -> None:
    with pytest.raises(error):
        accelerator().unmask_at(b"k" * 10, start, length)


@compiled_only
def test_unmask_at_bounds_are_exact() -> None:
    mod = accelerator()
    buf = b"\x01\x02\x03\x04" + b"abcdef"
    assert mod.unmask_at(buf, 0, 6) == oracle(b"abcdef", b"\x01\x02\x03\x04")
    assert mod.unmask_at(buf, 6, 0) == b""
    with pytest.raises(ValueError):
        mod.unmask_at(b"abc", 0, 0)  # shorter than a key


@compiled_only
def test_bad_arguments_raise_type_errors() -> None:
    mod = accelerator()
    with pytest.raises(TypeError):
        mod.unmask_at(b"12345")
    with pytest.raises(TypeError):
        mod.unmask_at("1234abcd", 0, 4)  # str is not bytes-like
    with pytest.raises(TypeError):
        mod.mask(b"ab")
    with pytest.raises(TypeError):
        mod.mask(b"ab", 1234)
    for key in (b"", b"123", b"12345"):
        with pytest.raises(ValueError, match="4 bytes"):
            mod.mask(b"ab", key)


@pytest.mark.parametrize("key", [b"", b"123", b"12345"])
def test_unmask_refuses_a_key_that_is_not_4_bytes(key: bytes) -> None:
    """Both builds: ValueError (the C module's check, and the pure one's)."""
    with pytest.raises(ValueError, match="4 bytes"):
        frames.unmask(b"payload", key)


@given(payload=payloads, key=keys)
def test_pure_unmask_matches_the_oracle(payload: bytes, key: bytes) -> None:
    """``frames.unmask`` (C in the compiled build, the big-integer XOR in the pure one)."""
    assert frames.unmask(payload, key) == oracle(payload, key)
    head = frames.frame_header(frames.OP_BINARY, len(payload), masked=True)
    assert frames.masked_binary(payload, key) == head + key + oracle(payload, key)
