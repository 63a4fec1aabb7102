"""Who may call an API next once it throttles: one ``Pacer`` per ``ApiClient``.

While the API answers normally the pacer lets every call through. After a 429 or 503 it
holds every caller until the moment the answer's ``Retry-After`` names, then lets them
through a few at a time: the number allowed in flight is halved on throttling and grows by
one per window of successes (additive increase, multiplicative decrease), until it is
large enough to stop limiting. Without it, each of a hundred workflows would probe the API
on its own, most answers would be 429s, and whoever happened to come back at the right
moment would go first.

Waiting callers go in order of arrival, or, for a pacer made ``by_priority``, of their
*priority* (lower first) and then of arrival. A caller states its priority with
``call_priority``, which holds for everything awaited inside it: the workflow gives each
request's calls the request's age, so that under throttling the oldest requests move on
first instead of all of them advancing in lockstep. A call without a priority (a person
waiting on a chat answer or the CLI) goes before all of them.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

__all__ = ["PacedCall", "Pacer", "call_priority", "current_call_priority"]

logger = logging.getLogger(__name__)

_PRIORITY: contextvars.ContextVar[float] = contextvars.ContextVar(
    "phonedesk_call_priority", default=-math.inf
)


@contextmanager
def call_priority(priority: float) -> Iterator[None]:
    """Calls made inside wait their turn by ``priority``: lower goes first."""
    token = _PRIORITY.set(priority)
    try:
        yield
    finally:
        _PRIORITY.reset(token)


def current_call_priority() -> float:
    """The priority calls made here wait by (``-inf``, the first, when none was set)."""
    return _PRIORITY.get()


class PacedCall:
    """One call let through by the pacer; tell it whether the API turned the call away."""

    __slots__ = ("_epoch", "outcome", "retry_after")

    def __init__(self, epoch: int) -> None:
        self._epoch = epoch
        self.outcome: str = "ok"
        self.retry_after: float | None = None

    @property
    def epoch(self) -> int:
        return self._epoch

    def throttled(self, retry_after: float | None) -> None:
        self.outcome = "throttled"
        self.retry_after = retry_after

    def failed(self) -> None:
        """Neither success nor throttling: it says nothing about the API's rate."""
        self.outcome = "failed"


class Pacer:
    """Orders and spaces the calls to one API while that API throttles."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        max_window: int = 64,
        by_priority: bool = False,
    ) -> None:
        """``by_priority``: waiting callers go by their ``call_priority``, else by arrival."""
        if max_window < 1:
            raise ValueError(f"max_window must be at least 1, got {max_window}")
        self._clock = clock
        self._sleep = sleep
        self._max_window = max_window
        self._by_priority = by_priority
        self._resume_at = -math.inf
        # None: no limit, the API has not throttled lately.
        self._window: float | None = None
        self._in_flight = 0
        self._epoch = 0
        # The waiting callers by (priority, arrival); the first is woken on change.
        self._queue: list[tuple[float, int, asyncio.Event]] = []
        self._arrivals = itertools.count()

    @property
    def window(self) -> float | None:
        """How many calls may be in flight at once; None when unlimited."""
        return self._window

    @property
    def resume_at(self) -> float:
        """No call is let through before this moment (the latest Retry-After)."""
        return self._resume_at

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[PacedCall]:
        """Wait for this call's turn, then hold one place in flight while it runs."""
        await self._acquire()
        turn = PacedCall(self._epoch)
        try:
            yield turn
        except BaseException:
            turn.failed()
            raise
        finally:
            self._release(turn)

    def _may_start(self) -> bool:
        return self._window is None or self._in_flight < self._window

    async def _acquire(self) -> None:
        if not self._queue and self._may_start() and self._clock() >= self._resume_at:
            self._in_flight += 1
            return
        priority = _PRIORITY.get() if self._by_priority else -math.inf
        entry = (priority, next(self._arrivals), asyncio.Event())
        wake = entry[2]
        heapq.heappush(self._queue, entry)
        try:
            while True:
                if self._queue[0] is entry and self._may_start():
                    wait = self._resume_at - self._clock()
                    if wait <= 0:
                        heapq.heappop(self._queue)
                        self._in_flight += 1
                        self._wake_first()
                        return
                    await self._sleep(wait)
                    continue
                wake.clear()
                await wake.wait()
        except BaseException:
            if entry in self._queue:
                self._queue.remove(entry)
                heapq.heapify(self._queue)
                self._wake_first()
            raise

    def _release(self, turn: PacedCall) -> None:
        self._in_flight -= 1
        if turn.outcome == "throttled":
            self._on_throttled(turn)
        elif turn.outcome == "ok" and self._window is not None:
            self._window += 1 / self._window
            if self._window >= self._max_window:
                logger.info("no longer pacing calls: %d went through", self._max_window)
                self._window = None
        self._wake_first()

    def _on_throttled(self, turn: PacedCall) -> None:
        if turn.retry_after is not None:
            self._resume_at = max(self._resume_at, self._clock() + turn.retry_after)
        # Calls sent before the last cut were sent under the old window: their 429s are
        # the same news, so the window is cut once per round, not once per answer.
        if turn.epoch != self._epoch:
            return
        self._epoch += 1
        sent_together = self._in_flight + 1
        current = sent_together if self._window is None else min(self._window, sent_together)
        self._window = max(1.0, current / 2)
        logger.debug("throttled: at most %.1f calls in flight", self._window)

    def _wake_first(self) -> None:
        if self._queue:
            self._queue[0][2].set()
