"""Token buckets that keep outgoing card updates under Teams' rate limits.

Teams throttles a bot per conversation (about 7 messages a second) and per app and tenant
(50 requests a second), and answers 429 beyond that. Waiting here first is cheaper than
being told to wait. The limiter is pure: it reads an injected clock and never sleeps, so
the caller decides how to wait and tests can move time by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = ["ConnectorThrottled", "RateLimiter", "TokenBucket"]

PER_CONVERSATION_PER_S: Final = 7.0
PER_TENANT_PER_S: Final = 50.0
# Buckets of idle conversations are dropped beyond this many, so a long-running bot that
# has seen thousands of chats does not keep a bucket for each forever.
_MAX_IDLE_BUCKETS: Final = 1000


class ConnectorThrottled(Exception):
    """The Bot Connector answered 429; ``retry_after`` is its Retry-After in seconds."""

    def __init__(self, retry_after: float | None) -> None:
        super().__init__(f"throttled by the Bot Connector (Retry-After: {retry_after})")
        self.retry_after = retry_after


@dataclass
class TokenBucket:
    """``rate`` tokens a second, up to ``capacity`` saved up; starts full."""

    rate: float
    capacity: float
    tokens: float
    updated: float
    held_until: float = 0.0
    """A 429's Retry-After: no tokens before then, whatever the bucket holds."""

    @classmethod
    def full(cls, rate: float, now: float, capacity: float | None = None) -> TokenBucket:
        if rate <= 0:
            raise ValueError("rate must be positive")
        size = capacity if capacity is not None else rate
        if size < 1:
            raise ValueError("capacity must allow at least one token")
        return cls(rate=rate, capacity=size, tokens=size, updated=now)

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def wait_time(self, now: float) -> float:
        """Seconds until a token can be taken; 0 means now."""
        self._refill(now)
        held = max(0.0, self.held_until - now)
        missing = max(0.0, 1.0 - self.tokens)
        return max(held, missing / self.rate)

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1.0

    def hold(self, until: float) -> None:
        self.held_until = max(self.held_until, until)

    def is_idle(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.capacity and now >= self.held_until


class RateLimiter:
    """Per-conversation and per-tenant buckets; a send needs a token from both."""

    def __init__(
        self,
        *,
        per_conversation: float = PER_CONVERSATION_PER_S,
        per_tenant: float = PER_TENANT_PER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_conversation <= 0 or per_tenant <= 0:
            raise ValueError("rates must be positive")
        self._per_conversation = per_conversation
        self._per_tenant = per_tenant
        self._clock = clock
        self._conversations: dict[str, TokenBucket] = {}
        self._tenants: dict[str, TokenBucket] = {}

    def _bucket(
        self, buckets: dict[str, TokenBucket], key: str, rate: float, now: float
    ) -> TokenBucket:
        bucket = buckets.get(key)
        if bucket is None:
            if len(buckets) >= _MAX_IDLE_BUCKETS:
                for idle in [k for k, b in buckets.items() if b.is_idle(now)]:
                    del buckets[idle]
            bucket = buckets[key] = TokenBucket.full(rate, now)
        return bucket

    def reserve(self, conversation: str, tenant: str) -> float:
        """Take a slot and return 0, or return the seconds to wait and take nothing."""
        now = self._clock()
        conversation_bucket = self._bucket(
            self._conversations, conversation, self._per_conversation, now
        )
        tenant_bucket = self._bucket(self._tenants, tenant, self._per_tenant, now)
        wait = max(conversation_bucket.wait_time(now), tenant_bucket.wait_time(now))
        if wait > 0:
            return wait
        conversation_bucket.take(now)
        tenant_bucket.take(now)
        return 0.0

    def hold(self, conversation: str, seconds: float) -> None:
        """Send nothing more to the conversation for ``seconds`` (after a 429)."""
        now = self._clock()
        bucket = self._bucket(self._conversations, conversation, self._per_conversation, now)
        bucket.hold(now + max(0.0, seconds))
