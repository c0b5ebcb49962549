"""The blocking client's handler queue: order, bounds, and strictly alternating pause/resume."""

from __future__ import annotations

import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from goomerang_io.sync.inbox import HIGH_BYTES, HIGH_COUNT, ITEM_OVERHEAD, Inbox

WAIT = 5.0


class Gate:
    """pause/resume callbacks that record their calls (and yield, to invite races)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.paused = False

    def pause(self) -> None:
        time.sleep(0)  # let the handler thread run here if it can
        self.calls.append("pause")
        self.paused = True

    def resume(self) -> None:
        time.sleep(0)
        self.calls.append("resume")
        self.paused = False


def test_pause_and_resume_alternate_and_reading_ends_resumed_under_a_fast_consumer() -> None:
    gate = Gate()
    inbox = Inbox("test-inbox", gate.pause, gate.resume)
    done = threading.Event()
    seen: list[int] = []
    total = 20 * HIGH_COUNT
    for i in range(total):
        inbox.put(lambda i=i: seen.append(i), HIGH_BYTES // 200)
    inbox.put(done.set)
    assert done.wait(WAIT)
    inbox.close()
    inbox.thread.join(WAIT)
    assert seen == list(range(total))
    assert gate.calls, "the queue never filled: the test did not exercise pausing"
    assert all(a != b for a, b in zip(gate.calls, gate.calls[1:], strict=False)), gate.calls
    assert gate.calls[-1] == "resume" and not gate.paused
    assert inbox.queued == (0, 0)


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(min_value=0, max_value=HIGH_BYTES), min_size=1, max_size=60))
def test_a_blocked_handler_pauses_reading_at_the_bound_and_everything_runs_after(
    sizes: list[int],
) -> None:
    gate = Gate()
    inbox = Inbox("test-inbox", gate.pause, gate.resume)
    release = threading.Event()
    started = threading.Event()
    ran: list[int] = []

    def blocker() -> None:
        started.set()
        release.wait(WAIT)

    inbox.put(blocker)
    assert started.wait(WAIT)
    ever_over = False
    for i, size in enumerate(sizes):
        items, queued = inbox.queued
        inbox.put(lambda i=i: ran.append(i), size)
        ever_over = ever_over or (
            queued + size + ITEM_OVERHEAD > HIGH_BYTES or items + 1 > HIGH_COUNT
        )
        assert gate.paused == ever_over  # paused once past a bound, never before
    assert gate.calls == (["pause"] if ever_over else [])
    release.set()
    inbox.close()
    inbox.thread.join(WAIT)
    assert ran == list(range(len(sizes)))
    assert not gate.paused
    assert inbox.queued == (0, 0)
