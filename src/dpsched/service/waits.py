"""Long polls: `GET /v1/claims/{id}?wait=` answers once the claim is no longer pending, or
when the wait is over.

How it works, and what it costs: after every commit the writer wakes every waiter
(`Changes`), and each re-reads its claim through the writer. Simple, but each waiter
costs a writer job per commit while its claim is pending, whether its claim changed
or not.
"""

from __future__ import annotations

import asyncio
import time as wallclock
from collections.abc import Awaitable, Callable
from typing import Any

from dpsched.core import ClaimState


class Changes:
    """Wakes long polls after every commit (set from the writer thread)."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.event = asyncio.Event()

    def bump(self) -> None:
        self.event.set()
        self.event = asyncio.Event()

    def from_writer(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.bump)


async def while_pending(
    read: Callable[[], Awaitable[dict[str, Any]]], changes: Changes, wait: float
) -> dict[str, Any]:
    """The claim's view (`read` reads it on the writer) once it is not pending, or as it
    is after `wait` seconds."""
    deadline = wallclock.monotonic() + wait
    while True:
        changed = changes.event
        view = await read()
        left = deadline - wallclock.monotonic()
        if view["state"] != ClaimState.PENDING.value or left <= 0:
            return view
        try:
            await asyncio.wait_for(changed.wait(), timeout=left)
        except TimeoutError:
            return await read()
