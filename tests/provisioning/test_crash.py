"""Crash test: a worker process is SIGKILLed inside each of the four stages, then restarted.

The worker (``crash_worker.py``) is the real engine in its own process, configured from
the environment like the server. The simulator runs in this process behind a kill switch,
so the worker dies at the worst moment of each stage: the tenant has carried out the call
and the worker never hears the answer. Each new worker resumes the workflows on the same
data directory. Exactly-once is judged by the simulator's side-effect counters, read over
HTTP, never by what PhoneDesk believes it did.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler

from provisioning.domain import NumberRequest, Request, RequestStatus, Stage, StageStatus
from provisioning.engine.launch import open_engine
from provisioning.microsoft.connect import connect_microsoft
from provisioning.persistence.store import Store
from provisioning.settings import Settings
from provisioning.simulator.app import SIMULATOR, create_simulator_app
from provisioning.simulator.errors import SimError
from provisioning.simulator.wire import (
    ADMIN_PREFIX,
    CODE_SERVICE_UNAVAILABLE,
    GRAPH_PREFIX,
    GRAPH_ROUTES,
    ROUTES,
    TEAMS_PREFIX,
)
from provisioning.stages import order_name
from tests.provisioning.conftest import APPROVER, REQUESTER, make_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
# Generous: a worker needs a second or two to start on a busy two-core machine.
KILL_WAIT_S = 60.0
FINISH_WAIT_S = 60.0
EXIT_WAIT_S = 10.0
LOG_TAIL_LINES = 25
IN_FLIGHT = frozenset(
    {RequestStatus.PENDING_APPROVAL, RequestStatus.APPROVED, RequestStatus.PROVISIONING}
)

# One number comes from the tenant's inventory (425), the other is ordered (206 has none).
FROM_INVENTORY = NumberRequest(country="US", area_code="425", display_name="Crash Inventory")
FROM_ORDER = NumberRequest(country="US", area_code="206", display_name="Crash Order")


@dataclass(frozen=True)
class KillPoint:
    stage: Stage
    method: str
    route: str
    moment: str


# In the order a request meets them; each new worker is killed at the next one.
KILL_POINTS = (
    KillPoint(
        # Stage 1 creates the account before it looks for a number, so that its
        # propagation runs meanwhile; stage 2 then only waits for it.
        Stage.ACQUIRE_NUMBER,
        "POST",
        TEAMS_PREFIX + ROUTES.application_instances,
        "the account is created and its id never comes back",
    ),
    KillPoint(
        Stage.ACQUIRE_NUMBER,
        "POST",
        TEAMS_PREFIX + ROUTES.search_orders,
        "the number order is placed and its id never comes back",
    ),
    KillPoint(
        Stage.CREATE_ACCOUNT,
        "PATCH",
        TEAMS_PREFIX + ROUTES.application_instance,
        "the worker waits for the account to propagate",
    ),
    KillPoint(
        Stage.ASSIGN_LICENSE,
        "POST",
        GRAPH_PREFIX + GRAPH_ROUTES.assign_license,
        "the license is assigned and the answer is lost",
    ),
    KillPoint(
        Stage.BIND_NUMBER,
        "POST",
        GRAPH_PREFIX + GRAPH_ROUTES.assign_number,
        "the assignment is started and its operation id never comes back",
    ),
)


@dataclass(frozen=True)
class Kill:
    point: KillPoint
    subject: str
    """The UPN or order name the fatal call was about."""


class KillSwitch:
    """Simulator middleware: SIGKILLs the worker once the tenant has done the armed call.

    While ``closed``, Microsoft's APIs answer 503 and change nothing, so no process but a
    worker gets anything done in the tenant.
    """

    def __init__(self) -> None:
        self.closed = False
        self._armed: tuple[KillPoint, asyncio.subprocess.Process] | None = None
        self._fired: asyncio.Future[Kill] | None = None

    def arm(self, point: KillPoint, worker: asyncio.subprocess.Process) -> asyncio.Future[Kill]:
        self._armed = (point, worker)
        self._fired = asyncio.get_running_loop().create_future()
        return self._fired

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.closed and request.path.startswith((GRAPH_PREFIX, TEAMS_PREFIX)):
            raise SimError(503, CODE_SERVICE_UNAVAILABLE, "closed for the test", retry_after_s=1.0)
        armed = self._armed
        resource = request.match_info.route.resource
        if (
            armed is None
            or resource is None
            or request.method != armed[0].method
            or resource.canonical != armed[0].route
        ):
            return await handler(request)
        self._armed = None
        point, worker = armed
        body = await request.json() if request.body_exists else None
        try:
            return await handler(request)
        finally:
            with contextlib.suppress(ProcessLookupError):
                worker.send_signal(signal.SIGKILL)
            assert self._fired is not None
            self._fired.set_result(Kill(point, _subject(request, body)))


def _subject(request: web.Request, body: Any) -> str:
    fields: Mapping[str, Any] = body if isinstance(body, dict) else {}
    if "name" in fields:
        return str(fields["name"])
    if "userPrincipalName" in fields:
        return str(fields["userPrincipalName"])
    object_id = next(iter(request.match_info.values()), None) or fields["assignmentTargetId"]
    user = request.app[SIMULATOR].state.users.get(object_id)
    return user.user_principal_name if user else str(object_id)


class Workers:
    """Worker processes started one after another on one data directory."""

    def __init__(self, env: Mapping[str, str], logs: Path) -> None:
        self._env = dict(env)
        self._logs = logs
        self._started: list[asyncio.subprocess.Process] = []

    async def start(self) -> asyncio.subprocess.Process:
        log = self._logs / f"worker-{len(self._started) + 1}.log"
        with log.open("wb") as stderr:
            worker = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.provisioning.crash_worker",
                env=self._env,
                # Away from the repository, so no stray .env reaches the worker's settings.
                cwd=self._logs,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self._started.append(worker)
        return worker

    def log_tail(self) -> str:
        if not self._started:
            return "(no worker started)"
        log = self._logs / f"worker-{len(self._started)}.log"
        lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        return f"--- {log.name} ---\n" + "\n".join(lines)

    async def kill_all(self) -> None:
        for worker in self._started:
            if worker.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.kill()
                await worker.wait()


@asynccontextmanager
async def running_workers(env: Mapping[str, str], logs: Path) -> AsyncIterator[Workers]:
    workers = Workers(env, logs)
    try:
        yield workers
    finally:
        await workers.kill_all()


def worker_env(settings: Settings, simulator_url: str) -> dict[str, str]:
    """The worker's environment: this test's settings, as PHONEDESK_* variables."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PHONEDESK_")}
    env.update(
        PYTHONPATH=str(REPO_ROOT),
        PHONEDESK_DATA_DIR=str(settings.data_dir),
        PHONEDESK_SIMULATOR_URL=simulator_url,
        PHONEDESK_SIMULATOR__TIME_SCALE=str(settings.simulator.time_scale),
        PHONEDESK_APPROVERS=",".join(settings.approvers),
        PHONEDESK_POLL_INTERVAL_S=str(settings.poll_interval_s),
        PHONEDESK_POLL_MAX_INTERVAL_S=str(settings.poll_max_interval_s),
        PHONEDESK_PROPAGATION_DEADLINE_S=str(settings.propagation_deadline_s),
        PHONEDESK_BIND_DEADLINE_S=str(settings.bind_deadline_s),
        PHONEDESK_APPROVAL_TIMEOUT_S=str(settings.approval_timeout_s),
    )
    return env


async def submit_and_approve(
    settings: Settings, store: Store, specs: list[NumberRequest]
) -> list[Request]:
    """Submit and approve with an engine of our own, as the CLI does without a server.

    Our engine stops right after, leaving the workflows to the worker.
    """
    async with (
        connect_microsoft(settings) as microsoft,
        open_engine(settings, microsoft, store) as service,
    ):
        requests = []
        for spec in specs:
            submitted = await service.submit(REQUESTER, spec)
            assert submitted.ok, submitted.message
            assert submitted.request is not None
            approved = await service.approve(submitted.request.id, APPROVER)
            assert approved.ok, approved.message
            requests.append(submitted.request)
        return requests


async def load(store: Store, requests: list[Request]) -> list[Request]:
    found = [await asyncio.to_thread(store.get_request, r.id) for r in requests]
    assert all(r is not None for r in found)
    return [r for r in found if r is not None]


async def describe(store: Store, requests: list[Request], workers: Workers) -> str:
    lines = []
    for request in await load(store, requests):
        stages = ", ".join(f"{s.stage.value}={s.status.value}" for s in request.stages)
        lines.append(f"{request.id} {request.status.value}: {stages} {request.failure or ''}")
    return "\n".join(lines) + "\n" + workers.log_tail()


def owner_of(subject: str, requests: list[Request]) -> Request:
    for request in requests:
        if subject in (request.result.upn, order_name(request.id, 1)):
            return request
    raise AssertionError(f"no request owns {subject!r}")


async def kill_at(
    point: KillPoint,
    switch: KillSwitch,
    workers: Workers,
    store: Store,
    requests: list[Request],
) -> Kill:
    worker = await workers.start()
    fired = switch.arm(point, worker)
    exited = asyncio.ensure_future(worker.wait())
    either: set[asyncio.Future[Any]] = {fired, exited}
    try:
        await asyncio.wait(either, timeout=KILL_WAIT_S, return_when=asyncio.FIRST_COMPLETED)
    finally:
        exited.cancel()
    if not fired.done():
        what = "exited on its own" if worker.returncode is not None else "never got there"
        raise AssertionError(
            f"worker {what} while waiting to kill it when {point.moment} "
            f"({point.method} {point.route}):\n{await describe(store, requests, workers)}"
        )
    kill = fired.result()
    async with asyncio.timeout(EXIT_WAIT_S):
        assert await worker.wait() == -signal.SIGKILL
    return kill


async def finish(workers: Workers, store: Store, requests: list[Request]) -> list[Request]:
    await workers.start()
    try:
        async with asyncio.timeout(FINISH_WAIT_S):
            while True:
                current = await load(store, requests)
                if not any(r.status in IN_FLIGHT for r in current):
                    return current
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(
            f"requests did not finish after the last restart:\n"
            f"{await describe(store, requests, workers)}"
        ) from None


def _settings(tmp_path: Path, *, simulator_url: str | None) -> Settings:
    return make_settings(
        tmp_path / "data",
        simulator_url=simulator_url,
        # At this time scale a restart of a few seconds lasts simulated hours; a reservation
        # must outlive it, as 16 minutes outlive a real restart.
        simulator={"reservation_expiry_s": 24 * 3600.0},
        # Deadlines are kept across restarts, so they must cover several of them.
        propagation_deadline_s=300.0,
        bind_deadline_s=300.0,
        approval_timeout_s=3600.0,
    )


async def test_a_worker_killed_inside_every_stage_still_provisions_everything_exactly_once(
    tmp_path: Path,
) -> None:
    assert {point.stage for point in KILL_POINTS} == set(Stage)
    switch = KillSwitch()
    simulator_app = create_simulator_app(_settings(tmp_path, simulator_url=None).simulator)
    simulator_app.middlewares.append(switch.middleware)
    async with TestServer(simulator_app, host="127.0.0.1") as simulator:
        simulator_url = str(simulator.make_url("")).rstrip("/")
        settings = _settings(tmp_path, simulator_url=simulator_url)
        with Store(settings.effective_database_url) as store:
            # Our own engine may carry a workflow on between the approval and its stop; a
            # closed tenant keeps it from getting anywhere, so the workers meet every kill point.
            switch.closed = True
            requests = await submit_and_approve(settings, store, [FROM_INVENTORY, FROM_ORDER])
            switch.closed = False
            logs = tmp_path / "logs"
            logs.mkdir()
            async with running_workers(worker_env(settings, simulator_url), logs) as workers:
                for point in KILL_POINTS:
                    kill = await kill_at(point, switch, workers, store, requests)
                    victim = owner_of(kill.subject, await load(store, requests))
                    assert victim.stage(point.stage).status is StageStatus.RUNNING, (
                        f"killed when {point.moment}, but {victim.id} was not inside "
                        f"{point.stage.value}:\n{await describe(store, requests, workers)}"
                    )
                done = await finish(workers, store, requests)
            audit = {r.id: await asyncio.to_thread(store.list_audit, r.id) for r in done}
            claims = await asyncio.to_thread(store.list_claims)

        async with httpx.AsyncClient(base_url=simulator_url + ADMIN_PREFIX) as admin:
            counters = (await admin.get("/counters")).json()
            tenant = (await admin.get("/state")).json()

    for request in done:
        assert request.status is RequestStatus.COMPLETED, request.failure
        assert all(stage.status is StageStatus.DONE for stage in request.stages)
    inventory, ordered = done
    assert inventory.result.telephone_number is not None
    assert inventory.result.telephone_number.startswith("+1425")
    assert ordered.result.telephone_number is not None
    assert ordered.result.telephone_number.startswith("+1206")

    assert counters == {
        "ordersCreated": 1,
        "ordersCompleted": 1,
        "ordersCancelled": 0,
        "accountsCreated": 2,
        "accountsDeleted": 0,
        "licensesAssigned": 2,
        "licensesRemoved": 0,
        "numbersBound": 2,
        "numbersUnbound": 0,
        "throttled": 0,
        "faultsInjected": 0,
    }
    resource_accounts = {
        account["id"]: account for account in tenant["accounts"] if account["isResourceAccount"]
    }
    assert set(resource_accounts) == {r.result.account_id for r in done}
    for request in done:
        account = resource_accounts[request.result.account_id]
        assert account["userPrincipalName"] == request.result.upn
        assert account["phoneNumber"] == request.result.telephone_number
        assert len(account["assignedLicenses"]) == 1
    assert [order["name"] for order in tenant["searchOrders"]] == [order_name(ordered.id, 1)]
    bound = [
        (number["telephoneNumber"], number["assignmentTargetId"])
        for number in tenant["numberAssignments"]
        if number["assignmentStatus"] == "voiceApplicationAssigned"
    ]
    assert sorted(bound) == sorted((r.result.telephone_number, r.result.account_id) for r in done)
    assert claims == {r.result.telephone_number: r.id for r in done}
    # The audit trail tells the same story, however much of it a crash interrupted.
    for request in done:
        actions = [entry.action for entry in audit[request.id]]
        assert actions.count("order.placed") == (1 if request is ordered else 0), actions
        for action in (
            "number.claimed",
            "account.create.requested",
            "account.created",
            "usage_location.set",
            "license.assigned",
            "number.bound",
            "provisioning.completed",
        ):
            assert actions.count(action) == 1, (action, actions)
