"""The client profile on ``goomerang_io.Client`` running on uvloop (the asyncio profile's tasks)."""

from __future__ import annotations

import asyncio
import sys

from . import Task
from .asyncio_client import TASKS


def main() -> int:
    """Run the task named by GOOMERANG_TASK on a uvloop loop; exit status 0 when complete.

    Imports uvloop directly: a missing uvloop is an ImportError, never a run on
    asyncio's own loop under this profile's name.
    """
    import uvloop

    task = Task.from_env()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(TASKS[task.name](task))


if __name__ == "__main__":
    sys.exit(main())
