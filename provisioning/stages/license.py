"""Stage 3: a usage location, then a Teams Phone license from the preferred SKUs in order."""

from __future__ import annotations

from provisioning.domain import AuditAction, AuditResult, Request
from provisioning.microsoft.errors import (
    CODE_ACCOUNT_NOT_READY,
    CODE_INSUFFICIENT_LICENSES,
    CODE_INVALID_USAGE_LOCATION,
    BadRequest,
)
from provisioning.microsoft.graph import SubscribedSku, User
from provisioning.stages.context import StageContext
from provisioning.stages.outcomes import NeedsHuman, NotYet, require
from provisioning.stages.tools import StageTools

__all__ = ["Licensing"]


class Licensing:
    def __init__(self, tools: StageTools) -> None:
        self._tools = tools
        self._journal = tools.journal
        self._graph = tools.graph

    def _sku_preference(self) -> list[str]:
        settings = self._tools.settings
        ordered = [settings.preferred_sku, *settings.fallback_skus]
        return list(dict.fromkeys(part.upper() for part in ordered if part))

    async def assign_license(self, ctx: StageContext) -> str:
        """The stage: returns the SKU the account has."""
        request = await self._journal.request(ctx.request_id)
        account_id = require(request.result.account_id, "account")
        upn = request.result.upn or account_id
        user = await self._graph.get_user(account_id)
        if user.usage_location != request.country:
            await self._set_usage_location(ctx, account_id, upn, request.country)
        else:
            # Set by an earlier pass that a crash stopped before it could audit it.
            await self._journal.audit_once(
                request.id,
                AuditAction.USAGE_LOCATION_SET,
                account_id=account_id,
                country=request.country,
            )
        skus = {
            sku.sku_part_number.upper(): sku for sku in await self._graph.list_subscribed_skus()
        }
        held = await self._already_licensed(request, user, skus)
        if held is not None:
            return f"{held} (already assigned)"
        return await self._assign_first_free(request, upn, skus)

    async def _already_licensed(
        self, request: Request, user: User, skus: dict[str, SubscribedSku]
    ) -> str | None:
        for part in self._sku_preference():
            sku = skus.get(part)
            if sku is not None and user.has_license(sku.sku_id):
                await self._journal.save_result(
                    request.id, sku_id=sku.sku_id, sku_part_number=sku.sku_part_number
                )
                await self._journal.audit_once(
                    request.id, AuditAction.LICENSE_ASSIGNED, sku=sku.sku_part_number
                )
                return sku.sku_part_number
        return None

    async def _assign_first_free(
        self, request: Request, upn: str, skus: dict[str, SubscribedSku]
    ) -> str:
        account_id = require(request.result.account_id, "account")
        tried: list[str] = []
        for part in self._sku_preference():
            sku = skus.get(part)
            if sku is None:
                tried.append(f"{part} (not in this tenant)")
                continue
            if sku.capability_status not in (None, "Enabled"):
                tried.append(f"{part} ({sku.capability_status})")
                continue
            if sku.free_units < 1:
                tried.append(f"{part} ({sku.consumed_units} of {sku.prepaid_units.enabled} used)")
                continue
            try:
                await self._graph.assign_license(account_id, sku.sku_id)
            except BadRequest as exc:
                if exc.code == CODE_INSUFFICIENT_LICENSES:
                    tried.append(f"{part} (its last unit was just taken)")
                    continue
                if exc.code == CODE_INVALID_USAGE_LOCATION:
                    raise NotYet(f"the usage location of {upn} is not applied yet") from exc
                raise
            await self._journal.save_result(
                request.id, sku_id=sku.sku_id, sku_part_number=sku.sku_part_number
            )
            await self._journal.audit(
                request.id,
                AuditAction.LICENSE_ASSIGNED,
                sku=sku.sku_part_number,
                account_id=account_id,
            )
            return sku.sku_part_number
        await self._journal.audit(
            request.id, AuditAction.LICENSE_UNAVAILABLE, AuditResult.FAILED, tried=list(tried)
        )
        raise NeedsHuman(
            f"No free license for {upn}: {'; '.join(tried)}. Add units (or free some) in the "
            "Microsoft 365 admin center, then Retry.",
            code=CODE_INSUFFICIENT_LICENSES,
        )

    async def _set_usage_location(
        self, ctx: StageContext, account_id: str, upn: str, country: str
    ) -> None:
        ctx.reset_backoff()
        while True:
            try:
                await self._graph.set_usage_location(account_id, country)
                break
            except BadRequest as exc:
                if exc.code != CODE_ACCOUNT_NOT_READY:
                    raise
            await ctx.pause(f"{upn} is still being set up across Microsoft 365")
        await self._journal.audit_once(
            ctx.request_id, AuditAction.USAGE_LOCATION_SET, account_id=account_id, country=country
        )
