"""The rate limiter behind card updates: Teams' limits, with time moved by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.proactive import retry_after_seconds
from bot.throttle import RateLimiter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_seven_updates_a_second_go_to_one_conversation_then_it_waits() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)

    assert [limiter.reserve("a:chat", "t") for _ in range(7)] == [0.0] * 7
    wait = limiter.reserve("a:chat", "t")

    assert wait == pytest.approx(1 / 7)
    clock.now += wait
    assert limiter.reserve("a:chat", "t") == 0.0


def test_a_waiting_reservation_takes_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)
    for _ in range(7):
        limiter.reserve("a:chat", "t")

    for _ in range(5):
        assert limiter.reserve("a:chat", "t") > 0
    clock.now += 1 / 7
    assert limiter.reserve("a:chat", "t") == 0.0


def test_other_conversations_are_not_held_up_by_a_busy_one() -> None:
    limiter = RateLimiter(clock=Clock())
    for _ in range(7):
        limiter.reserve("a:busy", "t")

    assert limiter.reserve("a:busy", "t") > 0
    assert limiter.reserve("a:quiet", "t") == 0.0


def test_fifty_a_second_per_tenant_across_all_conversations() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)

    granted = [limiter.reserve(f"a:chat-{n}", "tenant-1") for n in range(50)]
    assert granted == [0.0] * 50
    assert limiter.reserve("a:chat-new", "tenant-1") == pytest.approx(1 / 50)
    assert limiter.reserve("a:chat-new", "tenant-2") == 0.0


def test_a_hold_after_a_429_blocks_the_conversation_until_it_ends() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock)

    limiter.hold("a:chat", 2.5)

    assert limiter.reserve("a:chat", "t") == pytest.approx(2.5)
    clock.now += 2.5
    assert limiter.reserve("a:chat", "t") == 0.0


def test_a_bucket_refills_only_up_to_its_capacity() -> None:
    bucket = TokenBucket.full(rate=7, now=0.0)
    for _ in range(7):
        bucket.take(0.0)

    assert bucket.wait_time(3600.0) == 0.0
    for _ in range(7):
        bucket.take(3600.0)
    assert bucket.wait_time(3600.0) > 0


@pytest.mark.parametrize(("rate", "capacity"), [(0, None), (-1, None), (5, 0.5)])
def test_nonsense_limits_are_refused(rate: float, capacity: float | None) -> None:
    with pytest.raises(ValueError, match=r"rate|capacity"):
        TokenBucket.full(rate=rate, now=0.0, capacity=capacity)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("Mon, 02 Mar 2026 09:00:10 GMT", 10.0),
        ("Mon, 02 Mar 2026 08:59:00 GMT", 0.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(
    header: str | None, seconds: float | None
) -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert retry_after_seconds(header, now) == seconds
