"""When and how long to wait before repeating a call to Microsoft 365.

Pure functions, so the policy is tested without a server. ``ApiClient`` is the only caller.
"""

from __future__ import annotations

import logging
import random

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from provisioning.microsoft.errors import CODE_CONCURRENCY_VIOLATION, parse_retry_after

__all__ = [
    "RetryPolicy",
    "is_throttling",
    "parse_retry_after",
    "retry_delay",
    "should_retry",
    "should_retry_transport_error",
]

logger = logging.getLogger(__name__)

_ALWAYS_RETRIED = frozenset({408, 429, 503})
# The service refused to do the work for now: it says when to come back, and nothing was done.
_THROTTLING = frozenset({429, 503})
_RETRIED_WHEN_IDEMPOTENT = frozenset({500, 502, 504})

# The request never reached the server, so repeating it cannot apply anything twice.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# The server may have received and applied the request before the failure.
_MAYBE_APPLIED = (
    httpx.ReadTimeout,
    httpx.WriteTimeout,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
)


class RetryPolicy(BaseModel):
    """How hard ``ApiClient`` retries one call before raising.

    Throttling (429, 503) is retried by time, not by count: under a rate limit shared by
    many callers a call may be turned away many times in a second, and each answer only
    says "come back at this moment". Every other retryable failure counts against
    ``max_attempts``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(
        default=6,
        ge=1,
        description="attempts in total, the first included, not counting throttled ones",
    )
    max_throttle_wait_s: float = Field(
        default=300.0,
        ge=0,
        description="a throttled call is repeated until this long after its first 429/503",
    )
    base_delay: float = Field(default=0.5, ge=0, description="seconds before the first retry")
    max_delay: float = Field(default=30.0, ge=0, description="cap of the exponential backoff")
    jitter: float = Field(default=0.25, ge=0, le=1, description="fraction of random spread")
    max_retry_after: float = Field(
        default=120.0,
        ge=0,
        description="a longer Retry-After is not waited for: the error goes to the caller",
    )

    @model_validator(mode="after")
    def _cap_not_below_base(self) -> RetryPolicy:
        if self.max_delay < self.base_delay:
            raise ValueError(
                f"max_delay ({self.max_delay}) must not be below base_delay ({self.base_delay})"
            )
        return self


def is_throttling(status: int) -> bool:
    """Whether ``status`` is the service turning a call away for now (429, 503)."""
    return status in _THROTTLING


def should_retry(status: int, code: str | None, *, idempotent: bool) -> bool:
    """Whether a call that got ``status``/``code`` may be sent again.

    429, 503 and 408 mean the request was not processed. A 500/502/504 may have been
    applied, so only idempotent calls repeat. Of the 409s only a concurrency violation is
    transient; an object conflict needs a human.
    """
    if status in _ALWAYS_RETRIED:
        logger.debug("retrying: HTTP %s is always retried", status)
        return True
    if status in _RETRIED_WHEN_IDEMPOTENT:
        logger.debug(
            "%s: HTTP %s is retried only for idempotent calls",
            "retrying" if idempotent else "not retrying",
            status,
        )
        return idempotent
    if status == 409 and code == CODE_CONCURRENCY_VIOLATION:
        logger.debug("retrying: HTTP 409 %s is transient", code)
        return True
    logger.debug("not retrying: HTTP %s %s is final", status, code)
    return False


def should_retry_transport_error(error: httpx.RequestError, *, idempotent: bool) -> bool:
    """Whether a call that got no response may be sent again.

    A failed connect is always safe. A read timeout or broken connection after sending
    is retried only for idempotent calls: a POST that creates something may already have
    been applied, and the workflow's lookup-before-create is what settles that.
    """
    if isinstance(error, _NOT_SENT):
        logger.debug("retrying: %s happened before the request was sent", type(error).__name__)
        return True
    if isinstance(error, _MAYBE_APPLIED):
        logger.debug(
            "%s: after %s the request may have been applied",
            "retrying" if idempotent else "not retrying",
            type(error).__name__,
        )
        return idempotent
    logger.debug("not retrying: %s is not transient", type(error).__name__)
    return False


def retry_delay(
    attempt: int, retry_after: float | None, policy: RetryPolicy, rng: random.Random
) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1 for the first attempt).

    With a Retry-After the wait is that long plus up to ``jitter`` of it, never less:
    the service told us when it will accept the call. Without one, exponential backoff
    from ``base_delay``, capped at ``max_delay``, reduced by up to ``jitter`` so that
    clients throttled together do not come back together.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if retry_after is not None:
        return retry_after * (1 + policy.jitter * rng.random())
    # The exponent is bounded so that a huge attempt number cannot overflow the float.
    backoff = min(policy.max_delay, policy.base_delay * 2.0 ** min(attempt - 1, 64))
    return backoff * (1 - policy.jitter * rng.random())
