"""Where a request is: its statuses, the transitions between them, and the four stages."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType


class RequestStatus(StrEnum):
    """Where a submitted request is. Drafts are not here: they live in dialog state."""

    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    PROVISIONING = "provisioning"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    RELEASED = "released"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()

    @property
    def is_terminal(self) -> bool:
        """Nothing can happen to the request any more."""
        return self in TERMINAL_STATUSES

    @property
    def is_open(self) -> bool:
        """The request is still in flight: it holds work or reservations and can be cancelled.

        A completed request is neither open nor terminal: it owns a live number that can
        later be released.
        """
        return self in OPEN_STATUSES


_S = RequestStatus

ALLOWED_TRANSITIONS: Mapping[RequestStatus, frozenset[RequestStatus]] = MappingProxyType(
    {
        _S.PENDING_APPROVAL: frozenset({_S.APPROVED, _S.REJECTED, _S.EXPIRED, _S.CANCELLED}),
        _S.APPROVED: frozenset({_S.PROVISIONING, _S.CANCELLED}),
        _S.PROVISIONING: frozenset({_S.COMPLETED, _S.FAILED, _S.CANCELLED}),
        _S.FAILED: frozenset({_S.PROVISIONING, _S.CANCELLED}),
        _S.COMPLETED: frozenset({_S.RELEASED}),
        _S.REJECTED: frozenset(),
        _S.EXPIRED: frozenset(),
        _S.CANCELLED: frozenset(),
        _S.RELEASED: frozenset(),
    }
)

TERMINAL_STATUSES: frozenset[RequestStatus] = frozenset(
    status for status, targets in ALLOWED_TRANSITIONS.items() if not targets
)
OPEN_STATUSES: frozenset[RequestStatus] = frozenset(
    status for status, targets in ALLOWED_TRANSITIONS.items() if _S.CANCELLED in targets
)


def can_transition(current: RequestStatus, new: RequestStatus) -> bool:
    return new in ALLOWED_TRANSITIONS[current]


class Stage(StrEnum):
    """The four provisioning stages, declared in the order they run."""

    ACQUIRE_NUMBER = "acquire_number"
    CREATE_ACCOUNT = "create_account"
    ASSIGN_LICENSE = "assign_license"
    BIND_NUMBER = "bind_number"

    @property
    def label(self) -> str:
        return _STAGE_LABELS[self]

    @property
    def number(self) -> int:
        """1-based position, as shown to people ("stage 2 of 4")."""
        return list(Stage).index(self) + 1


_STAGE_LABELS: Mapping[Stage, str] = {
    Stage.ACQUIRE_NUMBER: "Acquire number",
    Stage.CREATE_ACCOUNT: "Create resource account",
    Stage.ASSIGN_LICENSE: "Assign license",
    Stage.BIND_NUMBER: "Bind number",
}


class StageStatus(StrEnum):
    """State of one stage.

    ``cancelled`` marks stages that will not run because the request was cancelled, so a
    card can tell them apart from stages still waiting. There is no ``skipped``: a stage
    with nothing to do (a free number already in inventory, a license already assigned)
    still ends ``done``, with the reason in its detail.
    """

    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return self.value.capitalize()
