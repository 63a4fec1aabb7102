from __future__ import annotations

import random

import pytest

from provisioning.stages import DeadlinePassed, StageContext


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def context(sleeps: Sleeps, *, deadline: float = 3600.0) -> StageContext:
    return StageContext(
        "PD-TEST",
        deadline=deadline,
        budget_s=deadline,
        poll_interval_s=2.0,
        poll_max_interval_s=60.0,
        clock=lambda: 0.0,
        rng=random.Random(0),
        sleep=sleeps,
    )


async def test_throttling_waits_its_retry_after_and_leaves_the_poll_backoff_alone() -> None:
    sleeps = Sleeps()
    ctx = context(sleeps)

    for _ in range(6):
        await ctx.wait_out_throttling("HTTP 429 TooManyRequests", 0.05)
    await ctx.pause("account not ready")

    assert sleeps.delays[:6] == [0.05] * 6
    # The first poll after the throttling is as short as the first poll ever is.
    assert 1.6 <= sleeps.delays[6] <= 2.0


async def test_pauses_for_a_slow_tenant_do_grow() -> None:
    sleeps = Sleeps()
    ctx = context(sleeps)

    for _ in range(4):
        await ctx.pause("account not ready")

    assert sleeps.delays == sorted(sleeps.delays)
    assert sleeps.delays[-1] > 2.0 * 1.6**2


async def test_throttling_without_retry_after_waits_one_poll_interval() -> None:
    sleeps = Sleeps()
    await context(sleeps).wait_out_throttling("HTTP 503 ServiceUnavailable", None)
    assert sleeps.delays == [2.0]


async def test_throttling_past_the_deadline_ends_the_wait() -> None:
    sleeps = Sleeps()
    with pytest.raises(DeadlinePassed, match="429"):
        await context(sleeps, deadline=-1.0).wait_out_throttling("HTTP 429", 0.05)
    assert sleeps.delays == []
