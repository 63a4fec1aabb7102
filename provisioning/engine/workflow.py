"""The durable provisioning workflow: wait for approval, run the four stages, compensate.

Why it is shaped like this (learned from dbos 3.4's source and a kill -9 spike):

- DBOS is a process-wide singleton: ``DBOS(config=…)``, ``DBOS.launch()``,
  ``DBOS.destroy()``. The decorators register functions in a registry that outlives
  ``destroy()``, so a process (or a test) can build a fresh DBOS on a fresh system database
  as often as it likes, provided it never destroys the registry.
- Clients, store and listener live on a ``DBOSConfiguredInstance`` (``ProvisioningEngine``)
  registered under an instance name, not in module globals. Each workflow records that
  name; recovery finds the instance by it, so a restarted worker must create its engine
  under the same name before ``DBOS.launch()``. Names are unique per process while
  registered, so the engine unregisters itself on close.
- On ``launch()`` DBOS re-enqueues the PENDING workflows of its executor id ("local" by
  default) and resumes them. An async workflow resumes on the event loop that was running
  when ``launch()`` was called (DBOS adopts it as its main loop). Our ``httpx.AsyncClient``
  is bound to the app's loop, so the engine launches DBOS from that loop.
- Replay: a step that finished is never run again; its recorded output is returned. The
  step that was running when the process was killed has no record and runs again from its
  start. Hence every stage is an idempotent pass (see ``stages.py``) that records what it
  created before moving on. Proven in the spike: SIGKILL inside a step, a new process on the
  same SQLite system database, and the workflow continued at that very step.
- Step outputs and exceptions are pickled into the system database. Steps here return
  JSON-safe dicts and report expected outcomes as values, never as exceptions, so the
  recorded history does not depend on class layouts.
- ``recv``/``set_event`` on SQLite are served by a polling listener
  (``notification_listener_polling_interval_sec``), so a message from any process reaches a
  waiting workflow within that interval. The store is the source of truth for decisions
  (compare-and-set); a message on the ``control`` topic only wakes the workflow, which then
  re-reads the store. A lost, late or duplicate message therefore changes nothing.
- Cancelling the asyncio task of a running workflow records nothing (DBOS lets
  ``CancelledError`` through), so the workflow stays PENDING and the next launch resumes it.
  That is how the engine shuts down.
- Waits that must survive restarts (approval timeout, retry/cancel after a failure) are
  durable ``recv`` timeouts measured from a recorded clock step. Waits inside a stage are
  plain polling bounded by a deadline counted from the stage's start as the store recorded
  it, so a re-run after a crash keeps the original deadline.
- Each stage is one step that records its start, runs the pass, and records its end, and
  each step publishes the changes it made. Every DBOS step costs writes to the system
  database; with one step per stage a request takes about 11 of them instead of 47, which
  is what let a hundred requests start at once without queueing on those writes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any, Final, Protocol

from dbos import DBOS, DBOSConfiguredInstance, SetWorkflowID

from provisioning.domain import (
    AuditAction,
    AuditResult,
    Failure,
    ProgressUpdate,
    Request,
    RequestStatus,
    Stage,
    StageEvent,
    StageState,
    StageStatus,
    utc_now,
)
from provisioning.microsoft.graph import GraphClient
from provisioning.microsoft.teams_admin import TeamsAdminClient
from provisioning.persistence.store import RequestNotFound, Store
from provisioning.settings import Settings
from provisioning.stages import (
    WORKFLOW_ACTOR,
    Provisioner,
    StageContext,
    StageOutcome,
    UndoOutcome,
)

__all__ = [
    "CONTROL_TOPIC",
    "PROGRESS_EVENT",
    "ProgressListener",
    "ProvisioningEngine",
    "provisioning_workflow_id",
    "release_workflow_id",
]

logger = logging.getLogger(__name__)

CONTROL_TOPIC: Final = "control"
PROGRESS_EVENT: Final = "progress"
# A workflow parked after a failure re-checks the store this often even if no message came.
_IDLE_WAIT_S: Final = 24 * 3600.0
_LISTENER_TIMEOUT_S: Final = 30.0


def _status_of(update: dict[str, Any]) -> RequestStatus:
    return RequestStatus(update["request"]["status"])


def provisioning_workflow_id(request_id: str) -> str:
    return f"phonedesk-provision-{request_id}"


def release_workflow_id(request_id: str) -> str:
    return f"phonedesk-release-{request_id}"


class ProgressListener(Protocol):
    """Told of every stage and status change; the bot updates its cards from this.

    A listener that raises or hangs is logged and skipped; it never fails provisioning.
    """

    async def on_progress(self, update: ProgressUpdate) -> None: ...


@DBOS.dbos_class()
class ProvisioningEngine(DBOSConfiguredInstance):
    """The workflows and steps, with the clients and the store they act through."""

    def __init__(
        self,
        instance_name: str,
        *,
        settings: Settings,
        graph: GraphClient,
        teams_admin: TeamsAdminClient,
        store: Store,
        listener: ProgressListener | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._listener = listener
        self._provisioner = Provisioner(settings, graph, teams_admin, store)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._wakeups: dict[str, asyncio.Event] = {}
        self._rng = random.Random()
        super().__init__(instance_name)

    # -- used by the service ----------------------------------------------------------------

    async def start_provisioning(self, request_id: str) -> None:
        """Start the request's workflow; a second start of the same request is a no-op."""
        with SetWorkflowID(provisioning_workflow_id(request_id)):
            await DBOS.start_workflow_async(self.provision, request_id)

    async def start_release(self, request_id: str, actor: str) -> None:
        with SetWorkflowID(release_workflow_id(request_id)):
            await DBOS.start_workflow_async(self.release, request_id, actor)

    async def signal(self, request_id: str, action: str) -> None:
        """Wake the request's workflow to re-read the store after ``action``."""
        wakeup = self._wakeups.get(request_id)
        if wakeup is not None and action == "cancel":
            wakeup.set()
        await DBOS.send_async(
            provisioning_workflow_id(request_id), {"action": action}, CONTROL_TOPIC
        )

    async def latest_progress(self, request_id: str) -> ProgressUpdate | None:
        """The last update published for the request, by its release or else its provisioning."""
        for workflow_id in (release_workflow_id(request_id), provisioning_workflow_id(request_id)):
            payload = await DBOS.get_event_async(workflow_id, PROGRESS_EVENT, timeout_seconds=0)
            if payload is not None:
                return ProgressUpdate.model_validate(payload)
        return None

    async def shutdown(self) -> None:
        """Stop running workflows where they are; they resume on the next launch."""
        tasks = [task for task in self._tasks if not task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- workflows ----------------------------------------------------------------------------

    @DBOS.workflow()
    async def provision(self, request_id: str) -> str:
        self._adopt_current_task()
        status = await self._await_decision(request_id)
        if status is RequestStatus.APPROVED:
            status = _status_of(await self._begin(request_id))
        if status is RequestStatus.PROVISIONING:
            status = await self._run_stages(request_id)
        if status is RequestStatus.CANCELLED:
            await self._cancel(request_id)
        logger.info("%s: workflow ended %s", request_id, status.value)
        return status.value

    @DBOS.workflow()
    async def release(self, request_id: str, actor: str) -> str:
        self._adopt_current_task()
        deadline = await self._now() + self._settings.bind_deadline_s
        outcome = await self._undo(request_id, deadline, cancel_orders=False)
        await self._finish_release(request_id, actor, outcome)
        return UndoOutcome.model_validate(outcome).problem or "released"

    # -- workflow parts (deterministic: only steps, recv and events touch the world) ------------
    #
    # Each step that changes the request also publishes the change (the workflow event and
    # the listener) before it returns, rather than leaving that to steps of its own: every
    # step is a few writes to the system database, and a hundred workflows at once queue on
    # them. A step re-run after a crash publishes again, which a listener updating a card in
    # place takes in its stride.

    async def _await_decision(self, request_id: str) -> RequestStatus:
        deadline = await self._now() + self._settings.approval_timeout_s
        while True:
            seen = await self._check_decision(request_id)
            status = _status_of(seen)
            if status is not RequestStatus.PENDING_APPROVAL:
                return status
            remaining = deadline - seen["now"]
            if remaining <= 0:
                await self._expire(request_id)
                continue
            await DBOS.recv_async(CONTROL_TOPIC, timeout_seconds=remaining)

    async def _run_stages(self, request_id: str) -> RequestStatus:
        stages = list(Stage)
        first = 0
        while True:
            outcome = StageOutcome(kind="done")
            for stage in stages[first:]:
                outcome = StageOutcome.model_validate(
                    await self._run_stage(request_id, stage.value)
                )
                if outcome.kind != "done":
                    break
            if outcome.kind == "done":
                return _status_of(
                    await self._settle(request_id, RequestStatus.COMPLETED.value, None)
                )
            if outcome.kind == "cancelled":
                return RequestStatus.CANCELLED
            failure = outcome.failure
            assert failure is not None
            update = await self._settle(
                request_id, RequestStatus.FAILED.value, failure.model_dump(mode="json")
            )
            status = _status_of(update)
            if status is RequestStatus.FAILED:
                status = await self._await_retry(request_id)
            if status is not RequestStatus.PROVISIONING:
                return status
            first = stages.index(failure.stage)

    async def _await_retry(self, request_id: str) -> RequestStatus:
        while True:
            await DBOS.recv_async(CONTROL_TOPIC, timeout_seconds=_IDLE_WAIT_S)
            status = _status_of(await self._check_retry(request_id))
            if status is not RequestStatus.FAILED:
                return status

    async def _cancel(self, request_id: str) -> None:
        deadline = await self._now() + self._settings.bind_deadline_s
        outcome = await self._undo(request_id, deadline, cancel_orders=True)
        await self._finish_cancel(request_id, outcome)

    def _stage_budget(self, stage: Stage) -> float:
        if stage is Stage.BIND_NUMBER:
            return self._settings.bind_deadline_s
        return self._settings.propagation_deadline_s

    def _adopt_current_task(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # -- steps ----------------------------------------------------------------------------------

    @DBOS.step()
    async def _now(self) -> float:
        return time.time()

    @DBOS.step()
    async def _check_decision(self, request_id: str) -> dict[str, Any]:
        """The request and the time now; a decision (a cancel aside) is published."""
        update = await self._snapshot_now(request_id)
        if _status_of(update) not in (RequestStatus.PENDING_APPROVAL, RequestStatus.CANCELLED):
            await self._publish(update)
        return {**update, "now": time.time()}

    @DBOS.step()
    async def _check_retry(self, request_id: str) -> dict[str, Any]:
        """The failed request now; a retry that started is published."""
        update = await self._snapshot_now(request_id)
        if _status_of(update) is RequestStatus.PROVISIONING:
            await self._publish(update)
        return update

    @DBOS.step()
    async def _expire(self, request_id: str) -> None:
        expired = await asyncio.to_thread(
            self._store.transition,
            request_id,
            RequestStatus.PENDING_APPROVAL,
            RequestStatus.EXPIRED,
        )
        if expired is not None:
            await self._provisioner.journal.audit(
                request_id,
                AuditAction.REQUEST_EXPIRED,
                timeout_s=self._settings.approval_timeout_s,
            )

    @DBOS.step()
    async def _begin(self, request_id: str) -> dict[str, Any]:
        started = await asyncio.to_thread(
            self._store.transition, request_id, RequestStatus.APPROVED, RequestStatus.PROVISIONING
        )
        if started is None:
            # Cancelled meanwhile: the cancellation is published when it is done.
            return await self._snapshot_now(request_id)
        await self._provisioner.journal.audit(request_id, AuditAction.PROVISIONING_STARTED)
        update = {"request": started.model_dump(mode="json")}
        await self._publish(update)
        return update

    @DBOS.step()
    async def _run_stage(self, request_id: str, stage: str) -> dict[str, Any]:
        """Run one stage's pass, with its start and its end recorded and published.

        The deadline counts from the stage's recorded start, so a pass re-run after a crash
        keeps it.
        """
        current = Stage(stage)
        started = await asyncio.to_thread(self._start_stage, request_id, current)
        await self._publish(started.model_dump(mode="json"))
        started_at = started.request.stage(current).started_at
        assert started_at is not None
        budget = self._stage_budget(current)
        ctx = self._context(
            started.request, started_at.timestamp() + budget, budget, cancellable=True
        )
        try:
            outcome = await self._provisioner.run(current, ctx)
        finally:
            self._wakeups.pop(request_id, None)
        logger.info("%s: %s %s %s", request_id, stage, outcome.kind, outcome.detail or "")
        ended: tuple[Stage, StageStatus, str | None, str | None]
        if outcome.kind == "done":
            ended = (current, StageStatus.DONE, outcome.detail, None)
        elif outcome.failure is not None:
            ended = (outcome.failure.stage, StageStatus.FAILED, None, outcome.failure.reason)
        else:
            # Cancelled: the cancellation marks every stage when it is done.
            return outcome.model_dump(mode="json")
        ended_update = await asyncio.to_thread(self._record_stage, request_id, *ended)
        await self._publish(ended_update.model_dump(mode="json"))
        return outcome.model_dump(mode="json")

    @DBOS.step()
    async def _settle(
        self, request_id: str, status: str, failure: dict[str, Any] | None
    ) -> dict[str, Any]:
        """Move a provisioning request to its outcome, unless a cancel got there first."""
        outcome = RequestStatus(status)
        reason = None if failure is None else Failure.model_validate(failure)
        settled = await asyncio.to_thread(
            lambda: self._store.transition(
                request_id, RequestStatus.PROVISIONING, outcome, failure=reason
            )
        )
        if settled is None:
            # Cancelled meanwhile: the cancellation is published when it is done.
            return await self._snapshot_now(request_id)
        if reason is None:
            await self._provisioner.journal.audit(request_id, AuditAction.PROVISIONING_COMPLETED)
        else:
            await self._provisioner.journal.audit(
                request_id,
                AuditAction.PROVISIONING_FAILED,
                AuditResult.FAILED,
                stage=reason.stage.value,
                reason=reason.reason,
                code=reason.code,
            )
        update = {"request": settled.model_dump(mode="json")}
        await self._publish(update)
        return update

    @DBOS.step()
    async def _undo(self, request_id: str, deadline: float, cancel_orders: bool) -> dict[str, Any]:
        ctx = self._context(
            await self._load(request_id),
            deadline,
            self._settings.bind_deadline_s,
            cancellable=False,
        )
        outcome = await self._provisioner.run_undo(ctx, cancel_orders=cancel_orders)
        if outcome.problem is not None:
            logger.warning("%s: undo incomplete: %s", request_id, outcome.problem)
        return outcome.model_dump(mode="json")

    @DBOS.step()
    async def _finish_cancel(self, request_id: str, outcome: dict[str, Any]) -> dict[str, Any]:
        undo = UndoOutcome.model_validate(outcome)

        def finish() -> dict[str, Any]:
            request = self._require(request_id)
            now = utc_now()
            for state in request.stages:
                if state.status is StageStatus.CANCELLED:
                    continue
                started = state.status is not StageStatus.WAITING
                request = self._store.record_stage(
                    request_id,
                    state.model_copy(
                        update={
                            "status": StageStatus.CANCELLED,
                            "finished_at": now,
                            "detail": "undone by cancellation" if started else "not started",
                        }
                    ),
                )
            self._store.append_audit(
                actor=WORKFLOW_ACTOR,
                action=AuditAction.CANCELLATION_COMPENSATED,
                request_id=request_id,
                result=AuditResult.OK if undo.problem is None else AuditResult.FAILED,
                details={"undone": list(undo.undone), "problem": undo.problem},
            )
            return {"request": request.model_dump(mode="json")}

        update = await asyncio.to_thread(finish)
        await self._publish(update)
        return update

    @DBOS.step()
    async def _finish_release(
        self, request_id: str, actor: str, outcome: dict[str, Any]
    ) -> dict[str, Any]:
        undo = UndoOutcome.model_validate(outcome)
        await asyncio.to_thread(
            lambda: self._store.append_audit(
                actor=actor,
                action=AuditAction.RELEASE_COMPLETED,
                request_id=request_id,
                result=AuditResult.OK if undo.problem is None else AuditResult.FAILED,
                details={"undone": list(undo.undone), "problem": undo.problem},
            )
        )
        update = {"request": (await self._load(request_id)).model_dump(mode="json")}
        await self._publish(update)
        return update

    # -- helpers (inside steps) -------------------------------------------------------------------

    async def _snapshot_now(self, request_id: str) -> dict[str, Any]:
        return {"request": (await self._load(request_id)).model_dump(mode="json")}

    def _start_stage(self, request_id: str, stage: Stage) -> ProgressUpdate:
        """Record the stage running, unless a crash stopped it mid-run: then as it was."""
        request = self._require(request_id)
        state = request.stage(stage)
        if state.status is StageStatus.RUNNING and state.started_at is not None:
            return ProgressUpdate(
                request=request, event=StageEvent.from_state(request_id, state, utc_now())
            )
        return self._record_stage(request_id, stage, StageStatus.RUNNING, None, None)

    def _record_stage(
        self,
        request_id: str,
        stage: Stage,
        status: StageStatus,
        detail: str | None,
        error: str | None,
    ) -> ProgressUpdate:
        now = utc_now()
        running = status is StageStatus.RUNNING
        state = StageState(
            stage=stage,
            status=status,
            # A stage that ends keeps the start it was recorded with.
            started_at=now if running else self._require(request_id).stage(stage).started_at,
            finished_at=None if running else now,
            detail=detail,
            error=error,
        )
        updated = self._store.record_stage(request_id, state)
        return ProgressUpdate(request=updated, event=StageEvent.from_state(request_id, state, now))

    async def _publish(self, update: dict[str, Any]) -> None:
        """Inside a step: set the progress event and tell the listener."""
        await DBOS.set_event_async(PROGRESS_EVENT, update)
        await self._notify_safely(update)

    async def _notify_safely(self, update: dict[str, Any]) -> None:
        if self._listener is None:
            return
        try:
            await asyncio.wait_for(
                self._listener.on_progress(ProgressUpdate.model_validate(update)),
                _LISTENER_TIMEOUT_S,
            )
        except Exception:
            logger.exception("progress listener failed; provisioning goes on")

    def _context(
        self, request: Request, deadline: float, budget_s: float, *, cancellable: bool
    ) -> StageContext:
        request_id = request.id
        wakeup = None
        if cancellable:
            wakeup = self._wakeups.setdefault(request_id, asyncio.Event())

        async def is_cancelled() -> bool:
            current = await asyncio.to_thread(self._store.get_request, request_id)
            return current is not None and current.status is RequestStatus.CANCELLED

        return StageContext(
            request_id,
            deadline=deadline,
            budget_s=budget_s,
            poll_interval_s=self._settings.poll_interval_s,
            poll_max_interval_s=self._settings.poll_max_interval_s,
            is_cancelled=is_cancelled if cancellable else None,
            wakeup=wakeup,
            # Oldest request first when an API throttles: a bulk run then finishes its
            # requests one after another instead of advancing all of them in lockstep.
            priority=request.created_at.timestamp(),
            rng=self._rng,
        )

    def _require(self, request_id: str) -> Request:
        request = self._store.get_request(request_id)
        if request is None:
            raise RequestNotFound(request_id)
        return request

    async def _load(self, request_id: str) -> Request:
        return await asyncio.to_thread(self._require, request_id)
