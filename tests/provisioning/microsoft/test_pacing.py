from __future__ import annotations

import asyncio

import httpx
import pytest

from provisioning.microsoft.errors import CODE_TOO_MANY_REQUESTS, Throttled
from provisioning.microsoft.pacing import Pacer, call_priority
from provisioning.microsoft.retry import RetryPolicy
from tests.provisioning.microsoft.fakes import FakeTime, Script, graph_error, make_api


def pacer(time: FakeTime, max_window: int = 64, *, by_priority: bool = False) -> Pacer:
    return Pacer(clock=time.clock, sleep=time.sleep, max_window=max_window, by_priority=by_priority)


async def throttle(pacer: Pacer, *retry_afters: float | None) -> None:
    """Calls sent together, all answered 429, one per Retry-After given."""
    turns = [pacer.turn() for _ in retry_afters]
    entered = [await turn.__aenter__() for turn in turns]
    for turn, entered_turn, retry_after in zip(turns, entered, retry_afters, strict=True):
        entered_turn.throttled(retry_after)
        await turn.__aexit__(None, None, None)


async def test_calls_go_straight_through_while_the_api_does_not_throttle() -> None:
    time = FakeTime()
    subject = pacer(time)
    release = asyncio.Event()
    peak = 0

    async def call() -> None:
        nonlocal peak
        async with subject.turn():
            peak = max(peak, subject.in_flight)
            await release.wait()

    tasks = [asyncio.create_task(call()) for _ in range(100)]
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(*tasks)
    assert peak == 100
    assert time.sleeps == []


async def test_after_a_429_no_call_starts_before_its_retry_after() -> None:
    time = FakeTime()
    subject = pacer(time)
    await throttle(subject, 2.0)

    async with subject.turn():
        assert time.now == 2.0
    assert time.sleeps == [2.0]


async def test_a_later_longer_retry_after_is_the_one_waited_for() -> None:
    time = FakeTime()
    subject = pacer(time)
    await throttle(subject, 5.0, 1.0)

    async with subject.turn():
        assert time.now == 5.0


async def test_429s_to_calls_sent_together_halve_the_calls_in_flight_once() -> None:
    subject = pacer(FakeTime())
    await throttle(subject, *[0.1] * 8)
    assert subject.window == 4.0

    await throttle(subject, *[0.1] * 4)
    assert subject.window == 2.0


async def test_a_429_to_a_lone_call_narrows_the_window_to_one() -> None:
    subject = pacer(FakeTime())
    await throttle(subject, *[0.1] * 8)
    await throttle(subject, 0.1)
    assert subject.window == 1.0


async def test_the_window_never_closes_completely() -> None:
    subject = pacer(FakeTime())
    for _ in range(10):
        await throttle(subject, 0.1)
    assert subject.window == 1.0


async def test_successes_widen_the_window_until_pacing_stops() -> None:
    subject = pacer(FakeTime(), max_window=4)
    await throttle(subject, 0.1)
    assert subject.window == 1.0

    widths = []
    while subject.window is not None:
        async with subject.turn():
            pass
        widths.append(subject.window)
    assert widths[:3] == [2.0, 2.5, 2.9]
    assert len(widths) < 10


async def test_while_paced_callers_go_in_order_of_arrival_as_the_window_allows() -> None:
    time = FakeTime()
    subject = pacer(time)
    await throttle(subject, 1.0)
    assert subject.window == 1.0
    started: list[int] = []
    finish = {n: asyncio.Event() for n in range(4)}

    async def call(n: int) -> None:
        async with subject.turn():
            started.append(n)
            await finish[n].wait()

    tasks = [asyncio.create_task(call(n)) for n in range(4)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert started == [0]
    assert subject.waiting == 3

    for n in range(4):
        finish[n].set()
        for _ in range(5):
            await asyncio.sleep(0)
        # Each success widens the window, so more may start, but never out of turn.
        assert started == list(range(len(started)))
    await asyncio.gather(*tasks)
    assert started == [0, 1, 2, 3]


async def paced_order(subject: Pacer, priorities: list[float | None]) -> list[int]:
    """The order in which callers with these priorities (None: none stated) get through,
    all arriving while one call holds the only place in flight."""
    await throttle(subject, 1.0)
    started: list[int] = []
    hold = asyncio.Event()

    async def holder() -> None:
        async with subject.turn():
            await hold.wait()

    async def call(n: int, priority: float | None) -> None:
        if priority is None:
            async with subject.turn():
                started.append(n)
            return
        with call_priority(priority):
            async with subject.turn():
                started.append(n)

    first = asyncio.create_task(holder())
    for _ in range(3):
        await asyncio.sleep(0)
    tasks = [asyncio.create_task(call(n, p)) for n, p in enumerate(priorities)]
    for _ in range(3):
        await asyncio.sleep(0)
    hold.set()
    await asyncio.gather(first, *tasks)
    return started


async def test_a_pacer_by_priority_lets_the_oldest_request_through_first() -> None:
    # Priorities are request ages: 30 is older than 50. A call without one (a person
    # waiting on an answer) goes first; equal priorities keep their order of arrival.
    order = await paced_order(pacer(FakeTime(), by_priority=True), [50.0, 30.0, None, 30.0, 40.0])
    assert order == [2, 1, 3, 4, 0]


async def test_a_pacer_not_by_priority_ignores_priorities() -> None:
    order = await paced_order(pacer(FakeTime()), [50.0, 30.0, None, 30.0, 40.0])
    assert order == [0, 1, 2, 3, 4]


async def test_a_caller_cancelled_while_waiting_does_not_hold_up_the_others() -> None:
    time = FakeTime()
    subject = pacer(time)
    await throttle(subject, 1.0)
    hold = asyncio.Event()

    async def first() -> None:
        async with subject.turn():
            await hold.wait()

    async def other() -> str:
        async with subject.turn():
            return "through"

    running = asyncio.create_task(first())
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(other())
    waiting = asyncio.create_task(other())
    await asyncio.sleep(0)
    cancelled.cancel()
    hold.set()
    assert await waiting == "through"
    await running
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert subject.waiting == 0
    assert subject.in_flight == 0


async def test_a_call_that_fails_otherwise_neither_widens_nor_narrows_the_window() -> None:
    subject = pacer(FakeTime())
    await throttle(subject, *[0.1] * 4)
    with pytest.raises(httpx.ReadTimeout):
        async with subject.turn():
            raise httpx.ReadTimeout("no answer")
    assert subject.window == 2.0
    assert subject.in_flight == 0


def test_a_window_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="max_window"):
        Pacer(clock=FakeTime().clock, sleep=FakeTime().sleep, max_window=0)


async def test_a_client_holds_its_other_calls_until_the_retry_after_of_a_throttled_one() -> None:
    time = FakeTime()
    script = Script(
        graph_error(429, CODE_TOO_MANY_REQUESTS, **{"Retry-After": "2"}),
        httpx.Response(200, json={"ok": True}),
    )
    api = make_api(script, time=time, policy=RetryPolicy(max_throttle_wait_s=0))
    with pytest.raises(Throttled):
        await api.get_json("/users/1")

    assert await api.get_json("/users/2") == {"ok": True}
    assert time.sleeps == [2.0]
    assert len(script.requests) == 2
