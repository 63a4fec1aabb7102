"""PhoneDesk's use cases: the only entry points the bot and the CLI call.

Authorization lives here. Only configured approvers approve or reject, a requester never
approves their own request, and cancel, retry and release are open to the requester and
to approvers. An expected refusal (not allowed, wrong state, a double click) is an
``Outcome`` with ``ok=False`` and a message that says why; nothing changes and the attempt
is audited. An unknown request id raises ``RequestNotFound``.

Every decision is a compare-and-set on the store, so of two concurrent decisions exactly
one wins. The workflow is then woken and does the work; no call here waits for it.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import Iterable
from typing import Final

from pydantic import BaseModel, ConfigDict, JsonValue

from provisioning.domain import (
    OPEN_STATUSES,
    AuditEntry,
    AuditResult,
    Decision,
    NumberRequest,
    Person,
    ProgressUpdate,
    Request,
    RequestStatus,
    derive_upn,
    parse_request_id,
    utc_now,
)
from provisioning.engine.workflow import ProvisioningEngine
from provisioning.microsoft.graph import (
    AssignmentStatus,
    GraphClient,
    number_filter,
)
from provisioning.microsoft.teams_admin import Country, NumberTypeOffer, TeamsAdminClient
from provisioning.persistence.store import RequestNotFound, Store
from provisioning.settings import Settings

__all__ = [
    "InventoryNumber",
    "Outcome",
    "ProvisioningService",
    "RequestNotFound",
]

logger = logging.getLogger(__name__)

SIMULATED_TENANT: Final = "simulated-tenant"
_WAIT_POLL_S: Final = 0.05


class Outcome(BaseModel):
    """What a command did: ``ok=False`` means it was refused and changed nothing."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    message: str
    request: Request | None = None


class InventoryNumber(BaseModel):
    """A service number in the tenant, as the chat's ``numbers`` command shows it."""

    model_config = ConfigDict(frozen=True)

    telephone_number: str
    country: str | None
    city: str | None
    number_type: str | None
    voice_application_capable: bool
    claimed_by: str | None


def _name(person: Person) -> str:
    return person.display_name or person.aad_object_id


class ProvisioningService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        graph: GraphClient,
        teams_admin: TeamsAdminClient,
        engine: ProvisioningEngine,
    ) -> None:
        self._settings = settings
        self._store = store
        self._graph = graph
        self._teams = teams_admin
        self._engine = engine
        self._approvers = frozenset(a.lower() for a in settings.approvers)

    # -- who may do what ------------------------------------------------------------------

    def is_approver(self, person: Person) -> bool:
        return person.aad_object_id.lower() in self._approvers

    def _is_requester(self, person: Person, request: Request) -> bool:
        return person.aad_object_id.lower() == request.requester.aad_object_id.lower()

    # -- commands -------------------------------------------------------------------------

    async def submit(self, requester: Person, spec: NumberRequest) -> Outcome:
        """Store a request pending approval, with its UPN, and start its workflow."""
        domain = self._settings.effective_upn_domain
        try:
            derive_upn(spec.display_name, domain)
        except ValueError as exc:
            return Outcome(ok=False, message=str(exc))
        tenant = self._settings.tenant_id or SIMULATED_TENANT
        created = await asyncio.to_thread(
            lambda: self._store.create_request(tenant_id=tenant, requester=requester, spec=spec)
        )
        # Chosen now, among the UPNs other requests hold, so the one the dialog proposed
        # and the confirmation names is the one stage 2 creates.
        request = await asyncio.to_thread(
            self._store.assign_upn,
            created.id,
            lambda taken: derive_upn(spec.display_name, domain, taken=taken),
        )
        await self._audit(
            request.id,
            requester,
            "request.submitted",
            country=spec.country,
            area_code=spec.area_code,
            display_name=spec.display_name,
            number_type=spec.number_type.value,
            upn=request.result.upn,
        )
        await self._engine.start_provisioning(request.id)
        where = f"area code {spec.area_code}" if spec.area_code else "any area code"
        return Outcome(
            ok=True,
            message=(
                f"{request.id} submitted: a {spec.country} number ({where}) for "
                f"'{spec.display_name}', user name {request.result.upn}. "
                "Waiting for an approver."
            ),
            request=request,
        )

    async def taken_upns(self) -> frozenset[str]:
        """The UPNs (casefolded) requests in flight or completed hold: not to be proposed."""
        return await asyncio.to_thread(self._store.taken_upns)

    async def approve(self, request_id: str, approver: Person) -> Outcome:
        return await self._decide(request_id, approver, approved=True, reason=None)

    async def reject(self, request_id: str, approver: Person, reason: str) -> Outcome:
        return await self._decide(request_id, approver, approved=False, reason=reason)

    async def _decide(
        self, request_id: str, approver: Person, *, approved: bool, reason: str | None
    ) -> Outcome:
        verb = "approve" if approved else "reject"
        request = await self.get(request_id)
        if not self.is_approver(approver):
            return await self._refuse(
                request, approver, verb, f"Only approvers can {verb} requests."
            )
        if self._is_requester(approver, request):
            return await self._refuse(
                request, approver, verb, f"You can't {verb} your own request {request.id}."
            )
        if not approved and not (reason and reason.strip()):
            return await self._refuse(request, approver, verb, "A rejection needs a reason.")
        decision = Decision(
            approved=approved, by=approver, at=utc_now(), reason=reason.strip() if reason else None
        )
        new = RequestStatus.APPROVED if approved else RequestStatus.REJECTED
        updated = await asyncio.to_thread(
            lambda: self._store.transition(
                request.id, RequestStatus.PENDING_APPROVAL, new, decision=decision
            )
        )
        if updated is None:
            current = await self.get(request.id)
            return await self._refuse(current, approver, verb, _already(current))
        await self._audit(updated.id, approver, f"request.{new.value}", reason=decision.reason)
        await self._engine.signal(updated.id, verb)
        if approved:
            message = f"{updated.id} approved by {_name(approver)}; provisioning starts now."
        else:
            message = f"{updated.id} rejected by {_name(approver)}: {decision.reason}"
        return Outcome(ok=True, message=message, request=updated)

    async def cancel(self, request_id: str, actor: Person, reason: str | None = None) -> Outcome:
        """Stop an open request; the workflow then undoes what was done so far."""
        request = await self.get(request_id)
        if not (self._is_requester(actor, request) or self.is_approver(actor)):
            return await self._refuse(
                request, actor, "cancel", "Only the requester or an approver can cancel a request."
            )
        if not request.status.is_open:
            hint = (
                " Use release to give back its number."
                if request.status is RequestStatus.COMPLETED
                else ""
            )
            return await self._refuse(
                request,
                actor,
                "cancel",
                f"{request.id} is {request.status.label.lower()}; nothing to cancel.{hint}",
            )
        updated = await asyncio.to_thread(
            lambda: self._store.transition(request.id, OPEN_STATUSES, RequestStatus.CANCELLED)
        )
        if updated is None:
            current = await self.get(request.id)
            return await self._refuse(current, actor, "cancel", _already(current))
        await self._audit(
            updated.id, actor, "request.cancelled", reason=reason, was=request.status.value
        )
        await self._engine.signal(updated.id, "cancel")
        return Outcome(
            ok=True,
            message=f"{updated.id} cancelled by {_name(actor)}; undoing what was done so far.",
            request=updated,
        )

    async def retry(self, request_id: str, actor: Person) -> Outcome:
        """Run a failed request again from the stage that failed."""
        request = await self.get(request_id)
        if not (self._is_requester(actor, request) or self.is_approver(actor)):
            return await self._refuse(
                request, actor, "retry", "Only the requester or an approver can retry a request."
            )
        if request.status is not RequestStatus.FAILED:
            return await self._refuse(
                request,
                actor,
                "retry",
                f"{request.id} is {request.status.label.lower()}; "
                "only a failed request can be retried.",
            )
        failure = request.failure
        if failure is not None and not failure.retryable:
            return await self._refuse(
                request,
                actor,
                "retry",
                f"Retrying won't help: {failure.reason}",
            )
        updated = await asyncio.to_thread(
            lambda: self._store.transition(
                request.id, RequestStatus.FAILED, RequestStatus.PROVISIONING, failure=None
            )
        )
        if updated is None:
            current = await self.get(request.id)
            return await self._refuse(current, actor, "retry", _already(current))
        stage = failure.stage.label if failure else "the failed stage"
        await self._audit(
            updated.id, actor, "request.retried", stage=failure.stage.value if failure else None
        )
        await self._engine.signal(updated.id, "retry")
        return Outcome(
            ok=True, message=f"{updated.id}: trying again from {stage}.", request=updated
        )

    async def release(self, request_id: str, actor: Person) -> Outcome:
        """Decommission a completed request: unbind, unlicense and delete its account."""
        request = await self.get(request_id)
        if not (self._is_requester(actor, request) or self.is_approver(actor)):
            return await self._refuse(
                request, actor, "release", "Only the requester or an approver can release a number."
            )
        if request.status is not RequestStatus.COMPLETED:
            return await self._refuse(
                request,
                actor,
                "release",
                f"{request.id} is {request.status.label.lower()}; "
                "only a completed request can be released.",
            )
        updated = await asyncio.to_thread(
            lambda: self._store.transition(
                request.id, RequestStatus.COMPLETED, RequestStatus.RELEASED
            )
        )
        if updated is None:
            current = await self.get(request.id)
            return await self._refuse(current, actor, "release", _already(current))
        await self._audit(updated.id, actor, "request.released")
        await self._engine.start_release(updated.id, actor.aad_object_id)
        result = updated.result
        return Outcome(
            ok=True,
            message=(
                f"{updated.id} released: unassigning {result.telephone_number}, removing the "
                f"license and deleting {result.upn}."
            ),
            request=updated,
        )

    # -- queries --------------------------------------------------------------------------

    async def get(self, request_id: str) -> Request:
        """The request; raises ``RequestNotFound`` (or ValueError for a malformed id)."""
        normalized = parse_request_id(request_id)
        request = await asyncio.to_thread(self._store.get_request, normalized)
        if request is None:
            raise RequestNotFound(normalized)
        return request

    async def list(
        self,
        *,
        requester_id: str | None = None,
        status: RequestStatus | Iterable[RequestStatus] | None = None,
        limit: int = 50,
    ) -> builtins.list[Request]:
        """Requests, newest first."""
        statuses = (
            status if isinstance(status, RequestStatus) or status is None else builtins.list(status)
        )
        return await asyncio.to_thread(
            lambda: self._store.list_requests(
                requester_id=requester_id, status=statuses, limit=limit
            )
        )

    async def pending(self, limit: int = 50) -> builtins.list[Request]:
        return await self.list(status=RequestStatus.PENDING_APPROVAL, limit=limit)

    async def audit(self, request_id: str) -> builtins.list[AuditEntry]:
        """The request's audit trail, oldest first."""
        request = await self.get(request_id)
        return await asyncio.to_thread(self._store.list_audit, request.id)

    async def progress(self, request_id: str) -> ProgressUpdate | None:
        """The latest progress the workflow published, read back from DBOS."""
        request = await self.get(request_id)
        return await self._engine.latest_progress(request.id)

    async def numbers(self, country: str | None = None) -> builtins.list[InventoryNumber]:
        """Unassigned service numbers in the tenant, and which request holds each."""
        assignments = await self._graph.list_number_assignments(
            filter=number_filter(
                assignment_status=AssignmentStatus.UNASSIGNED,
                iso_country_code=country.upper() if country else None,
            )
        )
        claims = await asyncio.to_thread(self._store.list_claims)
        return [
            InventoryNumber(
                telephone_number=a.telephone_number,
                country=a.iso_country_code,
                city=a.city,
                number_type=a.number_type,
                voice_application_capable=a.can_serve_voice_applications,
                claimed_by=claims.get(a.telephone_number),
            )
            for a in sorted(assignments, key=lambda a: a.telephone_number)
        ]

    async def countries(self) -> builtins.list[Country]:
        """Countries the tenant can order numbers in."""
        return await self._teams.list_countries()

    async def number_offers(self, country: str) -> builtins.list[NumberTypeOffer]:
        """Number types of a country with their area codes and availability."""
        return await self._teams.list_number_types(country.upper())

    async def wait_for(self, request_id: str, statuses: Iterable[RequestStatus]) -> Request:
        """Poll until the request reaches one of ``statuses`` (bound it with asyncio.timeout)."""
        wanted = frozenset(statuses)
        while True:
            request = await self.get(request_id)
            if request.status in wanted:
                return request
            await asyncio.sleep(_WAIT_POLL_S)

    # -- start-up -------------------------------------------------------------------------

    async def resume_open_requests(self) -> int:
        """Start the workflow of every open request that has none; returns how many looked at.

        Starting is idempotent, so requests whose workflow exists (and is being recovered
        by DBOS) are left alone; this only catches a crash between storing a request and
        starting its workflow.
        """
        open_requests = await asyncio.to_thread(
            lambda: self._store.list_requests(status=OPEN_STATUSES, limit=100_000)
        )
        for request in open_requests:
            await self._engine.start_provisioning(request.id)
        released = await asyncio.to_thread(
            lambda: self._store.list_requests(status=RequestStatus.RELEASED, limit=100_000)
        )
        for request in released:
            entries = await asyncio.to_thread(self._store.list_audit, request.id)
            if any(entry.action == "release.completed" for entry in entries):
                continue
            actor = next(
                (e.actor for e in reversed(entries) if e.action == "request.released"), "phonedesk"
            )
            await self._engine.start_release(request.id, actor)
        return len(open_requests)

    # -- helpers --------------------------------------------------------------------------

    async def _refuse(self, request: Request, actor: Person, verb: str, why: str) -> Outcome:
        await self._audit(request.id, actor, f"request.{verb}", result=AuditResult.REFUSED, why=why)
        logger.info("%s: %s by %s refused: %s", request.id, verb, actor.aad_object_id, why)
        return Outcome(ok=False, message=why, request=request)

    async def _audit(
        self,
        request_id: str,
        actor: Person,
        action: str,
        *,
        result: AuditResult = AuditResult.OK,
        **details: JsonValue,
    ) -> None:
        await asyncio.to_thread(
            lambda: self._store.append_audit(
                actor=actor.aad_object_id,
                action=action,
                request_id=request_id,
                result=result,
                details={"actor_name": actor.display_name, **details},
            )
        )


def _already(request: Request) -> str:
    decision = request.decision
    if decision is None:
        return f"{request.id} is already {request.status.label.lower()}; nothing changed."
    # A replayed click can land after the workflow moved on from "approved": the approver
    # still wants to know who decided, and the status tells them how far it got since.
    verb = "approved" if decision.approved else "rejected"
    since = (
        ""
        if request.status in (RequestStatus.APPROVED, RequestStatus.REJECTED)
        else f" and is now {request.status.label.lower()}"
    )
    return (
        f"{request.id} was already {verb} by {_name(decision.by)} at "
        f"{decision.at:%Y-%m-%d %H:%M} UTC{since}; nothing changed."
    )
