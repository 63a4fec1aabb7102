"""One run of one stage: its deadline, its backoff, its cancellation check, and its turn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Final

from provisioning.microsoft.pacing import call_priority
from provisioning.stages.outcomes import DeadlinePassed, StageCancelled

__all__ = ["StageContext", "calls_ordered"]

logger = logging.getLogger(__name__)

_BACKOFF: Final = 1.6
_JITTER: Final = 0.2
# Priorities are request ages in epoch seconds; this puts a long-pole call before them all.
_LONG_POLE_FIRST: Final = 1e12


class StageContext:
    """The deadline, the backoff and the cancellation check of one run of a stage."""

    def __init__(
        self,
        request_id: str,
        *,
        deadline: float,
        budget_s: float,
        poll_interval_s: float,
        poll_max_interval_s: float,
        is_cancelled: Callable[[], Awaitable[bool]] | None = None,
        wakeup: asyncio.Event | None = None,
        priority: float | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``priority`` orders this run's calls against other requests' while an API
        throttles (lower first; see ``call_priority``); None leaves them unordered."""
        self.request_id = request_id
        self.priority = priority
        self.deadline = deadline
        self.budget_s = budget_s
        self.last_problem: str | None = None
        self._interval = poll_interval_s
        self._max_interval = max(poll_max_interval_s, poll_interval_s)
        self._is_cancelled = is_cancelled
        self._wakeup = wakeup
        self._clock = clock
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._attempt = 0

    def reset_backoff(self) -> None:
        """Something moved on, so the next wait starts short again."""
        self._attempt = 0

    async def check_cancelled(self) -> None:
        if self._is_cancelled is not None and await self._is_cancelled():
            raise StageCancelled

    async def pause(self, reason: str, *, at_least: float = 0.0, cancellable: bool = True) -> None:
        """Wait before looking again; raise when the deadline has passed or on cancel."""
        self.last_problem = reason
        remaining = self.deadline - self._clock()
        if remaining <= 0:
            raise DeadlinePassed(reason)
        delay = min(self._max_interval, self._interval * _BACKOFF**self._attempt)
        self._attempt += 1
        # Jitter only downwards, so the configured maximum interval stays the maximum.
        delay *= self._rng.uniform(1 - _JITTER, 1)
        delay = min(max(delay, at_least), remaining)
        logger.debug("%s: waiting %.2f s: %s", self.request_id, delay, reason)
        await self._wait(delay, cancellable=cancellable)

    async def wait_out_throttling(self, reason: str, retry_after: float | None) -> None:
        """Wait as long as the API asked, without growing the backoff.

        Throttling says the API is busy, not that the tenant is slow to act, so it must not
        stretch the stage's next polls towards their maximum interval.
        """
        await self.hold(reason, self._interval if retry_after is None else retry_after)

    async def hold(self, reason: str, seconds: float, *, cancellable: bool = True) -> None:
        """Wait ``seconds`` (up to the deadline) without growing the backoff."""
        self.last_problem = reason
        remaining = self.deadline - self._clock()
        if remaining <= 0:
            raise DeadlinePassed(reason)
        delay = min(seconds, remaining)
        logger.debug("%s: waiting %.2f s: %s", self.request_id, delay, reason)
        await self._wait(delay, cancellable=cancellable)

    @property
    def poll_interval_s(self) -> float:
        return self._interval

    async def _wait(self, delay: float, *, cancellable: bool) -> None:
        if cancellable and self._wakeup is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), delay)
        else:
            await self._sleep(delay)
        if cancellable:
            await self.check_cancelled()


def calls_ordered(
    ctx: StageContext, *, long_pole: bool = False
) -> contextlib.AbstractContextManager[None]:
    """The request's calls wait their turn by its priority (its age) while an API throttles.

    ``long_pole``: a call that starts one of the tenant's long waits (creating an account
    starts its 15-20 minute propagation) goes ahead of every other call of any request. A
    request's other calls then queue behind its own propagation, not in front of another
    request's.
    """
    if ctx.priority is None:
        return contextlib.nullcontext()
    return call_priority(ctx.priority - _LONG_POLE_FIRST if long_pole else ctx.priority)
