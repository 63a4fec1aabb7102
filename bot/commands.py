"""Running the chat commands the dialog hands back: status, mine, pending, cancel and so on.

Each command becomes a call on the service and an ``Answer`` to show. The service decides
who may do what; an expected refusal comes back as its message, an unknown id as "No
request PD-XXXX.", and nothing here lets an exception reach the user.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from pydantic import JsonValue

from bot.approvals_channel import ApprovalsChannel, save_approvals_channel
from bot.notifier import CardNotifier
from dialogs import CommandName, ParsedCommand, escape_markdown
from provisioning.domain import (
    AuditEntry,
    AuditResult,
    Person,
    Request,
    RequestStatus,
    utc_now,
)
from provisioning.errors import ProvisioningError
from provisioning.persistence.store import Store
from provisioning.service import Outcome, ProvisioningService, RequestNotFound

__all__ = ["Answer", "Caller", "CommandRunner"]

log = logging.getLogger(__name__)

_LISTED: Final = 10
_NUMBERS_LISTED: Final = 25
_AUDIT_LISTED: Final = 30
_MICROSOFT_UNREACHABLE: Final = (
    "I couldn't reach Microsoft 365 just now. Please try again in a minute."
)


@dataclass(frozen=True)
class Caller:
    """Who sent the command, and from where."""

    person: Person
    is_approver: bool
    conversation_key: str
    channel_id: str | None
    """Set when the command came from a Teams channel."""
    tenant_id: str | None
    reference: Mapping[str, JsonValue]


@dataclass(frozen=True)
class Answer:
    text: str
    suggestions: tuple[str, ...] = ()
    request: Request | None = None
    """Shown as the request's card under the text, and kept up to date."""


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _summary(request: Request) -> str:
    area = request.area_code or "any area code"
    line = (
        f"- `{request.id}` {escape_markdown(request.display_name)}: {request.country} {area}, "
        f"**{request.status.label.lower()}**"
    )
    if request.result.telephone_number and request.status is RequestStatus.COMPLETED:
        line += f", {request.result.telephone_number}"
    return line


def _audit_line(entry: AuditEntry) -> str:
    actor = entry.details.get("actor_name") or entry.actor
    line = f"- {entry.at:%Y-%m-%d %H:%M:%S} · `{entry.action}` by {escape_markdown(str(actor))}"
    if entry.result is AuditResult.REFUSED:
        line += f" (refused: {escape_markdown(str(entry.details.get('why', '')))})"
    elif entry.result is AuditResult.FAILED:
        line += " (failed)"
    return line


class CommandRunner:
    def __init__(
        self,
        service: ProvisioningService,
        store: Store,
        notifier: CardNotifier,
        *,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._service = service
        self._store = store
        self._notifier = notifier
        self._now = now

    async def run(self, command: ParsedCommand, caller: Caller) -> Answer:
        try:
            return await self._run(command, caller)
        except RequestNotFound as exc:
            return Answer(f"No request {exc.request_id}.", ("mine",))
        except ValueError as exc:
            return Answer(escape_markdown(str(exc)), ("mine",))

    async def _run(self, command: ParsedCommand, caller: Caller) -> Answer:
        name, request_id = command.name, command.request_id
        if name is CommandName.STATUS:
            return await self._status(request_id, caller)
        if name is CommandName.MINE:
            return await self._mine(caller)
        if name is CommandName.PENDING:
            return await self._pending(caller)
        if name is CommandName.NUMBERS:
            return await self._numbers()
        if name is CommandName.APPROVALS_HERE:
            return await self._approvals_here(caller)
        if request_id is None:
            return Answer(f"`{name.value}` needs a request id, e.g. `{name.value} PD-7K3Q`.")
        if name is CommandName.CANCEL:
            return self._decided(await self._service.cancel(request_id, caller.person))
        if name is CommandName.RETRY:
            return self._decided(await self._service.retry(request_id, caller.person))
        if name is CommandName.RELEASE:
            return self._decided(await self._service.release(request_id, caller.person))
        if name is CommandName.AUDIT:
            return await self._audit(request_id)
        log.warning("no handler for command %s", name)
        return Answer("Sorry, I can't do that yet. Type `help` to see what I can do.", ("help",))

    def _decided(self, outcome: Outcome) -> Answer:
        if outcome.ok and outcome.request is not None:
            self._notifier.publish(outcome.request)
        return Answer(escape_markdown(outcome.message))

    async def _status(self, request_id: str | None, caller: Caller) -> Answer:
        if request_id is not None:
            request = await self._service.get(request_id)
        else:
            latest = await self._service.list(requester_id=caller.person.aad_object_id, limit=1)
            if not latest:
                return Answer(
                    "You have no requests yet. Type `request` to ask for a number.", ("request",)
                )
            request = latest[0]
        return Answer(f"**{request.id}** is {request.status.label.lower()}.", request=request)

    async def _mine(self, caller: Caller) -> Answer:
        requests = await self._service.list(
            requester_id=caller.person.aad_object_id, limit=_LISTED + 1
        )
        if not requests:
            return Answer(
                "You have no requests yet. Type `request` to ask for a number.", ("request",)
            )
        lines = ["Your requests, newest first:", *(_summary(r) for r in requests[:_LISTED])]
        if len(requests) > _LISTED:
            lines.append(f"Only the latest {_LISTED} are shown.")
        return Answer("\n".join(lines), (f"status {requests[0].id}",))

    async def _pending(self, caller: Caller) -> Answer:
        if not caller.is_approver:
            return Answer("`pending` is only for approvers. Type `help` to see what you can do.")
        requests = await self._service.pending(limit=_LISTED + 1)
        if not requests:
            return Answer("Nothing is waiting for approval.")
        lines = ["Waiting for approval, newest first:"]
        for request in requests[:_LISTED]:
            requester = escape_markdown(
                request.requester.display_name or request.requester.aad_object_id
            )
            lines.append(f"{_summary(request)}, from {requester} since {_when(request.created_at)}")
        if len(requests) > _LISTED:
            lines.append(f"Only the latest {_LISTED} are shown.")
        return Answer("\n".join(lines), tuple(f"status {r.id}" for r in requests[:3]))

    async def _numbers(self) -> Answer:
        try:
            numbers = await self._service.numbers()
        except ProvisioningError:
            log.exception("listing the tenant's numbers failed")
            return Answer(_MICROSOFT_UNREACHABLE)
        if not numbers:
            return Answer(
                "The tenant has no unassigned service numbers right now; a new request orders one."
            )
        lines = ["Unassigned service numbers in the tenant:"]
        for number in numbers[:_NUMBERS_LISTED]:
            where = ", ".join(
                escape_markdown(part) for part in (number.country, number.city) if part
            )
            held = f"held by `{number.claimed_by}`" if number.claimed_by else "free"
            lines.append(f"- {number.telephone_number} ({where or 'unknown place'}): {held}")
        if len(numbers) > _NUMBERS_LISTED:
            lines.append(f"…and {len(numbers) - _NUMBERS_LISTED} more.")
        return Answer("\n".join(lines))

    async def _audit(self, request_id: str) -> Answer:
        entries = await self._service.audit(request_id)
        request_key = entries[0].request_id if entries else request_id
        if not entries:
            return Answer(f"Nothing is recorded for {request_key} yet.")
        shown = entries[-_AUDIT_LISTED:]
        lines = [f"What happened to {request_key} (UTC):", *(_audit_line(e) for e in shown)]
        if len(entries) > len(shown):
            lines.insert(1, f"(the latest {len(shown)} of {len(entries)} entries)")
        return Answer("\n".join(lines))

    async def _approvals_here(self, caller: Caller) -> Answer:
        if not caller.is_approver:
            return Answer("Only approvers can choose the approvers' channel.")
        if caller.channel_id is None:
            return Answer(
                "`approvals here` works in a Teams channel: @mention me there with "
                "`approvals here` to have new requests posted in it."
            )
        reference = dict(caller.reference)
        conversation = reference.get("conversation")
        if isinstance(conversation, dict):
            reference["conversation"] = {**conversation, "id": caller.channel_id}
        channel = ApprovalsChannel(
            channel_id=caller.channel_id,
            tenant_id=caller.tenant_id,
            reference=reference,
            registered_by=caller.person.aad_object_id,
        )
        await save_approvals_channel(self._store, channel)
        await asyncio.to_thread(
            lambda: self._store.append_audit(
                actor=caller.person.aad_object_id,
                action="approvals_channel.registered",
                details={
                    "actor_name": caller.person.display_name,
                    "channel_id": caller.channel_id,
                },
            )
        )
        return Answer(
            "This channel is now the approvers' channel: new requests will be posted here "
            "for approval."
        )
