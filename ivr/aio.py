"""asyncio helpers shared by the long-running loops."""

from __future__ import annotations

import asyncio

BULK_PAUSE_S = 0.002    # after each page of a bulk read: Redis and the CPU go back to the calls


async def between_pages() -> None:
    """Between two pages of a bulk read (the month report, a verification):
    Redis serves the report's pages at the same priority as the calls' writes,
    so a report read flat out held calls' commands behind it (docs/benchmarks.md)."""
    await asyncio.sleep(BULK_PAUSE_S)


def cancelling() -> bool:
    """Whether the running task is being cancelled: a loop that survives the
    errors of one round checks this, so a cancellation swallowed inside the round
    still stops it. Call it from inside a task only."""
    task = asyncio.current_task()
    assert task is not None, "cancelling() outside a task"
    return task.cancelling() > 0
