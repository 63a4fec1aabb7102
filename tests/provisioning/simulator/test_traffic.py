"""Throttling arithmetic and fault draws, with a fake clock and fixed seeds."""

from __future__ import annotations

import pytest

from provisioning.simulator.traffic import AdmissionBucket, ApiRateLimiter, Fault, FaultInjector


class FakeTime:
    def __init__(self) -> None:
        self.value = 0.0

    def __call__(self) -> float:
        return self.value


def test_the_bucket_admits_one_seconds_worth_then_says_how_long_to_wait() -> None:
    now = FakeTime()
    bucket = AdmissionBucket(4, now)
    assert [bucket.take() for _ in range(4)] == [None] * 4
    assert bucket.take() == pytest.approx(0.25)
    now.value += 0.25
    assert bucket.take() is None


def test_a_slow_rate_still_admits_the_first_request() -> None:
    bucket = AdmissionBucket(0.5, FakeTime())
    assert bucket.take() is None
    assert bucket.take() == pytest.approx(2.0)


def test_each_api_has_its_own_bucket_and_no_rate_means_no_limit() -> None:
    limiter = ApiRateLimiter(FakeTime())
    assert limiter.check("graph") is None
    limiter.set_rate(1)
    assert limiter.check("graph") is None
    assert limiter.check("teams") is None
    assert limiter.check("graph") == pytest.approx(1.0)


def test_faults_repeat_for_the_same_seed_and_follow_the_rates() -> None:
    def sequence(seed: int) -> list[Fault]:
        injector = FaultInjector(seed)
        return [injector.draw(0.2, 0.1) for _ in range(2000)]

    first = sequence(3)
    assert first == sequence(3)
    assert first != sequence(4)
    share = {fault: first.count(fault) / len(first) for fault in Fault}
    assert 0.06 < share[Fault.INTERNAL_ERROR] < 0.14
    assert 0.06 < share[Fault.UNAVAILABLE] < 0.14
    assert 0.06 < share[Fault.TIMEOUT] < 0.14


def test_zero_rates_never_fault() -> None:
    injector = FaultInjector(1)
    assert {injector.draw(0, 0) for _ in range(500)} == {Fault.NONE}
