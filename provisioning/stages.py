"""The four provisioning stages and their undo, as idempotent passes over the tenant.

Each stage is written to be run again from the top at any moment: after a crash, after a
transient error, after a retry. A pass first looks at what already exists (the claimed
number, the order found by its deterministic name, the account found by UPN, the license
already on the account, the number already bound) and only creates what is missing. What
it creates is written to the store at once, so the undo knows what to remove.

Waiting is polling with backoff until a condition holds or the stage's deadline passes,
never a fixed sleep. Transient trouble (throttling, 5xx, timeouts, 404 just after
creation, "account not ready") is waited out here; conditions a person must fix end the
stage with a `Failure` whose reason says what to do.

Nothing here knows about DBOS: the workflow runs each stage inside one step.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, JsonValue

from provisioning.microsoft.errors import (
    CODE_ACCOUNT_NOT_READY,
    CODE_CONCURRENCY_VIOLATION,
    CODE_INSUFFICIENT_LICENSES,
    CODE_INVALID_USAGE_LOCATION,
    CODE_OBJECT_CONFLICT,
    ApiConnectionError,
    ApiStatusError,
    BadRequest,
    Conflict,
    Forbidden,
    MicrosoftApiError,
    NotFound,
    ServerError,
    Throttled,
    Unauthorized,
)
from provisioning.microsoft.graph import (
    AssignmentStatus,
    GraphClient,
    LongRunningOperation,
    NumberAssignment,
    OperationStatus,
    number_filter,
)
from provisioning.microsoft.graph import NumberType as InventoryNumberType
from provisioning.microsoft.pacing import call_priority
from provisioning.microsoft.teams_admin import (
    ApplicationInstance,
    SearchOrder,
    SearchOrderErrorCode,
    SearchOrderStatus,
    TeamsAdminClient,
)
from provisioning.models import (
    AuditResult,
    Failure,
    Request,
    RequestStatus,
    Stage,
    derive_upn,
    upn_alternatives,
)
from provisioning.phone_numbers import number_in_area
from provisioning.settings import Settings
from provisioning.store import RequestNotFound, Store

__all__ = [
    "DeadlinePassed",
    "DelayFloor",
    "NeedsHuman",
    "Provisioner",
    "StageCancelled",
    "StageContext",
    "StageOutcome",
    "UndoOutcome",
    "order_name",
]

logger = logging.getLogger(__name__)

WORKFLOW_ACTOR: Final = "phonedesk-workflow"

_BACKOFF: Final = 1.6
_JITTER: Final = 0.2
# Reservations that expire are re-ordered this often per pass before a person is asked.
_MAX_ORDERS_PER_PASS: Final = 3
# How many polls a "not found" may last before something is taken to be really gone.
_GONE_AFTER_POLLS: Final = 8
# Accounts whose creation or sync time is kept, to learn how long propagation and sync take.
_CREATED_KEPT: Final = 1000
_CLOSE_ENOUGH: Final = 0.1
# Priorities are request ages in epoch seconds; this puts a long-pole call before them all.
_LONG_POLE_FIRST: Final = 1e12
_PENDING_ACTIVATION: Final = frozenset({"assignmentPending", "updatePending"})
_LIVE_ORDER: Final = frozenset({SearchOrderStatus.PENDING, SearchOrderStatus.RESERVED})
_DEAD_ORDER: Final = frozenset(
    {SearchOrderStatus.EXPIRED, SearchOrderStatus.CANCELLED, SearchOrderStatus.ERROR}
)
# Requests whose UPN is spoken for, so another request must not derive the same one.
_HOLDS_UPN: Final = frozenset(
    {
        RequestStatus.APPROVED,
        RequestStatus.PROVISIONING,
        RequestStatus.FAILED,
        RequestStatus.COMPLETED,
    }
)


def order_name(request_id: str, attempt: int) -> str:
    """The deterministic name of a request's n-th number order, to find it again."""
    return f"phonedesk-{request_id}-{attempt}"


def _duration(seconds: float) -> str:
    if seconds >= 90 * 60:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 90:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.1f} seconds"


# --- outcomes and control flow -------------------------------------------------------------


class StageOutcome(BaseModel):
    """How one run of a stage ended; JSON-safe, because DBOS records it."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["done", "failed", "cancelled"]
    detail: str | None = None
    failure: Failure | None = None


class UndoOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    undone: list[str]
    problem: str | None = None


class NeedsHuman(Exception):
    """A condition only a person can fix; ``reason`` tells them what to do."""

    def __init__(self, reason: str, *, code: str | None = None, retryable: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.retryable = retryable


class StageCancelled(Exception):
    """The request was cancelled while the stage was waiting."""


class DeadlinePassed(Exception):
    def __init__(self, last_problem: str) -> None:
        super().__init__(last_problem)
        self.last_problem = last_problem


class _NotYet(Exception):
    """A condition in the tenant that time resolves (e.g. a setting not applied yet)."""


def _calls_ordered(
    ctx: StageContext, *, long_pole: bool = False
) -> contextlib.AbstractContextManager[None]:
    """The request's calls wait their turn by its priority (its age) while an API throttles.

    ``long_pole``: a call that starts one of the tenant's long waits (creating an account
    starts its 15-20 minute propagation) goes ahead of every other call of any request. A
    request's other calls then queue behind its own propagation, not in front of another
    request's.
    """
    if ctx.priority is None:
        return contextlib.nullcontext()
    return call_priority(ctx.priority - _LONG_POLE_FIRST if long_pole else ctx.priority)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, Throttled | ServerError | ApiConnectionError | NotFound | _NotYet):
        return True
    if isinstance(exc, Conflict):
        return exc.code == CODE_CONCURRENCY_VIOLATION
    if isinstance(exc, ApiStatusError):
        return exc.status in (408, 502, 503, 504) or exc.code == CODE_ACCOUNT_NOT_READY
    return False


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ApiStatusError):
        return f"HTTP {exc.status} {exc.code or ''}".rstrip() + f": {exc.message}"
    return str(exc) or type(exc).__name__


# --- one run of one stage --------------------------------------------------------------------


class StageContext:
    """The deadline, the backoff and the cancellation check of one run of a stage."""

    def __init__(
        self,
        request_id: str,
        *,
        deadline: float,
        budget_s: float,
        poll_interval_s: float,
        poll_max_interval_s: float,
        is_cancelled: Callable[[], Awaitable[bool]] | None = None,
        wakeup: asyncio.Event | None = None,
        priority: float | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``priority`` orders this run's calls against other requests' while an API
        throttles (lower first; see ``call_priority``); None leaves them unordered."""
        self.request_id = request_id
        self.priority = priority
        self.deadline = deadline
        self.budget_s = budget_s
        self.last_problem: str | None = None
        self._interval = poll_interval_s
        self._max_interval = max(poll_max_interval_s, poll_interval_s)
        self._is_cancelled = is_cancelled
        self._wakeup = wakeup
        self._clock = clock
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._attempt = 0

    def reset_backoff(self) -> None:
        """Something moved on, so the next wait starts short again."""
        self._attempt = 0

    async def check_cancelled(self) -> None:
        if self._is_cancelled is not None and await self._is_cancelled():
            raise StageCancelled

    async def pause(self, reason: str, *, at_least: float = 0.0, cancellable: bool = True) -> None:
        """Wait before looking again; raise when the deadline has passed or on cancel."""
        self.last_problem = reason
        remaining = self.deadline - self._clock()
        if remaining <= 0:
            raise DeadlinePassed(reason)
        delay = min(self._max_interval, self._interval * _BACKOFF**self._attempt)
        self._attempt += 1
        # Jitter only downwards, so the configured maximum interval stays the maximum.
        delay *= self._rng.uniform(1 - _JITTER, 1)
        delay = min(max(delay, at_least), remaining)
        logger.debug("%s: waiting %.2f s: %s", self.request_id, delay, reason)
        await self._wait(delay, cancellable=cancellable)

    async def wait_out_throttling(self, reason: str, retry_after: float | None) -> None:
        """Wait as long as the API asked, without growing the backoff.

        Throttling says the API is busy, not that the tenant is slow to act, so it must not
        stretch the stage's next polls towards their maximum interval.
        """
        await self.hold(reason, self._interval if retry_after is None else retry_after)

    async def hold(self, reason: str, seconds: float, *, cancellable: bool = True) -> None:
        """Wait ``seconds`` (up to the deadline) without growing the backoff."""
        self.last_problem = reason
        remaining = self.deadline - self._clock()
        if remaining <= 0:
            raise DeadlinePassed(reason)
        delay = min(seconds, remaining)
        logger.debug("%s: waiting %.2f s: %s", self.request_id, delay, reason)
        await self._wait(delay, cancellable=cancellable)

    @property
    def poll_interval_s(self) -> float:
        return self._interval

    async def _wait(self, delay: float, *, cancellable: bool) -> None:
        if cancellable and self._wakeup is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), delay)
        else:
            await self._sleep(delay)
        if cancellable:
            await self.check_cancelled()


class DelayFloor:
    """How long something slow in the tenant has taken lately, to know when to look.

    Propagation takes minutes (15 to 20 in Microsoft's words), a sync and a number
    assignment less, and a look before they are done only costs a call against a rate
    limit that bulk runs already press on. So the first look comes when the quickest of the
    recent ones was seen done, shaded by ``margin``, and polling with backoff only starts
    from there. What is learned is a *first look*, never a fixed wait: a slower one is
    polled as before, and one faster than all recent ones is at most that much late.

    A look that finds one done only says it took *at most* that long. Where looks that
    came too early are reported as well (``too_early``), the first look goes halfway
    between the latest "not yet" and the quickest "done" until the two are within a tenth,
    so it closes in on the real duration instead of settling on whatever a first poll
    interval happened to be.
    """

    def __init__(self, *, keep: int = 20, margin: float = 0.9) -> None:
        self._done: deque[float] = deque(maxlen=keep)
        self._not_yet: deque[float] = deque(maxlen=keep)
        self._margin = margin

    def observed(self, seconds: float) -> None:
        """One started ``seconds`` ago was found done just now."""
        self._done.append(seconds)

    def too_early(self, seconds: float) -> None:
        """One started ``seconds`` ago was found not done yet."""
        self._not_yet.append(seconds)

    def first_look(self, at_least: float) -> float:
        """Seconds after the start to look first; ``at_least`` until anything is known."""
        if not self._done:
            return at_least
        look = min(self._done) * self._margin
        not_yet = max(self._not_yet, default=look)
        if not_yet < look * (1 - _CLOSE_ENOUGH):
            # Halfway, until known to within a tenth; closer would fail every other look.
            look = (not_yet + look) / 2
        return max(at_least, look)


# --- the stages ----------------------------------------------------------------------------


class Provisioner:
    """Carries out the four stages against the tenant, recording each effect in the store."""

    def __init__(
        self,
        settings: Settings,
        graph: GraphClient,
        teams_admin: TeamsAdminClient,
        store: Store,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._graph = graph
        self._teams = teams_admin
        self._store = store
        self._monotonic = monotonic
        # Learned first looks. The propagation margin allows for accounts quicker than any
        # seen lately. Sync and assignment are learned from the age at which a look found
        # them done, which is never earlier than the first look itself, so a margin below
        # one would only ever move the look earlier until it failed.
        self.propagation = DelayFloor(margin=0.9)
        self.sync = DelayFloor(margin=1.0)
        self.assignment = DelayFloor(margin=1.0)
        # When this process created an account (until it is ready) or synced one (until a
        # number is bound to it): to learn from them.
        self._created: dict[str, float] = {}
        self._synced: dict[str, float] = {}

    # -- running -------------------------------------------------------------------------

    async def run(self, stage: Stage, ctx: StageContext) -> StageOutcome:
        """One run of a stage, until it is done, needs a person, or is cancelled."""
        bodies: dict[Stage, Callable[[StageContext], Awaitable[str]]] = {
            Stage.ACQUIRE_NUMBER: self.acquire_number,
            Stage.CREATE_ACCOUNT: self.create_account,
            Stage.ASSIGN_LICENSE: self.assign_license,
            Stage.BIND_NUMBER: self.bind_number,
        }
        try:
            with _calls_ordered(ctx):
                detail = await self._until_settled(stage.label, ctx, bodies[stage])
        except StageCancelled:
            return StageOutcome(kind="cancelled")
        except NeedsHuman as exc:
            failure = Failure(
                stage=stage, reason=exc.reason, retryable=exc.retryable, code=exc.code
            )
            return StageOutcome(kind="failed", failure=failure)
        except DeadlinePassed as exc:
            reason = (
                f"{stage.label} did not finish within {_duration(ctx.budget_s)}: "
                f"{exc.last_problem}. Retry to keep waiting, or cancel."
            )
            return StageOutcome(
                kind="failed", failure=Failure(stage=stage, reason=reason, retryable=True)
            )
        except ApiStatusError as exc:
            failure = Failure(
                stage=stage,
                reason=_refusal_message(stage.label, exc),
                retryable=True,
                code=exc.code,
            )
            return StageOutcome(kind="failed", failure=failure)
        except Exception as exc:
            # A bug or an answer nobody planned for; a person must look before retrying.
            logger.exception("%s: %s failed unexpectedly", ctx.request_id, stage.label)
            reason = f"{stage.label} failed unexpectedly: {_describe(exc)}. Retry, or cancel."
            return StageOutcome(
                kind="failed", failure=Failure(stage=stage, reason=reason, retryable=True)
            )
        return StageOutcome(kind="done", detail=detail)

    async def run_undo(self, ctx: StageContext, *, cancel_orders: bool) -> UndoOutcome:
        """Remove what the request created; keeps going through transient trouble."""
        undone: list[str] = []
        try:
            with _calls_ordered(ctx):
                await self._until_settled(
                    "Undo", ctx, lambda c: self.undo(c, undone, cancel_orders)
                )
        except DeadlinePassed as exc:
            return UndoOutcome(undone=undone, problem=f"gave up waiting: {exc.last_problem}")
        except NeedsHuman as exc:
            return UndoOutcome(undone=undone, problem=exc.reason)
        except Exception as exc:
            logger.exception("%s: undo failed", ctx.request_id)
            return UndoOutcome(undone=undone, problem=_describe(exc))
        return UndoOutcome(undone=undone)

    async def _until_settled(
        self,
        label: str,
        ctx: StageContext,
        body: Callable[[StageContext], Awaitable[str]],
    ) -> str:
        while True:
            await ctx.check_cancelled()
            try:
                return await body(ctx)
            except Exception as exc:
                if not _is_transient(exc):
                    raise
                retry_after = exc.retry_after if isinstance(exc, ApiStatusError) else None
                logger.info("%s: %s will try again: %s", ctx.request_id, label, _describe(exc))
                if isinstance(exc, Throttled):
                    await ctx.wait_out_throttling(_describe(exc), retry_after)
                else:
                    await ctx.pause(_describe(exc), at_least=retry_after or 0.0)

    # -- store helpers --------------------------------------------------------------------

    async def _request(self, request_id: str) -> Request:
        request = await asyncio.to_thread(self._store.get_request, request_id)
        if request is None:
            raise RequestNotFound(request_id)
        return request

    async def _save_result(self, request_id: str, **fields: str | None) -> Request:
        # Any status: an effect must be recorded even if a cancel came in meanwhile.
        return await asyncio.to_thread(lambda: self._store.merge_result(request_id, **fields))

    async def audit(
        self,
        request_id: str,
        action: str,
        result: AuditResult = AuditResult.OK,
        /,
        **details: JsonValue,
    ) -> None:
        """Append to the audit log as the workflow; the stages and the workflow both use it."""
        await asyncio.to_thread(
            lambda: self._store.append_audit(
                actor=WORKFLOW_ACTOR,
                action=action,
                request_id=request_id,
                result=result,
                details=details,
            )
        )

    async def _has_audit(self, request_id: str, action: str, **details: JsonValue) -> bool:
        entries = await asyncio.to_thread(self._store.list_audit, request_id)
        return any(
            entry.action == action
            and all(entry.details.get(key) == value for key, value in details.items())
            for entry in entries
        )

    async def _audit_once(self, request_id: str, action: str, **details: JsonValue) -> None:
        """Audit an effect a crashed earlier pass may have caused without recording it."""
        if not await self._has_audit(request_id, action, **details):
            await self.audit(request_id, action, **details)

    async def _claims(self, request_id: str) -> list[str]:
        return sorted(await asyncio.to_thread(self._store.list_claims, request_id))

    # -- stage 1: acquire a number --------------------------------------------------------

    async def acquire_number(self, ctx: StageContext) -> str:
        request = await self._request(ctx.request_id)
        # The account's propagation is the long pole of a request: start it first.
        await self._start_account_early(ctx, request)
        held = await self._claims(request.id)
        count, order = await self._latest_order(request.id)
        if order is not None:
            # A crash may have lost the answer to the order's creation, and its audit with it.
            await self._audit_once(request.id, "order.placed", order=order.name, order_id=order.id)
        if held:
            number = held[0]
            if order is None or number not in _order_numbers(order):
                await self._wait_in_inventory(ctx, number)
                await self._save_result(request.id, telephone_number=number)
                await self._audit_once(
                    request.id, "number.claimed", number=number, source="inventory"
                )
                return f"{number} from the tenant's inventory"
            if order.status in _DEAD_ORDER:
                await self._release_claims(request.id, _order_numbers(order))
            else:
                return await self._follow_order(ctx, request, count, order)
        if order is None or order.status in _DEAD_ORDER:
            from_inventory = await self._claim_from_inventory(request)
            if from_inventory is not None:
                return f"{from_inventory} from the tenant's inventory"
            order = None
        return await self._follow_order(ctx, request, count, order)

    async def _start_account_early(self, ctx: StageContext, request: Request) -> None:
        """Create the resource account now, before the number is looked for.

        Propagation (15 to 20 minutes) is the long pole of a request: started here, it runs
        while the number is claimed or searched for, instead of after. It also comes before
        any number order, whose reservation lapses on its own clock, so nothing stands
        between placing an order and following it. This is stage 2's own find or create,
        as a head start that never fails the number stage: whatever goes wrong is met again
        in stage 2, which then tells a person what to do.
        """
        if request.result.account_id is not None:
            return
        upn = request.result.upn
        if upn is not None and await self._asked_to_create(request.id, upn):
            return  # Asked before, its answer lost: stage 2 finds it by name.
        try:
            upn = upn or await self._choose_upn(request)
            await self._find_or_create_account(ctx, request, upn, self._application_id(request))
        except (NeedsHuman, MicrosoftApiError) as exc:
            logger.info("%s: no early account (stage 2 will see to it): %s", request.id, exc)

    async def _orders_asked(self, request_id: str) -> int:
        """How many orders this request has asked for, as its audit trail records them.

        The request to order is recorded before the POST, so an order whose answer a crash
        lost is still known; a request that never asked needs no lookup at all.
        """
        entries = await asyncio.to_thread(self._store.list_audit, request_id)
        attempts = [
            _order_attempt(entry.details.get("order"))
            for entry in entries
            if entry.action in ("order.requested", "order.placed")
        ]
        return max(attempts, default=0)

    async def _latest_order(self, request_id: str) -> tuple[int, SearchOrder | None]:
        """The newest order Microsoft has for this request, and its attempt number."""
        count = await self._orders_asked(request_id)
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
        claimed = await asyncio.to_thread(self._store.list_claims)
        for candidate in sorted(numbers, key=lambda n: n.telephone_number):
            number = candidate.telephone_number
            if (
                not candidate.can_serve_voice_applications
                or not number_in_area(number, request.country, request.area_code)
                or number in claimed
            ):
                continue
            if await asyncio.to_thread(self._store.claim_number, number, request.id):
                await self._save_result(request.id, telephone_number=number)
                await self.audit(request.id, "number.claimed", number=number, source="inventory")
                return number
        return None

    async def _follow_order(
        self, ctx: StageContext, request: Request, count: int, order: SearchOrder | None
    ) -> str:
        lost = 0
        while True:
            if order is None:
                count += 1
                name = order_name(request.id, count)
                await ctx.check_cancelled()
                order_id = await self._place_order(request, name)
                ctx.reset_backoff()
                # A new order always starts by searching: look only after a first wait.
                await ctx.pause(f"number order {name} is searching for numbers")
                order = await self._teams.get_search_order(order_id)
                continue
            if order.status is SearchOrderStatus.PENDING:
                await ctx.pause(f"number order {order.name} is still searching for numbers")
            elif order.status is SearchOrderStatus.RESERVED:
                number = await self._claim_ordered_number(request, order)
                try:
                    await self._teams.complete_search_order(order.id)
                except BadRequest as exc:
                    # It expired or was cancelled just now; the next read says which.
                    logger.info("%s: completing %s failed: %s", request.id, order.name, exc)
                else:
                    # Completed: the number now shows in the inventory, which says enough.
                    await self._audit_once(request.id, "order.completed", order=order.name)
                    await self._wait_in_inventory(ctx, number)
                    return f"{number}, newly ordered ({order.name})"
            elif order.status is SearchOrderStatus.COMPLETED:
                number = await self._claim_ordered_number(request, order)
                await self._audit_once(request.id, "order.completed", order=order.name)
                await self._wait_in_inventory(ctx, number)
                return f"{number}, newly ordered ({order.name})"
            elif order.status in (SearchOrderStatus.EXPIRED, SearchOrderStatus.CANCELLED):
                await self._release_claims(request.id, _order_numbers(order))
                await self.audit(
                    request.id,
                    "order.lost",
                    AuditResult.FAILED,
                    order=order.name,
                    status=order.status.value,
                )
                lost += 1
                if lost >= _MAX_ORDERS_PER_PASS:
                    raise NeedsHuman(
                        f"Number reservations ended {lost} times ({order.status.value.lower()}) "
                        "before PhoneDesk could complete them. Retry to order again, or cancel."
                    )
                order = None
                continue
            else:
                await self._release_claims(request.id, _order_numbers(order))
                await self.audit(
                    request.id,
                    "order.failed",
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
            order = await self._teams.get_search_order(order.id)

    async def _place_order(self, request: Request, name: str) -> str:
        await self.audit(request.id, "order.requested", order=name)
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
        await self._save_result(request.id, order_id=order_id)
        await self.audit(request.id, "order.placed", order=name, order_id=order_id)
        return order_id

    async def _claim_ordered_number(self, request: Request, order: SearchOrder) -> str:
        """Claim before completing, so no other request takes it from the inventory."""
        numbers = _order_numbers(order)
        if not numbers:
            raise NeedsHuman(f"Number order {order.name} holds no numbers. Retry, or cancel.")
        held = set(await self._claims(request.id))
        number = next((n for n in numbers if n in held), numbers[0])
        if number not in held and not await asyncio.to_thread(
            self._store.claim_number, number, request.id
        ):
            holder = await asyncio.to_thread(self._store.claimed_by, number)
            raise NeedsHuman(
                f"{number}, reserved by order {order.name}, is already held by request "
                f"{holder} in PhoneDesk's store. Check both requests, then Retry or cancel."
            )
        await self._audit_once(request.id, "number.claimed", number=number, source=order.name)
        await self._save_result(request.id, order_id=order.id, telephone_number=number)
        return number

    async def _release_claims(self, request_id: str, numbers: list[str]) -> None:
        for number in numbers:
            if await asyncio.to_thread(self._store.release_claim, number, request_id):
                await self.audit(request_id, "number.released", number=number)

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
        current = await self._request(request.id)
        if current.result.account_id is not None:
            message += (
                f" The resource account {current.result.upn}, created while the number was "
                "searched for, is kept for the retry; cancelling removes it."
            )
        return message

    # -- stage 2: create the resource account -----------------------------------------------

    def _application_id(self, request: Request) -> str:
        return request.account_type.application_id(self._settings.effective_resource_account_app_id)

    async def create_account(self, ctx: StageContext) -> str:
        request = await self._request(ctx.request_id)
        app_id = self._application_id(request)
        upn = request.result.upn or await self._choose_upn(request)
        account_id = request.result.account_id
        if account_id is None:
            upn, account_id = await self._find_or_create_account(ctx, request, upn, app_id)
        else:
            # A crash may have come between recording the new account and auditing it.
            await self._audit_once(request.id, "account.created", upn=upn, account_id=account_id)
        await self._wait_ready(ctx, account_id, upn, app_id)
        # Sync as soon as the account is associated, so that Teams picks it up while the
        # license is assigned, instead of making stage 4 wait for it.
        await self._teams.sync_application_instance(account_id)
        await self._audit_once(request.id, "account.synced", account_id=account_id)
        return upn

    async def _upns_of_others(self, request_id: str) -> set[str]:
        others = await asyncio.to_thread(self._store.request_names, _HOLDS_UPN)
        return {r.upn for r in others if r.request_id != request_id and r.upn}

    async def _choose_upn(self, request: Request, also_taken: frozenset[str] = frozenset()) -> str:
        taken = await self._upns_of_others(request.id) | also_taken
        try:
            upn = derive_upn(request.display_name, self._settings.effective_upn_domain, taken=taken)
        except ValueError as exc:
            raise NeedsHuman(
                f"Cannot make a user name from '{request.display_name}': {exc}. "
                "Cancel and request again with another display name.",
                retryable=False,
            ) from exc
        await self._save_result(request.id, upn=upn)
        return upn

    async def _held_by_other_request(self, request_id: str, upn: str) -> bool:
        return upn.lower() in {u.lower() for u in await self._upns_of_others(request_id)}

    async def _asked_to_create(self, request_id: str, upn: str) -> bool:
        """Whether our latest word on ``upn`` is a create request rather than a refusal.

        The request is written before the POST, so an account found after a crash that
        lost the answer is still known to be ours; a refusal after it says the account
        there belongs to someone else.
        """
        entries = await asyncio.to_thread(self._store.list_audit, request_id)
        for entry in reversed(entries):
            if entry.details.get("upn") != upn:
                continue
            if entry.action == "account.create.requested":
                return True
            if entry.action == "account.create.refused":
                return False
        return False

    async def _is_ours(
        self, request: Request, upn: str, instance: ApplicationInstance, app_id: str
    ) -> bool:
        if (instance.application_id or "").lower() != app_id.lower():
            return False
        if request.result.account_id == instance.object_id:
            return True
        return await self._asked_to_create(request.id, upn)

    async def _find_or_create_account(
        self, ctx: StageContext, request: Request, upn: str, app_id: str
    ) -> tuple[str, str]:
        invisible = False
        while True:
            asked_before = await self._asked_to_create(request.id, upn)
            # Only an account we asked for before can already be ours; any other account
            # under this name shows up as a conflict when we create ours.
            instance = None
            if asked_before or invisible:
                instance = await self._teams.find_application_instance(upn)
            if instance is not None:
                if await self._is_ours(request, upn, instance, app_id):
                    await self._save_result(request.id, upn=upn, account_id=instance.object_id)
                    await self._audit_once(
                        request.id, "account.created", upn=upn, account_id=instance.object_id
                    )
                    return upn, instance.object_id
                upn = await self._another_upn_or_fail(request, upn)
                invisible = False
                continue
            if invisible:
                await ctx.pause(f"{upn} exists but is not visible yet (directory replication)")
                continue
            if not asked_before:
                await self.audit(
                    request.id, "account.create.requested", upn=upn, application_id=app_id
                )
            try:
                with _calls_ordered(ctx, long_pole=True):
                    created = await self._teams.create_application_instance(
                        upn=upn, display_name=request.display_name, application_id=app_id
                    )
            except Conflict as exc:
                if exc.code != CODE_OBJECT_CONFLICT:
                    raise
                if asked_before:
                    # Most likely our own earlier attempt, whose answer was lost.
                    invisible = True
                    continue
                upn = await self._another_upn_or_fail(request, upn)
                continue
            await self._account_created(request.id, upn, created.object_id)
            return upn, created.object_id

    async def _account_created(self, request_id: str, upn: str, account_id: str) -> None:
        _remember(self._created, account_id, self._monotonic())
        await self._save_result(request_id, upn=upn, account_id=account_id)
        await self.audit(request_id, "account.created", upn=upn, account_id=account_id)

    async def _another_upn_or_fail(self, request: Request, upn: str) -> str:
        if await self._held_by_other_request(request.id, upn):
            return await self._choose_upn(request, also_taken=frozenset({upn}))
        await self.audit(request.id, "account.create.refused", AuditResult.REFUSED, upn=upn)
        alternative = await self._free_alternative(request.id, upn)
        hint = f" ({alternative} is free)" if alternative else ""
        raise NeedsHuman(
            f"The user name {upn} is taken by an account PhoneDesk didn't create. Rename or "
            "delete that account in the Microsoft 365 admin center and Retry, or cancel and "
            f"request again with another display name{hint}.",
            code=CODE_OBJECT_CONFLICT,
        )

    async def _free_alternative(self, request_id: str, upn: str) -> str | None:
        for candidate in upn_alternatives(upn):
            if await self._held_by_other_request(request_id, candidate):
                continue
            if await self._graph.find_user(candidate) is None:
                return candidate
        return None

    async def _wait_ready(self, ctx: StageContext, account_id: str, upn: str, app_id: str) -> None:
        """Setting the ApplicationId succeeds only once the account has propagated.

        Until then the call says "not ready", or "not found" while the new account has not
        even replicated; both are waited out here, one call per look. An account created
        here is first looked at when recent accounts were ready (see ``DelayFloor``).
        """
        ctx.reset_backoff()
        created = self._created.get(account_id)
        if created is not None:
            await self._hold_for_first_look(
                ctx,
                self.propagation,
                created,
                f"{upn} is being set up across Microsoft 365",
                at_least=ctx.poll_interval_s,
            )
        while True:
            try:
                await self._teams.set_application_id(account_id, app_id)
                if created is not None:
                    self.propagation.observed(self._monotonic() - created)
                    self._created.pop(account_id, None)
                return
            except NotFound:
                reason = f"{upn} is not visible yet (directory replication)"
            except BadRequest as exc:
                if exc.code != CODE_ACCOUNT_NOT_READY:
                    raise
                reason = f"{upn} is still being set up across Microsoft 365"
            await ctx.pause(reason)

    # -- stage 3: license -----------------------------------------------------------------

    def _sku_preference(self) -> list[str]:
        ordered = [self._settings.preferred_sku, *self._settings.fallback_skus]
        return list(dict.fromkeys(part.upper() for part in ordered if part))

    async def assign_license(self, ctx: StageContext) -> str:
        request = await self._request(ctx.request_id)
        account_id = _require(request.result.account_id, "account")
        upn = request.result.upn or account_id
        user = await self._graph.get_user(account_id)
        if user.usage_location != request.country:
            await self._set_usage_location(ctx, account_id, upn, request.country)
        else:
            # Set by an earlier pass that a crash stopped before it could audit it.
            await self._audit_once(
                request.id, "usage_location.set", account_id=account_id, country=request.country
            )
        skus = {
            sku.sku_part_number.upper(): sku for sku in await self._graph.list_subscribed_skus()
        }
        preference = self._sku_preference()
        for part in preference:
            sku = skus.get(part)
            if sku is not None and user.has_license(sku.sku_id):
                await self._save_result(
                    request.id, sku_id=sku.sku_id, sku_part_number=sku.sku_part_number
                )
                await self._audit_once(request.id, "license.assigned", sku=sku.sku_part_number)
                return f"{sku.sku_part_number} (already assigned)"
        tried: list[str] = []
        for part in preference:
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
                    raise _NotYet(f"the usage location of {upn} is not applied yet") from exc
                raise
            await self._save_result(
                request.id, sku_id=sku.sku_id, sku_part_number=sku.sku_part_number
            )
            await self.audit(
                request.id, "license.assigned", sku=sku.sku_part_number, account_id=account_id
            )
            return sku.sku_part_number
        await self.audit(request.id, "license.unavailable", AuditResult.FAILED, tried=list(tried))
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
        await self._audit_once(
            ctx.request_id, "usage_location.set", account_id=account_id, country=country
        )

    # -- stage 4: bind --------------------------------------------------------------------

    async def bind_number(self, ctx: StageContext) -> str:
        request = await self._request(ctx.request_id)
        account_id = _require(request.result.account_id, "account")
        number = _require(request.result.telephone_number, "telephone number")
        upn = request.result.upn or account_id
        app_id = self._application_id(request)
        # Stage 2 associated and synced the account; look again only if that was not
        # recorded, or once an assignment has failed (someone may have changed it since).
        checked = not await self._has_audit(request.id, "account.synced", account_id=account_id)
        if checked:
            await self._associate_and_sync(ctx, account_id, upn, app_id)
        ctx.reset_backoff()
        synced = self._synced.get(account_id)
        if synced is not None:
            # An assignment tried before the sync reaches Teams fails, and costs a retry.
            await self._hold_for_first_look(
                ctx, self.sync, synced, f"{upn} is being synced to Teams"
            )
        while True:
            assignment = await self._graph.get_number_assignment(number)
            if (
                assignment.assignment_target_id == account_id
                and assignment.assignment_status == AssignmentStatus.VOICE_APPLICATION_ASSIGNED
            ):
                if assignment.activation_state in _PENDING_ACTIVATION:
                    await ctx.pause(f"{number} is {assignment.activation_state}")
                    continue
                await self._audit_once(
                    request.id, "number.bound", number=number, account_id=account_id
                )
                return f"{number} → {upn}"
            if assignment.assignment_status != AssignmentStatus.UNASSIGNED:
                raise NeedsHuman(
                    f"{number} is already assigned ({assignment.assignment_status}) to "
                    f"{assignment.assignment_target_id}, not by PhoneDesk. Unassign it in the "
                    "Teams admin center and Retry, or cancel."
                )
            asked = self._monotonic()
            operation_id = await self._graph.assign_number(
                number,
                account_id,
                assignment.number_type or InventoryNumberType.CALLING_PLAN,
            )
            await self._save_result(request.id, operation_id=operation_id)
            await self.audit(
                request.id,
                "number.assign.requested",
                number=number,
                account_id=account_id,
                operation_id=operation_id,
            )
            operation = await self._wait_operation(
                ctx, operation_id, started=asked, floor=self.assignment
            )
            synced = self._synced.get(account_id)
            if operation.status is OperationStatus.SUCCEEDED:
                if synced is not None:
                    self.sync.observed(asked - synced)
                    del self._synced[account_id]
                continue
            if synced is not None:
                # Mostly the sync had not reached Teams yet: tried too early.
                self.sync.too_early(asked - synced)
            detail = (
                operation.failure_detail or f"operation {operation_id} {operation.status.value}"
            )
            await self.audit(
                request.id, "number.assign.failed", AuditResult.FAILED, number=number, detail=detail
            )
            # Mostly sync lag or a license not seen yet, which the service tells us to wait out.
            await ctx.pause(f"assignNumber failed: {detail}")
            if not checked:
                await self._associate_and_sync(ctx, account_id, upn, app_id)
                checked = True

    async def _associate_and_sync(
        self, ctx: StageContext, account_id: str, upn: str, app_id: str
    ) -> None:
        ctx.reset_backoff()
        while True:
            try:
                instance = await self._teams.get_application_instance(account_id)
                if (instance.application_id or "").lower() != app_id.lower():
                    await self._teams.set_application_id(account_id, app_id)
                await self._teams.sync_application_instance(account_id)
                _remember(self._synced, account_id, self._monotonic())
                break
            except BadRequest as exc:
                if exc.code != CODE_ACCOUNT_NOT_READY:
                    raise
            await ctx.pause(f"{upn} is still being set up across Microsoft 365")
        await self._audit_once(ctx.request_id, "account.synced", account_id=account_id)

    async def _hold_for_first_look(
        self,
        ctx: StageContext,
        floor: DelayFloor,
        started: float,
        reason: str,
        *,
        at_least: float = 0.0,
        cancellable: bool = True,
    ) -> None:
        """Wait until ``floor`` says to look at what ``started`` (monotonic time) then."""
        remaining = floor.first_look(at_least) - (self._monotonic() - started)
        if remaining > 0:
            await ctx.hold(reason, remaining, cancellable=cancellable)

    async def _wait_operation(
        self,
        ctx: StageContext,
        operation_id: str,
        *,
        started: float | None = None,
        floor: DelayFloor | None = None,
    ) -> LongRunningOperation:
        """Poll an operation to its end: one that started is never abandoned half-way.

        With a ``floor`` and the (monotonic) time the operation was ``started``, the first
        look waits for what the floor has learned, and a success teaches it.
        """
        ctx.reset_backoff()
        if floor is not None and started is not None:
            await self._hold_for_first_look(
                ctx, floor, started, f"operation {operation_id} is running", cancellable=False
            )
        while True:
            looked = self._monotonic()
            operation = await self._graph.get_operation(operation_id)
            if floor is not None and started is not None:
                # The age when the look *started* is what is learned: under a rate limit a
                # call may wait its turn for seconds, and what is wanted is a look in time.
                age = looked - started
                if not operation.finished:
                    floor.too_early(age)
                elif operation.status is OperationStatus.SUCCEEDED:
                    floor.observed(age)
            if operation.finished:
                return operation
            await ctx.pause(
                f"operation {operation_id} is {operation.status.value}", cancellable=False
            )

    # -- undo -------------------------------------------------------------------------------

    async def undo(self, ctx: StageContext, undone: list[str], cancel_orders: bool) -> str:
        """Unbind, unlicense and delete the account, cancel live orders, release claims.

        Every part looks before it acts, so a second pass after a crash repeats nothing.
        """
        request = await self._request(ctx.request_id)
        account_id = request.result.account_id or await self._unrecorded_account(ctx, request)
        claims = await self._claims(request.id)
        number = request.result.telephone_number or (claims[0] if claims else None)
        if account_id is not None:
            if number is not None:
                await self._unbind(ctx, request.id, number, account_id, undone)
            if not await self._has_audit(request.id, "account.deleted", account_id=account_id):
                await self._remove_account(ctx, request.id, account_id, undone)
        if cancel_orders:
            for attempt in range(1, await self._orders_asked(request.id) + 1):
                order = await self._teams.find_search_order_by_name(order_name(request.id, attempt))
                if order is not None and order.status in _LIVE_ORDER:
                    await self._teams.cancel_search_order(order.id)
                    await self.audit(request.id, "order.cancelled", order=order.name)
                    undone.append(f"cancelled number order {order.name}")
        for claimed in claims:
            if await asyncio.to_thread(self._store.release_claim, claimed, request.id):
                await self.audit(request.id, "number.released", number=claimed)
                undone.append(f"released {claimed}")
        return "undone"

    async def _unrecorded_account(self, ctx: StageContext, request: Request) -> str | None:
        """An account whose creation was asked for but whose id a crash kept from the store."""
        upn = request.result.upn
        if upn is None or not await self._asked_to_create(request.id, upn):
            return None
        app_id = self._application_id(request)
        for _ in range(_GONE_AFTER_POLLS):
            instance = await self._teams.find_application_instance(upn)
            if instance is not None:
                if not await self._is_ours(request, upn, instance, app_id):
                    return None
                await self._save_result(request.id, account_id=instance.object_id)
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
        operation = await self._wait_operation(ctx, operation_id)
        if operation.status is not OperationStatus.SUCCEEDED:
            detail = operation.failure_detail or operation.status.value
            await self.audit(
                request_id, "number.unbind", AuditResult.FAILED, number=number, detail=detail
            )
            raise _NotYet(f"unassigning {number} failed: {detail}")
        await self.audit(request_id, "number.unbound", number=number, account_id=account_id)
        undone.append(f"unassigned {number}")

    async def _remove_account(
        self, ctx: StageContext, request_id: str, account_id: str, undone: list[str]
    ) -> None:
        user = await self._graph.find_user(account_id)
        if user is not None:
            for assigned in user.assigned_licenses:
                await self._graph.remove_license(account_id, assigned.sku_id)
                await self.audit(
                    request_id, "license.removed", sku_id=assigned.sku_id, account_id=account_id
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
        gone_already = misses >= _GONE_AFTER_POLLS
        await self.audit(
            request_id, "account.deleted", account_id=account_id, already_gone=gone_already
        )
        undone.append(f"deleted account {user.user_principal_name if user else account_id}")


def _order_attempt(name: JsonValue) -> int:
    """The attempt number at the end of an ``order_name``; 0 for anything else."""
    if not isinstance(name, str):
        return 0
    _, _, attempt = name.rpartition("-")
    return int(attempt) if attempt.isdigit() else 0


def _order_numbers(order: SearchOrder) -> list[str]:
    return [n.telephone_number for n in order.telephone_numbers]


def _require(value: str | None, what: str) -> str:
    if value is None:
        raise NeedsHuman(
            f"PhoneDesk has no {what} recorded for this request; an earlier stage did not "
            "finish. Retry, or cancel."
        )
    return value


def _refusal_message(label: str, exc: ApiStatusError) -> str:
    message = (
        f"Microsoft 365 refused a call in {label}: HTTP {exc.status} {exc.code or ''}".rstrip()
    )
    message += f": {exc.message}"
    if isinstance(exc, Unauthorized | Forbidden):
        message += (
            " Check that PhoneDesk's app registration has the needed API permissions with "
            "admin consent, then Retry."
        )
    else:
        message += " Fix the cause, then Retry, or cancel."
    return message


def _remember(times: dict[str, float], key: str, at: float) -> None:
    """Note when something started, forgetting the oldest of those never seen done."""
    times[key] = at
    while len(times) > _CREATED_KEPT:
        del times[next(iter(times))]
