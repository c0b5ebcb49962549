"""RFC 6455 masking in C (``_mask.c``): built with the compiled engine, absent when pure."""

def unmask_at(buf: bytes | bytearray | memoryview, start: int, length: int) -> bytes:
    """The ``length`` bytes after the 4-byte key at ``buf[start:start + 4]``, unmasked."""

def mask(payload: bytes | bytearray | memoryview, key: bytes | bytearray | memoryview) -> bytes:
    """``payload`` XOR the 4-byte ``key`` repeated."""
