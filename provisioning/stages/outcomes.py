"""How a stage ends, and how its errors read to the person who must act on them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from provisioning.domain import Failure
from provisioning.microsoft.errors import (
    CODE_ACCOUNT_NOT_READY,
    CODE_CONCURRENCY_VIOLATION,
    ApiConnectionError,
    ApiStatusError,
    Conflict,
    Forbidden,
    NotFound,
    ServerError,
    Throttled,
    Unauthorized,
)

__all__ = [
    "DeadlinePassed",
    "NeedsHuman",
    "NotYet",
    "StageCancelled",
    "StageOutcome",
    "UndoOutcome",
    "describe",
    "duration",
    "is_transient",
    "refusal_message",
    "require",
]


class StageOutcome(BaseModel):
    """How one run of a stage ended; JSON-safe, because DBOS records it."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["done", "failed", "cancelled"]
    detail: str | None = None
    failure: Failure | None = None


class UndoOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    undone: list[str]
    problem: str | None = None


class NeedsHuman(Exception):
    """A condition only a person can fix; ``reason`` tells them what to do."""

    def __init__(self, reason: str, *, code: str | None = None, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.retryable = retryable


class StageCancelled(Exception):
    """The request was cancelled while the stage was waiting."""


class DeadlinePassed(Exception):
    def __init__(self, last_problem: str) -> None:
        super().__init__(last_problem)
        self.last_problem = last_problem


class NotYet(Exception):
    """A condition in the tenant that time resolves (e.g. a setting not applied yet)."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, Throttled | ServerError | ApiConnectionError | NotFound | NotYet):
        return True
    if isinstance(exc, Conflict):
        return exc.code == CODE_CONCURRENCY_VIOLATION
    if isinstance(exc, ApiStatusError):
        return exc.status in (408, 502, 503, 504) or exc.code == CODE_ACCOUNT_NOT_READY
    return False


def describe(exc: BaseException) -> str:
    if isinstance(exc, ApiStatusError):
        return f"HTTP {exc.status} {exc.code or ''}".rstrip() + f": {exc.message}"
    return str(exc) or type(exc).__name__


def duration(seconds: float) -> str:
    if seconds >= 90 * 60:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 90:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.1f} seconds"


def require(value: str | None, what: str) -> str:
    if value is None:
        raise NeedsHuman(
            f"PhoneDesk has no {what} recorded for this request; an earlier stage did not "
            "finish. Retry, or cancel."
        )
    return value


def refusal_message(label: str, exc: ApiStatusError) -> str:
    message = (
        f"Microsoft 365 refused a call in {label}: HTTP {exc.status} {exc.code or ''}".rstrip()
    )
    message += f": {exc.message}"
    if isinstance(exc, Unauthorized | Forbidden):
        message += (
            " Check that PhoneDesk's app registration has the needed API permissions with "
            "admin consent, then Retry."
        )
    else:
        message += " Fix the cause, then Retry, or cancel."
    return message
