"""Throttling and injected faults, decided per request and reproducible from the seed."""

from __future__ import annotations

import enum
import random
from collections.abc import Callable


class AdmissionBucket:
    """Admits ``rate`` requests per second with a burst of one second's worth."""

    def __init__(self, rate: float, now: Callable[[], float]) -> None:
        if rate <= 0:
            raise ValueError("rate must be greater than 0")
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._now = now
        self._tokens = self.capacity
        self._updated = now()

    def take(self) -> float | None:
        """None when admitted, else the seconds until a token will be available."""
        current = self._now()
        self._tokens = min(self.capacity, self._tokens + (current - self._updated) * self.rate)
        self._updated = current
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / self.rate


class ApiRateLimiter:
    """One token bucket per API, rebuilt whenever the rate changes."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._rate: float | None = None
        self._buckets: dict[str, AdmissionBucket] = {}

    def set_rate(self, rate: float | None) -> None:
        if rate != self._rate:
            self._rate = rate
            self._buckets.clear()

    def check(self, api: str) -> float | None:
        """None when the request may go on, else the Retry-After in seconds."""
        if self._rate is None:
            return None
        bucket = self._buckets.get(api)
        if bucket is None:
            bucket = self._buckets[api] = AdmissionBucket(self._rate, self._now)
        return bucket.take()


class Fault(enum.Enum):
    NONE = "none"
    INTERNAL_ERROR = "internal_error"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"


class FaultInjector:
    """Draws exactly one number per request, so a fault pattern depends only on the seed
    and the request sequence, not on how the rates were changed along the way."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"{seed}:faults")

    def draw(self, rate_5xx: float, rate_timeout: float) -> Fault:
        roll = self._rng.random()
        if roll < rate_5xx / 2:
            return Fault.INTERNAL_ERROR
        if roll < rate_5xx:
            return Fault.UNAVAILABLE
        if roll < rate_5xx + rate_timeout:
            return Fault.TIMEOUT
        return Fault.NONE
