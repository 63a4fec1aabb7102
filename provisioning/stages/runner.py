"""Runs one stage, or the undo, until it is done, needs a person, or is cancelled.

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

import logging
import time
from collections.abc import Awaitable, Callable

from provisioning.domain import Failure, Stage
from provisioning.microsoft.errors import ApiStatusError, Throttled
from provisioning.microsoft.graph import GraphClient
from provisioning.microsoft.teams_admin import TeamsAdminClient
from provisioning.persistence.store import Store
from provisioning.settings import Settings
from provisioning.stages.account import Accounts
from provisioning.stages.acquire import NumberAcquisition
from provisioning.stages.bind import Binding
from provisioning.stages.context import StageContext, calls_ordered
from provisioning.stages.journal import Journal
from provisioning.stages.license import Licensing
from provisioning.stages.outcomes import (
    DeadlinePassed,
    NeedsHuman,
    StageCancelled,
    StageOutcome,
    UndoOutcome,
    describe,
    duration,
    is_transient,
    refusal_message,
)
from provisioning.stages.timing import Timings
from provisioning.stages.tools import StageTools
from provisioning.stages.undo import Undo

__all__ = ["Provisioner"]

logger = logging.getLogger(__name__)

_Body = Callable[[StageContext], Awaitable[str]]


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
        self.journal = Journal(store)
        self.timings = Timings(monotonic)
        tools = StageTools(settings, graph, teams_admin, self.journal, self.timings)
        self.accounts = Accounts(tools)
        acquisition = NumberAcquisition(tools, self.accounts)
        self._undo = Undo(tools, self.accounts, acquisition)
        self._bodies: dict[Stage, _Body] = {
            Stage.ACQUIRE_NUMBER: acquisition.acquire_number,
            Stage.CREATE_ACCOUNT: self.accounts.create_account,
            Stage.ASSIGN_LICENSE: Licensing(tools).assign_license,
            Stage.BIND_NUMBER: Binding(tools, self.accounts).bind_number,
        }

    async def run(self, stage: Stage, ctx: StageContext) -> StageOutcome:
        """One run of a stage, until it is done, needs a person, or is cancelled."""
        try:
            with calls_ordered(ctx):
                detail = await _until_settled(stage.label, ctx, self._bodies[stage])
        except StageCancelled:
            return StageOutcome(kind="cancelled")
        except NeedsHuman as exc:
            failure = Failure(
                stage=stage, reason=exc.reason, retryable=exc.retryable, code=exc.code
            )
            return StageOutcome(kind="failed", failure=failure)
        except DeadlinePassed as exc:
            reason = (
                f"{stage.label} did not finish within {duration(ctx.budget_s)}: "
                f"{exc.last_problem}. Retry to keep waiting, or cancel."
            )
            return _failed(stage, reason)
        except ApiStatusError as exc:
            return _failed(stage, refusal_message(stage.label, exc), code=exc.code)
        except Exception as exc:
            # A bug or an answer nobody planned for; a person must look before retrying.
            logger.exception("%s: %s failed unexpectedly", ctx.request_id, stage.label)
            return _failed(
                stage, f"{stage.label} failed unexpectedly: {describe(exc)}. Retry, or cancel."
            )
        return StageOutcome(kind="done", detail=detail)

    async def run_undo(self, ctx: StageContext, *, cancel_orders: bool) -> UndoOutcome:
        """Remove what the request created; keeps going through transient trouble."""
        undone: list[str] = []
        try:
            with calls_ordered(ctx):
                await _until_settled(
                    "Undo", ctx, lambda c: self._undo.undo(c, undone, cancel_orders)
                )
        except DeadlinePassed as exc:
            return UndoOutcome(undone=undone, problem=f"gave up waiting: {exc.last_problem}")
        except NeedsHuman as exc:
            return UndoOutcome(undone=undone, problem=exc.reason)
        except Exception as exc:
            logger.exception("%s: undo failed", ctx.request_id)
            return UndoOutcome(undone=undone, problem=describe(exc))
        return UndoOutcome(undone=undone)


def _failed(stage: Stage, reason: str, *, code: str | None = None) -> StageOutcome:
    return StageOutcome(
        kind="failed", failure=Failure(stage=stage, reason=reason, retryable=True, code=code)
    )


async def _until_settled(label: str, ctx: StageContext, body: _Body) -> str:
    while True:
        await ctx.check_cancelled()
        try:
            return await body(ctx)
        except Exception as exc:
            if not is_transient(exc):
                raise
            retry_after = exc.retry_after if isinstance(exc, ApiStatusError) else None
            logger.info("%s: %s will try again: %s", ctx.request_id, label, describe(exc))
            if isinstance(exc, Throttled):
                await ctx.wait_out_throttling(describe(exc), retry_after)
            else:
                await ctx.pause(describe(exc), at_least=retry_after or 0.0)
