"""The one card per request, updated in place through the request's life.

The same function renders every state, from waiting for approval to released, and every
view of it: Teams shows each user in ``refresh.userIds`` the view the bot returns for
them on refresh, and everyone else the card as posted (the observer view).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from bot.cards.common import execute_action, facts, new_card, refresh, text_block
from bot.cards.constants import (
    REASON_INPUT_ID,
    VERB_APPROVE,
    VERB_CANCEL,
    VERB_REJECT,
    VERB_RETRY,
    CardView,
)
from bot.cards.template import render
from bot.cards.text import card_text, clock, duration
from dialogs.slots import NUMBER_TYPE_LABELS
from provisioning.domain import (
    Request,
    RequestStatus,
    Stage,
    StageState,
    StageStatus,
)

__all__ = ["MAX_REASON_LENGTH", "request_card"]

MAX_REASON_LENGTH: Final = 500
"""Longest rejection reason the card's input accepts."""

ACCOUNT_CREATION_NOTE: Final = (
    "Waiting for Microsoft 365 to finish creating the account (usually 15\N{EN DASH}20 min)."
)

# Bounds on text that is not ours, so a chatty error or a long reason cannot bloat the card.
_NAME_LIMIT: Final = 100
_REASON_LIMIT: Final = 1000
_DETAIL_LIMIT: Final = 400

_GLYPHS: Final[Mapping[StageStatus, str]] = {
    StageStatus.WAITING: "\N{MEDIUM WHITE CIRCLE}",
    StageStatus.RUNNING: "\N{HOURGLASS WITH FLOWING SAND}",
    StageStatus.DONE: "\N{WHITE HEAVY CHECK MARK}",
    StageStatus.FAILED: "\N{CROSS MARK}",
    StageStatus.CANCELLED: "\N{NO ENTRY}",
}
_STAGE_COLORS: Final[Mapping[StageStatus, str]] = {
    StageStatus.WAITING: "Default",
    StageStatus.RUNNING: "Accent",
    StageStatus.DONE: "Good",
    StageStatus.FAILED: "Attention",
    StageStatus.CANCELLED: "Default",
}
_STATUS_COLORS: Final[Mapping[RequestStatus, str]] = {
    RequestStatus.PENDING_APPROVAL: "Warning",
    RequestStatus.APPROVED: "Accent",
    RequestStatus.PROVISIONING: "Accent",
    RequestStatus.COMPLETED: "Good",
    RequestStatus.FAILED: "Attention",
    RequestStatus.REJECTED: "Attention",
    RequestStatus.EXPIRED: "Warning",
    RequestStatus.CANCELLED: "Default",
    RequestStatus.RELEASED: "Default",
}


def request_card(
    request: Request, *, view: CardView, refresh_user_ids: Sequence[str], now: datetime
) -> dict[str, Any]:
    """The request's card as ``view`` sees it at ``now``; buttons only where they can work."""
    body: list[dict[str, Any]] = [
        render(
            "request",
            "header",
            title=f"Phone number request {card_text(request.id)}",
            status=_status_line(request),
            color=_STATUS_COLORS[request.status],
        ),
        facts(_request_facts(request, now)),
        *_decision(request, now),
        render("request", "stages_heading"),
        *(_stage_row(request, state, now) for state in request.stages),
        *_failure(request, view),
    ]
    return new_card(
        body=body,
        actions=_actions(request, view),
        refresh_action=refresh(request.id, refresh_user_ids),
        fallback_text=f"PhoneDesk request {request.id}: {_plain_status(request)}",
    )


# --- what is shown ------------------------------------------------------------------------


def _person(name: str) -> str:
    return card_text(name, limit=_NAME_LIMIT) if name.strip() else "someone"


def _request_facts(request: Request, now: datetime) -> list[tuple[str, str]]:
    return [
        ("Requested by", _person(request.requester.display_name)),
        ("Submitted", clock(request.created_at, now)),
        ("Display name", card_text(request.display_name)),
        ("Country", card_text(request.country)),
        ("Area code", card_text(request.area_code) if request.area_code else "any"),
        ("Number type", NUMBER_TYPE_LABELS[request.number_type]),
        ("Account type", request.account_type.label),
    ]


def _current_stage(request: Request) -> StageState:
    for state in request.stages:
        if state.status is StageStatus.RUNNING:
            return state
    for state in request.stages:
        if state.status is not StageStatus.DONE:
            return state
    return request.stages[-1]


def _stage_ref(stage: Stage) -> str:
    return f"stage {stage.number} of {len(Stage)}, {stage.label.lower()}"


def _plain_status(request: Request) -> str:
    """The status in words, without markdown; also the card's fallback text."""
    status = request.status
    if status is RequestStatus.PENDING_APPROVAL:
        return "waiting for approval"
    if status is RequestStatus.APPROVED:
        return "approved, starting"
    if status is RequestStatus.PROVISIONING:
        return f"provisioning: {_stage_ref(_current_stage(request).stage)}"
    if status is RequestStatus.COMPLETED:
        number = request.result.telephone_number
        return f"completed: {number} is ready" if number else "completed"
    if status is RequestStatus.FAILED:
        stage = request.failure.stage if request.failure else _current_stage(request).stage
        return f"failed at {_stage_ref(stage)}"
    if status is RequestStatus.EXPIRED:
        return "expired: nobody approved it in time"
    return status.label.lower()


def _status_line(request: Request) -> str:
    words = _plain_status(request)
    return card_text(words[0].upper() + words[1:])


def _decision(request: Request, now: datetime) -> list[dict[str, Any]]:
    decision = request.decision
    if decision is None:
        return []
    who = _person(decision.by.display_name)
    verb = "Approved" if decision.approved else "Rejected"
    blocks = [
        text_block(
            f"{verb} by {who} at {clock(decision.at, now)}.",
            color="Good" if decision.approved else "Attention",
            spacing="Medium",
        )
    ]
    if decision.reason and decision.reason.strip():
        reason = card_text(decision.reason, limit=_REASON_LIMIT)
        blocks.append(text_block(f"Reason: {reason}", spacing="None"))
    return blocks


def _stage_time(state: StageState, now: datetime) -> str | None:
    started, finished = state.started_at, state.finished_at
    if state.status is StageStatus.RUNNING and started is not None:
        return f"Started {clock(started, now)}, running for {duration(started, now)}"
    if state.status is StageStatus.WAITING or finished is None:
        return None
    verb = {
        StageStatus.DONE: "Finished",
        StageStatus.FAILED: "Failed",
        StageStatus.CANCELLED: "Cancelled",
    }.get(state.status, "Finished")
    took = f" (took {duration(started, finished)})" if started is not None else ""
    return f"{verb} {clock(finished, now)}{took}"


def _stage_result(request: Request, stage: Stage) -> tuple[str, str] | None:
    """What the stage produced, as (label, raw value)."""
    result = request.result
    if stage is Stage.ACQUIRE_NUMBER and result.telephone_number:
        return "Number", result.telephone_number
    if stage is Stage.CREATE_ACCOUNT and result.upn:
        return "Account", result.upn
    if stage is Stage.ASSIGN_LICENSE and result.sku_part_number:
        return "License", result.sku_part_number
    if (
        stage is Stage.BIND_NUMBER
        and request.stage(stage).status is StageStatus.DONE
        and result.telephone_number
        and result.upn
    ):
        return "Bound", f"{result.telephone_number} \N{RIGHTWARDS ARROW} {result.upn}"
    return None


def _result_lines(request: Request, state: StageState) -> list[dict[str, Any]]:
    detail = state.detail
    produced = (
        None if state.status is StageStatus.CANCELLED else _stage_result(request, state.stage)
    )
    if produced is None:
        if not detail:
            return []
        return [text_block(card_text(detail, limit=_DETAIL_LIMIT), subtle=True, spacing="None")]
    label, value = produced
    # The stage's detail usually restates the result with how it was obtained
    # ("+1425… from the tenant's inventory"): then one line says both.
    if detail and value in detail:
        return [text_block(f"{label}: {card_text(detail, limit=_DETAIL_LIMIT)}", spacing="None")]
    lines = [text_block(f"{label}: {card_text(value)}", spacing="None")]
    if detail:
        detail_text = card_text(detail, limit=_DETAIL_LIMIT)
        lines.append(text_block(detail_text, subtle=True, size="Small", spacing="None"))
    return lines


def _stage_row(request: Request, state: StageState, now: datetime) -> dict[str, Any]:
    lines = [text_block(state.stage.label, weight="Bolder")]
    when = _stage_time(state, now)
    if when is not None:
        lines.append(text_block(when, subtle=True, size="Small", spacing="None"))
    lines += _result_lines(request, state)
    if state.stage is Stage.CREATE_ACCOUNT and state.status is StageStatus.RUNNING:
        lines.append(text_block(ACCOUNT_CREATION_NOTE, color="Accent", spacing="None"))
    failure = request.failure if request.status is RequestStatus.FAILED else None
    repeated = (
        failure is not None and failure.stage is state.stage and failure.reason == state.error
    )
    if state.error and not repeated:
        # A failure's reason is shown once, in the failure box below with what to do next.
        error = card_text(state.error, limit=_DETAIL_LIMIT)
        lines.append(text_block(error, color="Attention", spacing="None"))
    return render(
        "request",
        "stage",
        glyph=_GLYPHS[state.status],
        color=_STAGE_COLORS[state.status],
        lines=lines,
        state=state.status.label,
    )


def _can_retry(request: Request) -> bool:
    return request.failure is None or request.failure.retryable


def _failure(request: Request, view: CardView) -> list[dict[str, Any]]:
    if request.status is not RequestStatus.FAILED:
        return []
    failure = request.failure
    stage = failure.stage if failure else _current_stage(request).stage
    reason = failure.reason if failure else "No reason was recorded."
    hint: dict[str, Any] | None = None
    if view is not CardView.OBSERVER:
        hint = text_block(
            "Retry runs it again from this stage; Cancel gives up and undoes what was done."
            if _can_retry(request)
            else "Retrying won't help. Cancel gives up and undoes what was done.",
            subtle=True,
            size="Small",
        )
    return [
        render(
            "request",
            "failure",
            headline=f"Failed at {_stage_ref(stage)}",
            reason=card_text(reason, limit=_REASON_LIMIT),
            hint=hint,
        )
    ]


# --- what can be done ---------------------------------------------------------------------


def _actions(request: Request, view: CardView) -> list[dict[str, Any]]:
    if view is CardView.OBSERVER:
        return []
    data = {"requestId": request.id}
    cancel = execute_action("Cancel request", VERB_CANCEL, data, style="destructive")
    status = request.status
    if status is RequestStatus.PENDING_APPROVAL:
        if view is CardView.APPROVER:
            return [execute_action("Approve", VERB_APPROVE, data, style="positive"), _reject(data)]
        return [cancel]
    if status in (RequestStatus.APPROVED, RequestStatus.PROVISIONING):
        return [cancel]
    if status is RequestStatus.FAILED:
        retry = execute_action("Retry", VERB_RETRY, data, style="positive")
        return [retry, cancel] if _can_retry(request) else [cancel]
    return []


def _reject(data: Mapping[str, str]) -> dict[str, Any]:
    submit = execute_action("Reject request", VERB_REJECT, data, style="destructive")
    return render(
        "request",
        "reject",
        input_id=REASON_INPUT_ID,
        max_length=MAX_REASON_LENGTH,
        submit=submit,
    )
