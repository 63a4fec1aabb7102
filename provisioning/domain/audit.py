"""The audit log's vocabulary, and what the stages remember between passes."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from pydantic import (
    Field,
    JsonValue,
)

from provisioning.domain.values import Frozen, UtcDatetime


class AuditResult(StrEnum):
    OK = "ok"
    REFUSED = "refused"
    """The actor was not allowed, or the request was in the wrong state; nothing changed."""
    FAILED = "failed"
    """It was attempted and did not work."""


class AuditAction(StrEnum):
    """Every action the audit log records. The log is a record for people: nothing reads
    these back to decide what to do (the stages keep a ``StageJournal`` for that)."""

    REQUEST_SUBMITTED = "request.submitted"
    REQUEST_APPROVED = "request.approved"
    REQUEST_REJECTED = "request.rejected"
    REQUEST_EXPIRED = "request.expired"
    REQUEST_CANCELLED = "request.cancelled"
    REQUEST_RETRIED = "request.retried"
    REQUEST_RELEASED = "request.released"
    APPROVALS_CHANNEL_REGISTERED = "approvals_channel.registered"
    PROVISIONING_STARTED = "provisioning.started"
    PROVISIONING_COMPLETED = "provisioning.completed"
    PROVISIONING_FAILED = "provisioning.failed"
    CANCELLATION_COMPENSATED = "cancellation.compensated"
    RELEASE_COMPLETED = "release.completed"
    ORDER_REQUESTED = "order.requested"
    ORDER_PLACED = "order.placed"
    ORDER_COMPLETED = "order.completed"
    ORDER_LOST = "order.lost"
    ORDER_FAILED = "order.failed"
    ORDER_CANCELLED = "order.cancelled"
    NUMBER_CLAIMED = "number.claimed"
    NUMBER_RELEASED = "number.released"
    ACCOUNT_CREATE_REQUESTED = "account.create.requested"
    ACCOUNT_CREATE_REFUSED = "account.create.refused"
    ACCOUNT_CREATED = "account.created"
    ACCOUNT_SYNCED = "account.synced"
    ACCOUNT_DELETED = "account.deleted"
    USAGE_LOCATION_SET = "usage_location.set"
    LICENSE_ASSIGNED = "license.assigned"
    LICENSE_UNAVAILABLE = "license.unavailable"
    LICENSE_REMOVED = "license.removed"
    NUMBER_ASSIGN_REQUESTED = "number.assign.requested"
    NUMBER_ASSIGN_FAILED = "number.assign.failed"
    NUMBER_BOUND = "number.bound"
    NUMBER_UNBIND_FAILED = "number.unbind"
    NUMBER_UNBOUND = "number.unbound"


AUDITED_ONCE: Final[Mapping[AuditAction, str]] = MappingProxyType(
    {
        # Effects a pass that crashed may have caused without auditing: the next pass
        # audits them, once per subject (the detail named here).
        AuditAction.ORDER_PLACED: "order",
        AuditAction.ORDER_COMPLETED: "order",
        AuditAction.NUMBER_CLAIMED: "number",
        AuditAction.ACCOUNT_CREATED: "account_id",
        AuditAction.ACCOUNT_SYNCED: "account_id",
        AuditAction.USAGE_LOCATION_SET: "account_id",
        AuditAction.LICENSE_ASSIGNED: "sku",
        AuditAction.NUMBER_BOUND: "number",
    }
)


def once_key(action: AuditAction, details: Mapping[str, JsonValue]) -> str:
    """What makes an ``AUDITED_ONCE`` entry the same effect as an earlier one."""
    return f"{action.value}:{details[AUDITED_ONCE[action]]}"


class StageJournal(Frozen):
    """What the stages remember between passes, beyond the result they produced.

    Written before the call it is about, so a pass after a crash that lost the answer
    still knows what it asked Microsoft for.
    """

    orders_asked: int = 0
    """How many number orders the request has asked for (their names end in 1..n)."""
    account_asked_upn: str | None = None
    """The UPN whose account creation was asked for, until that UPN was refused."""
    synced_account_id: str | None = None
    deleted_account_id: str | None = None
    audited: frozenset[str] = frozenset()
    """``once_key``s of the effects audited so far."""


class AuditEntry(Frozen):
    id: int
    request_id: str | None
    actor: str
    """An Entra object id, or a system actor such as ``workflow``."""
    action: str
    at: UtcDatetime
    result: AuditResult
    details: dict[str, JsonValue] = Field(default_factory=dict)
