"""Undo: unbind, unlicense and delete the account, cancel live orders, release claims.

Every part looks before it acts, so a second pass after a crash repeats nothing.
"""

from __future__ import annotations

from typing import Final

from provisioning.domain import AuditAction, AuditResult, Request
from provisioning.microsoft.errors import NotFound
from provisioning.microsoft.graph import AssignmentStatus, InventoryNumberType, OperationStatus
from provisioning.stages.account import Accounts
from provisioning.stages.acquire import LIVE_ORDER, NumberAcquisition, order_name
from provisioning.stages.context import StageContext
from provisioning.stages.outcomes import NotYet
from provisioning.stages.tools import StageTools

__all__ = ["Undo"]

# How many polls a "not found" may last before something is taken to be really gone.
_GONE_AFTER_POLLS: Final = 8


class Undo:
    def __init__(
        self, tools: StageTools, accounts: Accounts, acquisition: NumberAcquisition
    ) -> None:
        self._tools = tools
        self._journal = tools.journal
        self._graph = tools.graph
        self._accounts = accounts
        self._acquisition = acquisition

    async def undo(self, ctx: StageContext, undone: list[str], cancel_orders: bool) -> str:
        request = await self._journal.request(ctx.request_id)
        account_id = request.result.account_id or await self._unrecorded_account(ctx, request)
        claims = await self._journal.claims(request.id)
        number = request.result.telephone_number or (claims[0] if claims else None)
        if account_id is not None:
            if number is not None:
                await self._unbind(ctx, request.id, number, account_id, undone)
            memory = await self._journal.memory(request.id)
            if memory.deleted_account_id != account_id:
                await self._remove_account(ctx, request.id, account_id, undone)
        if cancel_orders:
            await self._cancel_orders(request.id, undone)
        for released in await self._acquisition.release_claims(request.id, claims):
            undone.append(f"released {released}")
        return "undone"

    async def _cancel_orders(self, request_id: str, undone: list[str]) -> None:
        teams = self._tools.teams
        asked = (await self._journal.memory(request_id)).orders_asked
        for attempt in range(1, asked + 1):
            order = await teams.find_search_order_by_name(order_name(request_id, attempt))
            if order is not None and order.status in LIVE_ORDER:
                await teams.cancel_search_order(order.id)
                await self._journal.audit(request_id, AuditAction.ORDER_CANCELLED, order=order.name)
                undone.append(f"cancelled number order {order.name}")

    async def _unrecorded_account(self, ctx: StageContext, request: Request) -> str | None:
        """An account whose creation was asked for but whose id a crash kept from the store."""
        upn = request.result.upn
        if upn is None or not await self._accounts.asked_to_create(request.id, upn):
            return None
        app_id = self._accounts.application_id(request)
        for _ in range(_GONE_AFTER_POLLS):
            instance = await self._tools.teams.find_application_instance(upn)
            if instance is not None:
                if not await self._accounts.is_ours(request, upn, instance, app_id):
                    return None
                await self._journal.save_result(request.id, account_id=instance.object_id)
                return instance.object_id
            await ctx.pause(f"looking for {upn}", cancellable=False)
        return None

    async def _unbind(
        self, ctx: StageContext, request_id: str, number: str, account_id: str, undone: list[str]
    ) -> None:
        assignment = await self._graph.find_number_assignment(number)
        if assignment is None or assignment.assignment_target_id != account_id:
            return
        if assignment.assignment_status == AssignmentStatus.UNASSIGNED:
            return
        operation_id = await self._graph.unassign_number(
            number, assignment.number_type or InventoryNumberType.CALLING_PLAN
        )
        operation = await self._tools.timings.wait_operation(ctx, self._graph, operation_id)
        if operation.status is not OperationStatus.SUCCEEDED:
            detail = operation.failure_detail or operation.status.value
            await self._journal.audit(
                request_id,
                AuditAction.NUMBER_UNBIND_FAILED,
                AuditResult.FAILED,
                number=number,
                detail=detail,
            )
            raise NotYet(f"unassigning {number} failed: {detail}")
        await self._journal.audit(
            request_id, AuditAction.NUMBER_UNBOUND, number=number, account_id=account_id
        )
        undone.append(f"unassigned {number}")

    async def _remove_account(
        self, ctx: StageContext, request_id: str, account_id: str, undone: list[str]
    ) -> None:
        user = await self._graph.find_user(account_id)
        if user is not None:
            for assigned in user.assigned_licenses:
                await self._graph.remove_license(account_id, assigned.sku_id)
                await self._journal.audit(
                    request_id,
                    AuditAction.LICENSE_REMOVED,
                    sku_id=assigned.sku_id,
                    account_id=account_id,
                )
                undone.append(f"removed license {assigned.sku_id}")
        misses = 0
        while True:
            try:
                await self._graph.delete_user(account_id)
                break
            except NotFound:
                misses += 1
                if misses >= _GONE_AFTER_POLLS:
                    break
            # Just after creation a delete can miss the account, like any read.
            await ctx.pause(f"account {account_id} is not found yet", cancellable=False)
        await self._journal.remember(request_id, deleted_account_id=account_id)
        await self._journal.audit(
            request_id,
            AuditAction.ACCOUNT_DELETED,
            account_id=account_id,
            already_gone=misses >= _GONE_AFTER_POLLS,
        )
        undone.append(f"deleted account {user.user_principal_name if user else account_id}")
