"""A running PhoneDesk engine against the in-process simulator, at a fast time scale.

``open_harness`` gives a test the service (the way the bot and the CLI use it), the
simulator's admin endpoint (counters, knobs, stock, licenses) and a listener that records
every progress update.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from provisioning.domain import (
    AuditEntry,
    NumberRequest,
    Person,
    ProgressUpdate,
    Request,
    RequestStatus,
)
from provisioning.engine.launch import EngineOptions, open_engine
from provisioning.microsoft.auth import SimulatorTokenProvider
from provisioning.microsoft.base import ApiClient
from provisioning.microsoft.graph import GRAPH_SCOPE, GraphClient
from provisioning.microsoft.retry import RetryPolicy
from provisioning.microsoft.teams_admin import TEAMS_ADMIN_SCOPE, TeamsAdminClient
from provisioning.persistence.store import Store
from provisioning.service import ProvisioningService
from provisioning.settings import EmbeddedSimulatorConfig, Settings
from provisioning.simulator.server import RunningSimulator, start_simulator

REQUESTER = Person(aad_object_id="11111111-aaaa-4000-8000-000000000001", display_name="Rita")
APPROVER = Person(aad_object_id="22222222-bbbb-4000-8000-000000000002", display_name="Abe")
SECOND_APPROVER = Person(aad_object_id="33333333-cccc-4000-8000-000000000003", display_name="Ann")
STRANGER = Person(aad_object_id="44444444-dddd-4000-8000-000000000004", display_name="Sam")

# Simulated seconds; at the time scale below 15-20 minutes of propagation take ~1 s and
# these shorter spans keep most tests well under a second of waiting.
FAST_PROPAGATION = {"propagation_min_s": 60.0, "propagation_max_s": 120.0}
TIME_SCALE = 0.001
WAIT_S = 30.0


class RecordingListener:
    """Keeps every progress update; can be told to fail, as a broken bot might."""

    def __init__(self, *, fail: bool = False) -> None:
        self.updates: list[ProgressUpdate] = []
        self.fail = fail

    async def on_progress(self, update: ProgressUpdate) -> None:
        self.updates.append(update)
        if self.fail:
            raise RuntimeError("the bot could not update its card")

    def stage_events(self, request_id: str) -> list[tuple[str, str]]:
        return [
            (u.event.stage.value, u.event.status.value)
            for u in self.updates
            if u.event is not None and u.request.id == request_id
        ]


@dataclass
class Microsoft:
    graph: GraphClient
    teams_admin: TeamsAdminClient
    calls: Counter[str] = field(default_factory=Counter)
    """Requests sent to each API ("graph", "teams"), retries included."""


@dataclass
class Harness:
    service: ProvisioningService
    store: Store
    settings: Settings
    simulator: RunningSimulator
    microsoft: Microsoft
    listener: RecordingListener
    admin: httpx.AsyncClient
    engine_stack: AsyncExitStack
    options: EngineOptions

    async def restart_engine(self) -> None:
        """Stop the engine mid-flight and start a new one on the same databases."""
        await self.engine_stack.aclose()
        self.engine_stack = AsyncExitStack()
        self.service = await self.engine_stack.enter_async_context(
            open_engine(
                self.settings, self.microsoft, self.store, self.listener, options=self.options
            )
        )

    async def counters(self) -> dict[str, int]:
        response = await self.admin.get("/counters")
        response.raise_for_status()
        counters: dict[str, int] = response.json()
        return counters

    async def knobs(self, **changes: Any) -> None:
        response = await self.admin.patch("/knobs", json=changes)
        response.raise_for_status()

    async def set_stock(self, area_code: str, quantity: int, country: str = "US") -> None:
        response = await self.admin.post(
            "/stock",
            json={
                "countryCode": country,
                "numberType": "AutoAttendantToll",
                "areaCode": area_code,
                "quantity": quantity,
            },
        )
        response.raise_for_status()

    async def add_licenses(self, sku_part_number: str, units: int) -> None:
        response = await self.admin.post(
            "/licenses", json={"skuPartNumber": sku_part_number, "addUnits": units}
        )
        response.raise_for_status()

    async def use_up_licenses(self) -> None:
        """Leave no free unit of either license PhoneDesk may assign."""
        await self.add_licenses("PHONESYSTEM_VIRTUALUSER", -10)
        await self.add_licenses("ENTERPRISEPREMIUM", -5)

    async def submit(
        self, display_name: str, *, area_code: str | None = "425", country: str = "US"
    ) -> Request:
        outcome = await self.service.submit(
            REQUESTER,
            NumberRequest(country=country, area_code=area_code, display_name=display_name),
        )
        assert outcome.ok, outcome.message
        assert outcome.request is not None
        return outcome.request

    async def submit_approved(
        self, display_name: str, *, area_code: str | None = "425", country: str = "US"
    ) -> Request:
        request = await self.submit(display_name, area_code=area_code, country=country)
        outcome = await self.service.approve(request.id, APPROVER)
        assert outcome.ok, outcome.message
        return request

    async def wait(self, request_id: str, *statuses: RequestStatus) -> Request:
        async with asyncio.timeout(WAIT_S):
            return await self.service.wait_for(request_id, statuses)

    async def wait_until(self, condition: Callable[[], Awaitable[bool]], what: str) -> None:
        try:
            async with asyncio.timeout(WAIT_S):
                while True:
                    if await condition():
                        return
                    await asyncio.sleep(0.01)
        except TimeoutError:
            raise AssertionError(f"timed out waiting until {what}") from None

    async def wait_for_audit(self, request_id: str, action: str) -> AuditEntry:
        found: list[AuditEntry] = []

        async def logged() -> bool:
            entries = await asyncio.to_thread(self.store.list_audit, request_id)
            found[:] = [e for e in entries if e.action == action]
            return bool(found)

        await self.wait_until(logged, f"{request_id} has audit entry {action}")
        return found[0]

    async def actions(self, request_id: str) -> list[str]:
        entries = await asyncio.to_thread(self.store.list_audit, request_id)
        return [entry.action for entry in entries]


OpenHarness = Callable[..., AbstractAsyncContextManager[Harness]]


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    simulator = EmbeddedSimulatorConfig(
        time_scale=TIME_SCALE,
        **{**FAST_PROPAGATION, **overrides.pop("simulator", {})},
    )
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "approvers": [APPROVER.aad_object_id, SECOND_APPROVER.aad_object_id],
        "poll_interval_s": 0.01,
        "poll_max_interval_s": 0.05,
        "propagation_deadline_s": 20.0,
        "bind_deadline_s": 20.0,
        "approval_timeout_s": 60.0,
        "simulator": simulator,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def _microsoft(
    stack: AsyncExitStack, settings: Settings, http_timeout_s: float
) -> AsyncIterator[tuple[RunningSimulator, Microsoft]]:
    simulator = await stack.enter_async_context(start_simulator(settings.simulator))
    calls: Counter[str] = Counter()

    async def count(request: httpx.Request) -> None:
        url = str(request.url)
        for api, base in (
            ("graph", simulator.graph_base_url),
            ("teams", simulator.teams_base_url),
        ):
            if url.startswith(base):
                calls[api] += 1

    http = await stack.enter_async_context(
        httpx.AsyncClient(timeout=http_timeout_s, event_hooks={"request": [count]})
    )
    tokens = SimulatorTokenProvider(
        http,
        token_url=simulator.token_url,
        client_id=settings.simulator.client_id,
        client_secret=settings.simulator.client_secret,
    )
    # Fast backoff: the simulator's Retry-After values are time-scaled and tiny anyway.
    policy = RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.2)

    def api(base_url: str, scope: str) -> ApiClient:
        return ApiClient(http=http, base_url=base_url, scope=scope, tokens=tokens, policy=policy)

    yield (
        simulator,
        Microsoft(
            graph=GraphClient(api(simulator.graph_base_url, GRAPH_SCOPE)),
            teams_admin=TeamsAdminClient(api(simulator.teams_base_url, TEAMS_ADMIN_SCOPE)),
            calls=calls,
        ),
    )


@pytest.fixture
def open_harness(tmp_path: Path) -> OpenHarness:
    """Open an engine on the simulator; ``settings`` overrides go to ``make_settings``."""

    @asynccontextmanager
    async def open_(
        *,
        listener: RecordingListener | None = None,
        http_timeout_s: float = 10.0,
        **overrides: Any,
    ) -> AsyncIterator[Harness]:
        settings = make_settings(tmp_path, **overrides)
        recorder = listener or RecordingListener()
        async with AsyncExitStack() as stack:
            simulator, microsoft = await stack.enter_async_context(
                _microsoft(stack, settings, http_timeout_s)
            )
            admin = await stack.enter_async_context(
                httpx.AsyncClient(base_url=simulator.admin_base_url, timeout=10.0)
            )
            store = stack.enter_context(Store(settings.effective_database_url))
            options = EngineOptions(
                system_database_url=f"sqlite:///{tmp_path / 'workflows.sqlite'}",
                notification_poll_s=0.02,
            )
            engine_stack = AsyncExitStack()
            service = await engine_stack.enter_async_context(
                open_engine(settings, microsoft, store, recorder, options=options)
            )
            opened = Harness(
                service=service,
                store=store,
                settings=settings,
                simulator=simulator,
                microsoft=microsoft,
                listener=recorder,
                admin=admin,
                engine_stack=engine_stack,
                options=options,
            )
            try:
                yield opened
            finally:
                await opened.engine_stack.aclose()

    return open_


@pytest.fixture
async def harness(open_harness: OpenHarness) -> AsyncIterator[Harness]:
    async with open_harness() as opened:
        yield opened
