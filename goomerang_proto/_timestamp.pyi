"""The envelope's creation Timestamp field in C (``_timestamp.c``): built with the compiled
engine, absent when pure."""

def timestamp_field(ns: int, /) -> bytes:
    """Frame field 5 for ``ns`` nanoseconds since the epoch (b"" for 0); 0 <= ns < 2**62."""
