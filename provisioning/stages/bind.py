"""Stage 4: the number assigned to the account, waiting out Teams' sync and activation."""

from __future__ import annotations

from typing import Final

from provisioning.domain import AuditAction, AuditResult, Request
from provisioning.microsoft.errors import CODE_ACCOUNT_NOT_READY, BadRequest
from provisioning.microsoft.graph import (
    AssignmentStatus,
    InventoryNumberType,
    NumberAssignment,
    OperationStatus,
)
from provisioning.stages.account import Accounts
from provisioning.stages.context import StageContext
from provisioning.stages.outcomes import NeedsHuman, require
from provisioning.stages.tools import StageTools

__all__ = ["Binding"]

_PENDING_ACTIVATION: Final = frozenset({"assignmentPending", "updatePending"})


class Binding:
    def __init__(self, tools: StageTools, accounts: Accounts) -> None:
        self._tools = tools
        self._journal = tools.journal
        self._graph = tools.graph
        self._accounts = accounts

    async def bind_number(self, ctx: StageContext) -> str:
        """The stage: returns "number → UPN"."""
        request = await self._journal.request(ctx.request_id)
        account_id = require(request.result.account_id, "account")
        number = require(request.result.telephone_number, "telephone number")
        upn = request.result.upn or account_id
        # Stage 2 associated and synced the account; look again only if that was not
        # recorded, or once an assignment has failed (someone may have changed it since).
        memory = await self._journal.memory(request.id)
        checked = memory.synced_account_id != account_id
        if checked:
            await self._associate_and_sync(ctx, request, account_id, upn)
        ctx.reset_backoff()
        timings = self._tools.timings
        synced = timings.synced.get(account_id)
        if synced is not None:
            # An assignment tried before the sync reaches Teams fails, and costs a retry.
            await timings.hold_for_first_look(
                ctx, timings.sync, synced, f"{upn} is being synced to Teams"
            )
        while True:
            assignment = await self._graph.get_number_assignment(number)
            if _bound_to(assignment, account_id):
                if assignment.activation_state in _PENDING_ACTIVATION:
                    await ctx.pause(f"{number} is {assignment.activation_state}")
                    continue
                await self._journal.audit_once(
                    request.id, AuditAction.NUMBER_BOUND, number=number, account_id=account_id
                )
                return f"{number} → {upn}"
            if assignment.assignment_status != AssignmentStatus.UNASSIGNED:
                raise NeedsHuman(
                    f"{number} is already assigned ({assignment.assignment_status}) to "
                    f"{assignment.assignment_target_id}, not by PhoneDesk. Unassign it in the "
                    "Teams admin center and Retry, or cancel."
                )
            if await self._assign(ctx, request, assignment, account_id):
                continue
            if not checked:
                await self._associate_and_sync(ctx, request, account_id, upn)
                checked = True

    async def _assign(
        self, ctx: StageContext, request: Request, assignment: NumberAssignment, account_id: str
    ) -> bool:
        """Ask for the assignment and wait for its operation; False if it failed."""
        timings = self._tools.timings
        number = assignment.telephone_number
        asked = timings.monotonic()
        operation_id = await self._graph.assign_number(
            number, account_id, assignment.number_type or InventoryNumberType.CALLING_PLAN
        )
        await self._journal.save_result(request.id, operation_id=operation_id)
        await self._journal.audit(
            request.id,
            AuditAction.NUMBER_ASSIGN_REQUESTED,
            number=number,
            account_id=account_id,
            operation_id=operation_id,
        )
        operation = await timings.wait_operation(
            ctx, self._graph, operation_id, started=asked, floor=timings.assignment
        )
        synced = timings.synced.get(account_id)
        if operation.status is OperationStatus.SUCCEEDED:
            if synced is not None:
                timings.sync.observed(asked - synced)
                del timings.synced[account_id]
            return True
        if synced is not None:
            # Mostly the sync had not reached Teams yet: tried too early.
            timings.sync.too_early(asked - synced)
        detail = operation.failure_detail or f"operation {operation_id} {operation.status.value}"
        await self._journal.audit(
            request.id,
            AuditAction.NUMBER_ASSIGN_FAILED,
            AuditResult.FAILED,
            number=number,
            detail=detail,
        )
        # Mostly sync lag or a license not seen yet, which the service tells us to wait out.
        await ctx.pause(f"assignNumber failed: {detail}")
        return False

    async def _associate_and_sync(
        self, ctx: StageContext, request: Request, account_id: str, upn: str
    ) -> None:
        app_id = self._accounts.application_id(request)
        teams = self._tools.teams
        ctx.reset_backoff()
        while True:
            try:
                instance = await teams.get_application_instance(account_id)
                if (instance.application_id or "").lower() != app_id.lower():
                    await teams.set_application_id(account_id, app_id)
                await teams.sync_application_instance(account_id)
                self._tools.timings.remember(self._tools.timings.synced, account_id)
                break
            except BadRequest as exc:
                if exc.code != CODE_ACCOUNT_NOT_READY:
                    raise
            await ctx.pause(f"{upn} is still being set up across Microsoft 365")
        await self._accounts.synced(ctx.request_id, account_id)


def _bound_to(assignment: NumberAssignment, account_id: str) -> bool:
    return (
        assignment.assignment_target_id == account_id
        and assignment.assignment_status == AssignmentStatus.VOICE_APPLICATION_ASSIGNED
    )
