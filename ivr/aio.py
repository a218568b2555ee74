"""asyncio helpers shared by the long-running loops."""

from __future__ import annotations

import asyncio


def cancelling() -> bool:
    """Whether the running task is being cancelled: a loop that survives the
    errors of one round checks this, so a cancellation swallowed inside the round
    still stops it. Call it from inside a task only."""
    task = asyncio.current_task()
    assert task is not None, "cancelling() outside a task"
    return task.cancelling() > 0
