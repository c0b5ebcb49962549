"""One worker's metric values in a memory-mapped file, and reading every worker's back.

Multiprocess mode (``goomerang serve --workers N --metrics``): each process
writes the values of its recorders to a file of its own in the metrics
directory; whichever process answers a scrape reads all of them and merges
(:mod:`.merge`). The format is ours (prometheus_client's multiprocess files
are its private business):

* bytes 0-7: ``used``, the bytes of the file that hold records (little-endian
  unsigned 64-bit), written after the record it covers, so a reader never
  sees a half-written record;
* then records, each 8-byte aligned: key length and value count (two
  little-endian unsigned 32-bit), the key (UTF-8 JSON, padded with spaces to
  a multiple of 8), the values (little-endian 64-bit floats).

A key is either a family (a JSON object: name, type, help, labels, buckets,
mode) or a series (a JSON array: the family name and its label values). A
record never moves once written; its values are overwritten in place.

File names: ``live_<pid>_<token>.gmm`` while the process lives;
:func:`mark_dead` renames them ``dead_<pid>_<token>.gmm`` (gauges of dead
processes are left out of the merge; counters and histograms stay in it).
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from collections.abc import Iterator, Sequence
from typing import Any

SUFFIX = ".gmm"
_USED = struct.Struct("<Q")
_HEAD = struct.Struct("<II")
_INITIAL_SIZE = 1 << 16


def _padded(key: bytes) -> bytes:
    return key + b" " * (-len(key) % 8)


class SnapshotFile:
    """The writer: one file, records appended once, values overwritten in place."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        os.ftruncate(self._fd, _INITIAL_SIZE)
        self._size = _INITIAL_SIZE
        self._mm = mmap.mmap(self._fd, self._size)
        self._used = _USED.size
        _USED.pack_into(self._mm, 0, self._used)
        self._offsets: dict[str, tuple[int, struct.Struct]] = {}

    def has(self, key: str) -> bool:
        """Whether a record with ``key`` was written."""
        return key in self._offsets

    def add(self, key: str, values: Sequence[float]) -> None:
        """Append a record (``key`` not yet written)."""
        raw = _padded(key.encode())
        fmt = struct.Struct(f"<{len(values)}d")
        size = _HEAD.size + len(raw) + fmt.size
        if self._used + size > self._size:
            self._grow(self._used + size)
        at = self._used
        _HEAD.pack_into(self._mm, at, len(raw), len(values))
        self._mm[at + _HEAD.size : at + _HEAD.size + len(raw)] = raw
        values_at = at + _HEAD.size + len(raw)
        fmt.pack_into(self._mm, values_at, *values)
        self._used = at + size
        _USED.pack_into(self._mm, 0, self._used)  # last: the record is complete
        self._offsets[key] = (values_at, fmt)

    @property
    def buffer(self) -> mmap.mmap:
        """The mapping (replaced when the file grows, which only ``add`` does)."""
        return self._mm

    def slot(self, key: str) -> tuple[int, struct.Struct]:
        """Where record ``key``'s values are in :attr:`buffer`, and their format."""
        return self._offsets[key]

    def put(self, key: str, values: Sequence[float]) -> None:
        """Overwrite the values of record ``key`` (same count as when added)."""
        at, fmt = self._offsets[key]
        fmt.pack_into(self._mm, at, *values)

    def _grow(self, need: int) -> None:
        size = self._size
        while size < need:
            size *= 2
        self._mm.close()
        os.ftruncate(self._fd, size)
        self._mm = mmap.mmap(self._fd, size)
        self._size = size

    def close(self) -> None:
        """Unmap and close (the file stays)."""
        self._mm.close()
        os.close(self._fd)


def read_records(path: str) -> Iterator[tuple[Any, tuple[float, ...]]]:
    """The (decoded key, values) of every complete record of one file.

    A file that is not ours, or was cut short, yields what it holds up to the
    first record that does not fit (never raises for a malformed file: a
    scrape must not fail because one worker died mid-write).
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return
    if len(data) < _USED.size:
        return
    (used,) = _USED.unpack_from(data, 0)
    end = min(used, len(data))
    at = _USED.size
    while at + _HEAD.size <= end:
        key_len, count = _HEAD.unpack_from(data, at)
        values_at = at + _HEAD.size + key_len
        next_at = values_at + 8 * count
        if key_len % 8 or next_at > end:
            return
        try:
            key = json.loads(data[at + _HEAD.size : values_at])
        except ValueError:
            return
        yield key, struct.unpack_from(f"<{count}d", data, values_at)
        at = next_at


def live_files(directory: str) -> Iterator[tuple[str, bool]]:
    """(path, whether its process lives) of every snapshot file in ``directory``."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return
    for name in names:
        if name.endswith(SUFFIX) and name.startswith(("live_", "dead_")):
            yield os.path.join(directory, name), name.startswith("live_")


def file_name(pid: int, token: str) -> str:
    """The name of a live process's file."""
    return f"live_{pid}_{token}{SUFFIX}"


def mark_dead(directory: str, pid: int) -> None:
    """Rename the files of process ``pid`` from ``live_`` to ``dead_`` (a no-op when none)."""
    prefix = f"live_{pid}_"
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix) and name.endswith(SUFFIX):
            try:
                os.rename(
                    os.path.join(directory, name), os.path.join(directory, "dead_" + name[5:])
                )
            except OSError:
                pass


def remove_all(directory: str) -> None:
    """Delete every snapshot file in ``directory`` (an earlier run's)."""
    for path, _ in list(live_files(directory)):
        try:
            os.remove(path)
        except OSError:
            pass
