from __future__ import annotations

import random
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import ValidationError

from provisioning.microsoft.errors import CODE_CONCURRENCY_VIOLATION, CODE_OBJECT_CONFLICT
from provisioning.microsoft.retry import (
    RetryPolicy,
    is_throttling,
    parse_retry_after,
    retry_delay,
    should_retry,
    should_retry_transport_error,
)

NOW = datetime(2026, 11, 26, 7, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("status", [408, 429, 503])
@pytest.mark.parametrize("idempotent", [True, False])
def test_throttling_and_unavailability_are_retried_for_every_call(
    status: int, idempotent: bool
) -> None:
    assert should_retry(status, None, idempotent=idempotent)


@pytest.mark.parametrize("status", [500, 502, 504])
def test_server_errors_are_retried_only_for_idempotent_calls(status: int) -> None:
    assert should_retry(status, "InternalServerError", idempotent=True)
    assert not should_retry(status, "InternalServerError", idempotent=False)


def test_only_a_concurrency_violation_conflict_is_retried() -> None:
    assert should_retry(409, CODE_CONCURRENCY_VIOLATION, idempotent=False)
    assert not should_retry(409, CODE_OBJECT_CONFLICT, idempotent=True)
    assert not should_retry(409, None, idempotent=True)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 501])
def test_client_errors_and_not_implemented_are_final(status: int) -> None:
    assert not should_retry(status, None, idempotent=True)


@pytest.mark.parametrize(
    "error", [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("x")]
)
def test_failures_before_sending_are_retried_even_for_a_post(error: httpx.RequestError) -> None:
    assert should_retry_transport_error(error, idempotent=False)


@pytest.mark.parametrize(
    "error",
    [httpx.ReadTimeout("slow"), httpx.ReadError("reset"), httpx.RemoteProtocolError("eof")],
)
def test_failures_after_sending_are_retried_only_for_idempotent_calls(
    error: httpx.RequestError,
) -> None:
    assert should_retry_transport_error(error, idempotent=True)
    assert not should_retry_transport_error(error, idempotent=False)


def test_a_misconfigured_url_is_not_retried() -> None:
    assert not should_retry_transport_error(httpx.UnsupportedProtocol("ftp"), idempotent=True)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2", 2.0), ("0.25", 0.25), (" 7 ", 7.0), ("0", 0.0)],
)
def test_retry_after_delta_seconds_accepts_decimals(value: str, seconds: float) -> None:
    assert parse_retry_after({"Retry-After": value}) == seconds


def test_retry_after_header_name_is_case_insensitive() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after(httpx.Headers({"RETRY-AFTER": "3"})) == 3.0


def test_retry_after_http_date_counts_from_now() -> None:
    headers = {"Retry-After": "Thu, 26 Nov 2026 07:00:30 GMT"}
    assert parse_retry_after(headers, now=NOW) == 30.0


def test_retry_after_date_in_the_past_means_no_wait() -> None:
    headers = {"Retry-After": "Thu, 26 Nov 2026 06:59:00 GMT"}
    assert parse_retry_after(headers, now=NOW) == 0.0


@pytest.mark.parametrize("value", ["soon", "", "-5", "nan", "inf", "Thu, 99 Foo 2026"])
def test_unreadable_retry_after_is_ignored(value: str) -> None:
    assert parse_retry_after({"Retry-After": value}, now=NOW) is None


def test_missing_retry_after_is_none() -> None:
    assert parse_retry_after({"Content-Type": "application/json"}) is None


@pytest.mark.parametrize("seed", range(20))
def test_retry_after_is_never_undercut(seed: int) -> None:
    policy = RetryPolicy(jitter=0.5)
    delay = retry_delay(1, 2.0, policy, random.Random(seed))
    assert 2.0 <= delay <= 3.0


def test_retry_after_beyond_max_delay_is_still_honoured() -> None:
    policy = RetryPolicy(max_delay=1.0)
    assert retry_delay(1, 10.0, policy, random.Random(0)) >= 10.0


def test_backoff_doubles_per_attempt_without_jitter() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0, jitter=0.0)
    rng = random.Random(0)
    assert [retry_delay(n, None, policy, rng) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0]


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=30.0, jitter=0.0)
    assert retry_delay(20, None, policy, random.Random(0)) == 30.0
    assert retry_delay(10_000, None, policy, random.Random(0)) == 30.0


def test_jitter_stays_within_its_fraction_below_the_backoff() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=30.0, jitter=0.25)
    rng = random.Random(42)
    delays = [retry_delay(3, None, policy, rng) for _ in range(200)]
    assert all(3.0 <= delay <= 4.0 for delay in delays)
    assert len(set(delays)) > 100  # actually spread, not a constant


def test_same_seed_gives_same_delays() -> None:
    policy = RetryPolicy()
    first = [retry_delay(n, None, policy, random.Random(7)) for n in range(1, 6)]
    second = [retry_delay(n, None, policy, random.Random(7)) for n in range(1, 6)]
    assert first == second


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        retry_delay(0, None, RetryPolicy(), random.Random(0))


def test_policy_rejects_a_cap_below_the_base_delay() -> None:
    with pytest.raises(ValidationError, match="max_delay"):
        RetryPolicy(base_delay=5.0, max_delay=1.0)


def test_policy_rejects_zero_attempts() -> None:
    with pytest.raises(ValidationError):
        RetryPolicy(max_attempts=0)


@pytest.mark.parametrize(
    ("status", "throttling"), [(429, True), (503, True), (408, False), (500, False)]
)
def test_only_429_and_503_count_as_throttling(status: int, throttling: bool) -> None:
    assert is_throttling(status) is throttling
