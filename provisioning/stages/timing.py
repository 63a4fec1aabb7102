"""How long the tenant's slow parts take lately, to know when to look at them."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Final

from provisioning.microsoft.graph import GraphClient, LongRunningOperation, OperationStatus
from provisioning.stages.context import StageContext

__all__ = ["DelayFloor", "Timings"]

_CLOSE_ENOUGH: Final = 0.1
# Accounts whose creation or sync time is kept, to learn how long propagation and sync take.
_CREATED_KEPT: Final = 1000


class DelayFloor:
    """How long something slow in the tenant has taken lately, to know when to look.

    Propagation takes minutes (15 to 20 in Microsoft's words), a sync and a number
    assignment less, and a look before they are done only costs a call against a rate
    limit that bulk runs already press on. So the first look comes when the quickest of the
    recent ones was seen done, shaded by ``margin``, and polling with backoff only starts
    from there. What is learned is a *first look*, never a fixed wait: a slower one is
    polled as before, and one faster than all recent ones is at most that much late.

    A look that finds one done only says it took *at most* that long. Where looks that
    came too early are reported as well (``too_early``), the first look goes halfway
    between the latest "not yet" and the quickest "done" until the two are within a tenth,
    so it closes in on the real duration instead of settling on whatever a first poll
    interval happened to be.
    """

    def __init__(self, *, keep: int = 20, margin: float = 0.9) -> None:
        self._done: deque[float] = deque(maxlen=keep)
        self._not_yet: deque[float] = deque(maxlen=keep)
        self._margin = margin

    def observed(self, seconds: float) -> None:
        """One started ``seconds`` ago was found done just now."""
        self._done.append(seconds)

    def too_early(self, seconds: float) -> None:
        """One started ``seconds`` ago was found not done yet."""
        self._not_yet.append(seconds)

    def first_look(self, at_least: float) -> float:
        """Seconds after the start to look first; ``at_least`` until anything is known."""
        if not self._done:
            return at_least
        look = min(self._done) * self._margin
        not_yet = max(self._not_yet, default=look)
        if not_yet < look * (1 - _CLOSE_ENOUGH):
            # Halfway, until known to within a tenth; closer would fail every other look.
            look = (not_yet + look) / 2
        return max(at_least, look)


class Timings:
    """What this process has learned about the tenant's delays, shared by every request.

    The propagation margin allows for accounts quicker than any seen lately. Sync and
    assignment are learned from the age at which a look found them done, which is never
    earlier than the first look itself, so a margin below one would only ever move the
    look earlier until it failed.
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.monotonic = monotonic
        self.propagation = DelayFloor(margin=0.9)
        self.sync = DelayFloor(margin=1.0)
        self.assignment = DelayFloor(margin=1.0)
        # When this process created an account (until it is ready) or synced one (until a
        # number is bound to it): to learn from them.
        self.created: dict[str, float] = {}
        self.synced: dict[str, float] = {}

    def remember(self, times: dict[str, float], key: str) -> None:
        """Note when something started, forgetting the oldest of those never seen done."""
        times[key] = self.monotonic()
        while len(times) > _CREATED_KEPT:
            del times[next(iter(times))]

    async def hold_for_first_look(
        self,
        ctx: StageContext,
        floor: DelayFloor,
        started: float,
        reason: str,
        *,
        at_least: float = 0.0,
        cancellable: bool = True,
    ) -> None:
        """Wait until ``floor`` says to look at what ``started`` (monotonic time) then."""
        remaining = floor.first_look(at_least) - (self.monotonic() - started)
        if remaining > 0:
            await ctx.hold(reason, remaining, cancellable=cancellable)

    async def wait_operation(
        self,
        ctx: StageContext,
        graph: GraphClient,
        operation_id: str,
        *,
        started: float | None = None,
        floor: DelayFloor | None = None,
    ) -> LongRunningOperation:
        """Poll an operation to its end: one that started is never abandoned half-way.

        With a ``floor`` and the (monotonic) time the operation was ``started``, the first
        look waits for what the floor has learned, and a success teaches it.
        """
        ctx.reset_backoff()
        if floor is not None and started is not None:
            await self.hold_for_first_look(
                ctx, floor, started, f"operation {operation_id} is running", cancellable=False
            )
        while True:
            looked = self.monotonic()
            operation = await graph.get_operation(operation_id)
            if floor is not None and started is not None:
                # The age when the look *started* is what is learned: under a rate limit a
                # call may wait its turn for seconds, and what is wanted is a look in time.
                age = looked - started
                if not operation.finished:
                    floor.too_early(age)
                elif operation.status is OperationStatus.SUCCEEDED:
                    floor.observed(age)
            if operation.finished:
                return operation
            await ctx.pause(
                f"operation {operation_id} is {operation.status.value}", cancellable=False
            )
