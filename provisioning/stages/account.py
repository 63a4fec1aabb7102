"""Stage 2: the resource account, found by its UPN or created, then associated and synced.

Creation starts the tenant's 15-20 minute propagation, the long pole of a request, so
stage 1 starts it early (``start_early``); this stage then only waits for it.
"""

from __future__ import annotations

import logging

from provisioning.domain import (
    AuditAction,
    AuditResult,
    Request,
    derive_upn,
    upn_alternatives,
)
from provisioning.microsoft.errors import (
    CODE_ACCOUNT_NOT_READY,
    CODE_OBJECT_CONFLICT,
    BadRequest,
    Conflict,
    MicrosoftApiError,
    NotFound,
)
from provisioning.microsoft.teams_admin import ApplicationInstance
from provisioning.stages.context import StageContext, calls_ordered
from provisioning.stages.outcomes import NeedsHuman
from provisioning.stages.tools import StageTools

__all__ = ["Accounts"]

logger = logging.getLogger(__name__)


class Accounts:
    def __init__(self, tools: StageTools) -> None:
        self._tools = tools
        self._journal = tools.journal
        self._teams = tools.teams

    def application_id(self, request: Request) -> str:
        return request.account_type.application_id(
            self._tools.settings.effective_resource_account_app_id
        )

    async def create_account(self, ctx: StageContext) -> str:
        """The stage: returns the account's UPN."""
        request = await self._journal.request(ctx.request_id)
        app_id = self.application_id(request)
        upn = request.result.upn or await self.choose_upn(request)
        account_id = request.result.account_id
        if account_id is None:
            upn, account_id = await self.find_or_create(ctx, request, upn, app_id)
        else:
            # A crash may have come between recording the new account and auditing it.
            await self._journal.audit_once(
                request.id, AuditAction.ACCOUNT_CREATED, upn=upn, account_id=account_id
            )
        await self.wait_ready(ctx, account_id, upn, app_id)
        # Sync as soon as the account is associated, so that Teams picks it up while the
        # license is assigned, instead of making stage 4 wait for it.
        await self._teams.sync_application_instance(account_id)
        await self.synced(request.id, account_id)
        return upn

    async def synced(self, request_id: str, account_id: str) -> None:
        await self._journal.remember(request_id, synced_account_id=account_id)
        await self._journal.audit_once(
            request_id, AuditAction.ACCOUNT_SYNCED, account_id=account_id
        )

    async def start_early(self, ctx: StageContext, request: Request) -> None:
        """Create the resource account now, before the number is looked for.

        Started here, propagation runs while the number is claimed or searched for,
        instead of after. It also comes before any number order, whose reservation lapses
        on its own clock, so nothing stands between placing an order and following it.
        This is the stage's own find or create, as a head start that never fails the number
        stage: whatever goes wrong is met again in stage 2, which then says what to do.
        """
        if request.result.account_id is not None:
            return
        upn = request.result.upn
        if upn is not None and await self.asked_to_create(request.id, upn):
            return  # Asked before, its answer lost: stage 2 finds it by name.
        try:
            upn = upn or await self.choose_upn(request)
            await self.find_or_create(ctx, request, upn, self.application_id(request))
        except (NeedsHuman, MicrosoftApiError) as exc:
            logger.info("%s: no early account (stage 2 will see to it): %s", request.id, exc)

    async def choose_upn(self, request: Request, also_taken: frozenset[str] = frozenset()) -> str:
        """A UPN for the request's account that no other request holds (as at submission)."""
        domain = self._tools.settings.effective_upn_domain
        try:
            chosen = await self._journal.assign_upn(
                request.id,
                lambda taken: derive_upn(request.display_name, domain, taken=taken | also_taken),
            )
        except ValueError as exc:
            raise NeedsHuman(
                f"Cannot make a user name from '{request.display_name}': {exc}. "
                "Cancel and request again with another display name.",
                retryable=False,
            ) from exc
        return _require_upn(chosen.result.upn)

    async def asked_to_create(self, request_id: str, upn: str) -> bool:
        """Whether our latest word on ``upn`` is a create request rather than a refusal.

        The request is written before the POST, so an account found after a crash that
        lost the answer is still known to be ours.
        """
        return (await self._journal.memory(request_id)).account_asked_upn == upn

    async def is_ours(
        self, request: Request, upn: str, instance: ApplicationInstance, app_id: str
    ) -> bool:
        if (instance.application_id or "").lower() != app_id.lower():
            return False
        if request.result.account_id == instance.object_id:
            return True
        return await self.asked_to_create(request.id, upn)

    async def find_or_create(
        self, ctx: StageContext, request: Request, upn: str, app_id: str
    ) -> tuple[str, str]:
        """The request's account under ``upn`` (or the next free UPN): (upn, object id)."""
        invisible = False
        while True:
            asked_before = await self.asked_to_create(request.id, upn)
            # Only an account we asked for before can already be ours; any other account
            # under this name shows up as a conflict when we create ours.
            if asked_before or invisible:
                instance = await self._teams.find_application_instance(upn)
                if instance is not None:
                    if await self.is_ours(request, upn, instance, app_id):
                        await self._recorded(request.id, upn, instance.object_id, created=False)
                        return upn, instance.object_id
                    upn = await self._another_upn_or_fail(request, upn)
                    invisible = False
                    continue
            if invisible:
                await ctx.pause(f"{upn} exists but is not visible yet (directory replication)")
                continue
            try:
                created = await self._create(ctx, request, upn, app_id, asked_before=asked_before)
            except Conflict as exc:
                if exc.code != CODE_OBJECT_CONFLICT:
                    raise
                if asked_before:
                    # Most likely our own earlier attempt, whose answer was lost.
                    invisible = True
                else:
                    upn = await self._another_upn_or_fail(request, upn)
                continue
            await self._recorded(request.id, upn, created.object_id, created=True)
            return upn, created.object_id

    async def _create(
        self, ctx: StageContext, request: Request, upn: str, app_id: str, *, asked_before: bool
    ) -> ApplicationInstance:
        if not asked_before:
            await self._journal.remember(request.id, account_asked_upn=upn)
            await self._journal.audit(
                request.id, AuditAction.ACCOUNT_CREATE_REQUESTED, upn=upn, application_id=app_id
            )
        with calls_ordered(ctx, long_pole=True):
            return await self._teams.create_application_instance(
                upn=upn, display_name=request.display_name, application_id=app_id
            )

    async def _recorded(self, request_id: str, upn: str, account_id: str, *, created: bool) -> None:
        if created:
            self._tools.timings.remember(self._tools.timings.created, account_id)
        await self._journal.save_result(request_id, upn=upn, account_id=account_id)
        audit = self._journal.audit if created else self._journal.audit_once
        await audit(request_id, AuditAction.ACCOUNT_CREATED, upn=upn, account_id=account_id)

    async def _another_upn_or_fail(self, request: Request, upn: str) -> str:
        if await self._held_by_other_request(request.id, upn):
            return await self.choose_upn(request, also_taken=frozenset({upn}))
        memory = await self._journal.memory(request.id)
        if memory.account_asked_upn == upn:
            await self._journal.remember(request.id, account_asked_upn=None)
        await self._journal.audit(
            request.id, AuditAction.ACCOUNT_CREATE_REFUSED, AuditResult.REFUSED, upn=upn
        )
        alternative = await self._free_alternative(request.id, upn)
        hint = f" ({alternative} is free)" if alternative else ""
        raise NeedsHuman(
            f"The user name {upn} is taken by an account PhoneDesk didn't create. Rename or "
            "delete that account in the Microsoft 365 admin center and Retry, or cancel and "
            f"request again with another display name{hint}.",
            code=CODE_OBJECT_CONFLICT,
        )

    async def _held_by_other_request(self, request_id: str, upn: str) -> bool:
        return upn.casefold() in await self._journal.upns_of_others(request_id)

    async def _free_alternative(self, request_id: str, upn: str) -> str | None:
        for candidate in upn_alternatives(upn):
            if await self._held_by_other_request(request_id, candidate):
                continue
            if await self._tools.graph.find_user(candidate) is None:
                return candidate
        return None

    async def wait_ready(self, ctx: StageContext, account_id: str, upn: str, app_id: str) -> None:
        """Setting the ApplicationId succeeds only once the account has propagated.

        Until then the call says "not ready", or "not found" while the new account has not
        even replicated; both are waited out here, one call per look. An account created
        here is first looked at when recent accounts were ready (see ``DelayFloor``).
        """
        timings = self._tools.timings
        ctx.reset_backoff()
        created = timings.created.get(account_id)
        if created is not None:
            await timings.hold_for_first_look(
                ctx,
                timings.propagation,
                created,
                f"{upn} is being set up across Microsoft 365",
                at_least=ctx.poll_interval_s,
            )
        while True:
            try:
                await self._teams.set_application_id(account_id, app_id)
                if created is not None:
                    timings.propagation.observed(timings.monotonic() - created)
                    timings.created.pop(account_id, None)
                return
            except NotFound:
                reason = f"{upn} is not visible yet (directory replication)"
            except BadRequest as exc:
                if exc.code != CODE_ACCOUNT_NOT_READY:
                    raise
                reason = f"{upn} is still being set up across Microsoft 365"
            await ctx.pause(reason)


def _require_upn(upn: str | None) -> str:
    assert upn is not None  # assign_upn has just set it
    return upn
