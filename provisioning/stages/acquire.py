"""Stage 1: a phone number, claimed from the tenant's inventory or newly ordered.

Orders have deterministic names (``order_name``), and how many were asked for is in the
journal before each is placed, so a pass after a crash finds the order it placed.
"""

from __future__ import annotations

import logging
from typing import Final

from provisioning.domain import AuditAction, AuditResult, Request
from provisioning.domain.phone_numbers import number_in_area
from provisioning.microsoft.errors import BadRequest, MicrosoftApiError
from provisioning.microsoft.graph import AssignmentStatus, NumberAssignment, number_filter
from provisioning.microsoft.teams_admin import SearchOrder, SearchOrderErrorCode, SearchOrderStatus
from provisioning.stages.account import Accounts
from provisioning.stages.context import StageContext
from provisioning.stages.outcomes import NeedsHuman
from provisioning.stages.tools import StageTools

__all__ = ["LIVE_ORDER", "NumberAcquisition", "order_name"]

logger = logging.getLogger(__name__)

# Reservations that expire are re-ordered this often per pass before a person is asked.
_MAX_ORDERS_PER_PASS: Final = 3
LIVE_ORDER: Final = frozenset({SearchOrderStatus.PENDING, SearchOrderStatus.RESERVED})
_DEAD_ORDER: Final = frozenset(
    {SearchOrderStatus.EXPIRED, SearchOrderStatus.CANCELLED, SearchOrderStatus.ERROR}
)
_LAPSED_ORDER: Final = frozenset({SearchOrderStatus.EXPIRED, SearchOrderStatus.CANCELLED})


def order_name(request_id: str, attempt: int) -> str:
    """The deterministic name of a request's n-th number order, to find it again."""
    return f"phonedesk-{request_id}-{attempt}"


def _order_numbers(order: SearchOrder) -> list[str]:
    return [n.telephone_number for n in order.telephone_numbers]


class NumberAcquisition:
    def __init__(self, tools: StageTools, accounts: Accounts) -> None:
        self._tools = tools
        self._journal = tools.journal
        self._teams = tools.teams
        self._graph = tools.graph
        self._accounts = accounts

    async def acquire_number(self, ctx: StageContext) -> str:
        """The stage: returns what was acquired, in words."""
        request = await self._journal.request(ctx.request_id)
        # The account's propagation is the long pole of a request: start it first.
        await self._accounts.start_early(ctx, request)
        held = await self._journal.claims(request.id)
        count, order = await self._latest_order(request.id)
        if order is not None:
            # A crash may have lost the answer to the order's creation, and its audit with it.
            await self._journal.audit_once(
                request.id, AuditAction.ORDER_PLACED, order=order.name, order_id=order.id
            )
        if held:
            number = held[0]
            if order is None or number not in _order_numbers(order):
                await self._wait_in_inventory(ctx, number)
                await self._journal.save_result(request.id, telephone_number=number)
                await self._journal.audit_once(
                    request.id, AuditAction.NUMBER_CLAIMED, number=number, source="inventory"
                )
                return f"{number} from the tenant's inventory"
            if order.status in _DEAD_ORDER:
                await self.release_claims(request.id, _order_numbers(order))
            else:
                return await self._follow_order(ctx, request, count, order)
        if order is None or order.status in _DEAD_ORDER:
            from_inventory = await self._claim_from_inventory(request)
            if from_inventory is not None:
                return f"{from_inventory} from the tenant's inventory"
            order = None
        return await self._follow_order(ctx, request, count, order)

    async def _latest_order(self, request_id: str) -> tuple[int, SearchOrder | None]:
        """The newest order Microsoft has for this request, and its attempt number."""
        count = (await self._journal.memory(request_id)).orders_asked
        while count > 0:
            found = await self._teams.find_search_order_by_name(order_name(request_id, count))
            if found is not None:
                return count, found
            # Asked for, but the POST never reached Microsoft: its name is free again.
            count -= 1
        return 0, None

    async def _claim_from_inventory(self, request: Request) -> str | None:
        if request.number_type.is_toll_free and request.area_code is None:
            # Inventory numbers do not say whether they are toll-free; order instead.
            return None
        numbers = await self._graph.list_number_assignments(
            filter=number_filter(
                assignment_status=AssignmentStatus.UNASSIGNED, iso_country_code=request.country
            )
        )
        claimed = await self._journal.all_claims()
        for candidate in sorted(numbers, key=lambda n: n.telephone_number):
            number = candidate.telephone_number
            if (
                not candidate.can_serve_voice_applications
                or not number_in_area(number, request.country, request.area_code)
                or number in claimed
            ):
                continue
            if await self._journal.claim(number, request.id):
                await self._journal.save_result(request.id, telephone_number=number)
                await self._journal.audit(
                    request.id, AuditAction.NUMBER_CLAIMED, number=number, source="inventory"
                )
                return number
        return None

    async def _follow_order(
        self, ctx: StageContext, request: Request, count: int, order: SearchOrder | None
    ) -> str:
        lost = 0
        while True:
            if order is None:
                count += 1
                order = await self._place_and_look(ctx, request, order_name(request.id, count))
                continue
            if order.status is SearchOrderStatus.PENDING:
                await ctx.pause(f"number order {order.name} is still searching for numbers")
            elif order.status in (SearchOrderStatus.RESERVED, SearchOrderStatus.COMPLETED):
                number = await self._complete(request, order)
                if number is not None:
                    await self._wait_in_inventory(ctx, number)
                    return f"{number}, newly ordered ({order.name})"
            elif order.status in _LAPSED_ORDER:
                lost += 1
                await self._lapsed(request, order, lost)
                order = None
                continue
            else:
                await self._failed(request, order)
            order = await self._teams.get_search_order(order.id)

    async def _place_and_look(self, ctx: StageContext, request: Request, name: str) -> SearchOrder:
        await ctx.check_cancelled()
        order_id = await self._place_order(request, name)
        ctx.reset_backoff()
        # A new order always starts by searching: look only after a first wait.
        await ctx.pause(f"number order {name} is searching for numbers")
        return await self._teams.get_search_order(order_id)

    async def _complete(self, request: Request, order: SearchOrder) -> str | None:
        """Claim the order's number and complete the order; None if it lapsed just now."""
        number = await self._claim_ordered_number(request, order)
        if order.status is SearchOrderStatus.RESERVED:
            try:
                await self._teams.complete_search_order(order.id)
            except BadRequest as exc:
                # It expired or was cancelled just now; the next read says which.
                logger.info("%s: completing %s failed: %s", request.id, order.name, exc)
                return None
        # Completed: the number now shows in the inventory, which says enough.
        await self._journal.audit_once(request.id, AuditAction.ORDER_COMPLETED, order=order.name)
        return number

    async def _lapsed(self, request: Request, order: SearchOrder, lost: int) -> None:
        await self.release_claims(request.id, _order_numbers(order))
        await self._journal.audit(
            request.id,
            AuditAction.ORDER_LOST,
            AuditResult.FAILED,
            order=order.name,
            status=order.status.value,
        )
        if lost >= _MAX_ORDERS_PER_PASS:
            raise NeedsHuman(
                f"Number reservations ended {lost} times ({order.status.value.lower()}) "
                "before PhoneDesk could complete them. Retry to order again, or cancel."
            )

    async def _failed(self, request: Request, order: SearchOrder) -> None:
        await self.release_claims(request.id, _order_numbers(order))
        await self._journal.audit(
            request.id,
            AuditAction.ORDER_FAILED,
            AuditResult.FAILED,
            order=order.name,
            error=order.error_code,
        )
        if order.error_code == SearchOrderErrorCode.OUT_OF_STOCK:
            raise NeedsHuman(await self._out_of_stock(request), code=order.error_code)
        raise NeedsHuman(
            f"Microsoft could not fill number order {order.name} "
            f"({order.error_code or 'no error code'}). Retry, or cancel.",
            code=order.error_code,
        )

    async def _place_order(self, request: Request, name: str) -> str:
        _, _, attempt = name.rpartition("-")
        await self._journal.remember(request.id, orders_asked=int(attempt))
        await self._journal.audit(request.id, AuditAction.ORDER_REQUESTED, order=name)
        try:
            order_id = await self._teams.create_search_order(
                name=name,
                description=f"PhoneDesk {request.id}: {request.display_name}"[:256],
                country_code=request.country,
                number_type=request.number_type.value,
                quantity=1,
                area_code=request.area_code,
            )
        except BadRequest as exc:
            raise NeedsHuman(
                f"Microsoft refused the number order: {exc.message} "
                "Cancel and request another country, number type or area code.",
                code=exc.code,
                retryable=False,
            ) from exc
        await self._journal.save_result(request.id, order_id=order_id)
        await self._journal.audit(
            request.id, AuditAction.ORDER_PLACED, order=name, order_id=order_id
        )
        return order_id

    async def _claim_ordered_number(self, request: Request, order: SearchOrder) -> str:
        """Claim before completing, so no other request takes it from the inventory."""
        numbers = _order_numbers(order)
        if not numbers:
            raise NeedsHuman(f"Number order {order.name} holds no numbers. Retry, or cancel.")
        held = set(await self._journal.claims(request.id))
        number = next((n for n in numbers if n in held), numbers[0])
        if number not in held and not await self._journal.claim(number, request.id):
            holder = await self._journal.claimed_by(number)
            raise NeedsHuman(
                f"{number}, reserved by order {order.name}, is already held by request "
                f"{holder} in PhoneDesk's store. Check both requests, then Retry or cancel."
            )
        await self._journal.audit_once(
            request.id, AuditAction.NUMBER_CLAIMED, number=number, source=order.name
        )
        await self._journal.save_result(request.id, order_id=order.id, telephone_number=number)
        return number

    async def release_claims(self, request_id: str, numbers: list[str]) -> list[str]:
        """Give back the request's claims on these numbers; returns those it held."""
        released = []
        for number in numbers:
            if await self._journal.release_claim(number, request_id):
                await self._journal.audit(request_id, AuditAction.NUMBER_RELEASED, number=number)
                released.append(number)
        return released

    async def _wait_in_inventory(self, ctx: StageContext, number: str) -> NumberAssignment:
        while True:
            assignment = await self._graph.find_number_assignment(number)
            if assignment is not None:
                return assignment
            await ctx.pause(f"{number} is not in the tenant's inventory yet")

    async def _out_of_stock(self, request: Request) -> str:
        where = f"area code {request.area_code}" if request.area_code else "any area code"
        message = (
            f"Out of stock: Microsoft has no {request.number_type.value} numbers for "
            f"{request.country}, {where}."
        )
        try:
            offers = await self._teams.list_number_types(request.country)
        except MicrosoftApiError:
            offers = []
        in_stock = [
            f"{area.area_code} ({area.available_quantity})"
            for offer in offers
            if offer.number_type == request.number_type.value
            for area in offer.area_codes
            if area.available_quantity > 0 and area.area_code != request.area_code
        ]
        if in_stock:
            message += f" Area codes in stock now: {', '.join(in_stock)}."
        message += " Retry when stock is back, or cancel and request another area code."
        current = await self._journal.request(request.id)
        if current.result.account_id is not None:
            message += (
                f" The resource account {current.result.upn}, created while the number was "
                "searched for, is kept for the retry; cancelling removes it."
            )
        return message
