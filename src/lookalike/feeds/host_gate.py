"""Politeness towards one host: how many requests at once, and a pause it asked for."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class HostGate:
    """At most ``per_host`` requests to one host at once, and a pause the host asked for
    (Retry-After) that holds back every request to it."""

    def __init__(self, per_host: int) -> None:
        self._slots = asyncio.Semaphore(per_host)
        self._resume_at = 0.0

    def pause(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self._resume_at = max(self._resume_at, loop.time() + seconds)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        async with self._slots:
            while (wait := self._resume_at - loop.time()) > 0:
                await asyncio.sleep(wait)
            yield


__all__ = ["HostGate"]
