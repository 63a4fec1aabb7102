"""The real Microsoft 365 clients against the real simulator, over HTTP on loopback.

The clients are built the way ``provisioning/microsoft/connect.py`` builds them; only ``sleep``,
``clock`` and the jitter ``rng`` are injected. The client's waits are recorded and move the
simulator's ``ManualClock`` instead of passing in real time, so a test asserts what the
client decided to wait, never how long the machine took.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from provisioning.microsoft.auth import SimulatorTokenProvider
from provisioning.microsoft.base import ApiClient
from provisioning.microsoft.errors import parse_retry_after
from provisioning.microsoft.graph import (
    GRAPH_SCOPE,
    GraphClient,
    LongRunningOperation,
    NumberAssignment,
    OperationStatus,
)
from provisioning.microsoft.retry import RetryPolicy
from provisioning.microsoft.teams_admin import (
    AUTO_ATTENDANT_APP_ID,
    TEAMS_ADMIN_SCOPE,
    ApplicationInstance,
    TeamsAdminClient,
)
from provisioning.simulator.clock import ManualClock
from provisioning.simulator.config import SimulatorConfig
from provisioning.simulator.server import RunningSimulator, start_simulator
from provisioning.simulator.wire import GRAPH_PREFIX, TEAMS_PREFIX
from tests.provisioning.simulator.conftest import PHONE_RESOURCE_SKU_ID

SEED = 7
POLL_S = 5.0
"""How often ``wait_for_operation`` polls, in simulated seconds."""
Hook = Callable[[], Awaitable[None]]


@dataclass
class Waits:
    """The clients' ``sleep``: records each delay and moves the simulated clock by it.

    ``real`` makes it also wait in real time, for throttling: the simulator's rate limiter
    refills on the machine's clock, not the simulated one. Hooks given to ``on_next_wait``
    run once, during the next wait, to change the simulator while the client backs off.
    """

    clock: ManualClock
    real: bool = False
    delays: list[float] = field(default_factory=list)
    _hooks: list[Hook] = field(default_factory=list)

    def on_next_wait(self, hook: Hook) -> None:
        self._hooks.append(hook)

    async def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(seconds)
        hooks, self._hooks = self._hooks, []
        for hook in hooks:
            await hook()
        await asyncio.sleep(seconds if self.real else 0)


@dataclass
class Traffic:
    """Every request the clients sent and every answer they got, seen from httpx."""

    sent: list[httpx.Request] = field(default_factory=list)
    answers: list[httpx.Response] = field(default_factory=list)

    async def on_request(self, request: httpx.Request) -> None:
        self.sent.append(request)

    async def on_response(self, response: httpx.Response) -> None:
        self.answers.append(response)

    def api_requests(self) -> list[httpx.Request]:
        """The Graph and Teams admin calls, without the token endpoint."""
        return [r for r in self.sent if _is_api(r)]

    def api_answers(self) -> list[httpx.Response]:
        return [r for r in self.answers if _is_api(r.request)]

    def throttle_waits(self) -> list[float]:
        """The ``Retry-After`` of every 429, in order."""
        waits = []
        for answer in self.api_answers():
            if answer.status_code == 429:
                retry_after = parse_retry_after(answer.headers)
                assert retry_after is not None, "a 429 without a readable Retry-After"
                waits.append(retry_after)
        return waits

    def clear(self) -> None:
        self.sent.clear()
        self.answers.clear()


def _is_api(request: httpx.Request) -> bool:
    return request.url.path.startswith((GRAPH_PREFIX + "/", TEAMS_PREFIX + "/"))


@dataclass
class Contract:
    """One running simulator, the clients wired to it, and the test's view of both."""

    simulator: RunningSimulator
    clock: ManualClock
    http: httpx.AsyncClient
    tokens: SimulatorTokenProvider
    admin: httpx.AsyncClient
    traffic: Traffic
    waits: Waits
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    graph: GraphClient = field(init=False)
    teams: TeamsAdminClient = field(init=False)

    def __post_init__(self) -> None:
        self.graph = GraphClient(self.api(self.simulator.graph_base_url, GRAPH_SCOPE))
        self.teams = TeamsAdminClient(self.api(self.simulator.teams_base_url, TEAMS_ADMIN_SCOPE))

    @property
    def config(self) -> SimulatorConfig:
        return self.simulator.config

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def upn(self, alias: str) -> str:
        return f"{alias}@{self.config.tenant_domain}"

    def api(self, base_url: str, scope: str) -> ApiClient:
        """An ``ApiClient`` as the runtime builds one, with the recorded waits injected."""
        return ApiClient(
            http=self.http,
            base_url=base_url,
            scope=scope,
            tokens=self.tokens,
            policy=self.policy,
            rng=random.Random(SEED),
            sleep=self.waits.sleep,
            clock=self.clock.monotonic,
        )

    async def counters(self) -> dict[str, int]:
        response = await self.admin.get("/counters")
        response.raise_for_status()
        counters: dict[str, int] = response.json()
        return counters

    async def knobs(self, **changes: Any) -> None:
        response = await self.admin.patch("/knobs", json=changes)
        response.raise_for_status()

    async def add_license_units(self, sku_part_number: str, units: int) -> None:
        response = await self.admin.post(
            "/licenses", json={"skuPartNumber": sku_part_number, "addUnits": units}
        )
        response.raise_for_status()

    async def new_account(self, alias: str, display_name: str = "Contoso Support") -> str:
        """A resource account, created and past the eventual-consistency window."""
        instance = await self.teams.create_application_instance(
            upn=self.upn(alias), display_name=display_name, application_id=AUTO_ATTENDANT_APP_ID
        )
        self.advance(self.config.consistency_window_s)
        return instance.object_id

    async def ready_account(
        self, alias: str, *, licensed: bool = True, synced: bool = True
    ) -> ApplicationInstance:
        """A propagated resource account in the US, optionally licensed and synced."""
        object_id = await self.new_account(alias)
        self.advance(self.config.propagation_max_s)
        await self.graph.set_usage_location(object_id, "US")
        if licensed:
            await self.graph.assign_license(object_id, PHONE_RESOURCE_SKU_ID)
        if synced:
            await self.teams.sync_application_instance(object_id)
            self.advance(self.config.sync_delay_s)
        return await self.teams.get_application_instance(object_id)

    async def free_service_number(self) -> NumberAssignment:
        numbers = await self.graph.list_number_assignments(
            filter="assignmentStatus eq 'unassigned' and isoCountryCode eq 'US' "
            "and numberType eq 'callingPlan'"
        )
        return next(n for n in numbers if n.can_serve_voice_applications)


OpenContract = Callable[..., Awaitable[Contract]]


@pytest.fixture(scope="session")
def tls_context() -> ssl.SSLContext:
    """One TLS context for every client: loading the CA bundle per client dominates the run.

    Nothing here speaks TLS (the simulator is plain HTTP on loopback); httpx builds a
    context anyway.
    """
    return ssl.create_default_context()


@pytest.fixture
async def open_contract(tls_context: ssl.SSLContext) -> AsyncIterator[OpenContract]:
    """Start a simulator (``SimulatorConfig`` overrides as keywords) and clients for it.

    ``http_timeout_s`` is the httpx timeout of the clients' transport.
    """
    async with AsyncExitStack() as stack:

        async def open_(*, http_timeout_s: float = 10.0, **overrides: Any) -> Contract:
            config = SimulatorConfig(**{"seed": SEED, **overrides})
            clock = ManualClock()
            simulator = await stack.enter_async_context(
                start_simulator(config, host="127.0.0.1", port=0, clock=clock)
            )
            traffic = Traffic()
            http = await stack.enter_async_context(
                httpx.AsyncClient(
                    timeout=httpx.Timeout(http_timeout_s),
                    verify=tls_context,
                    event_hooks={
                        "request": [traffic.on_request],
                        "response": [traffic.on_response],
                    },
                )
            )
            admin = await stack.enter_async_context(
                httpx.AsyncClient(
                    base_url=simulator.admin_base_url, timeout=10.0, verify=tls_context
                )
            )
            tokens = SimulatorTokenProvider(
                http,
                token_url=simulator.token_url,
                client_id=config.client_id,
                client_secret=config.client_secret,
            )
            return Contract(
                simulator=simulator,
                clock=clock,
                http=http,
                tokens=tokens,
                admin=admin,
                traffic=traffic,
                waits=Waits(clock),
            )

        yield open_


@pytest.fixture
async def contract(open_contract: OpenContract) -> Contract:
    return await open_contract()


class OperationFailed(Exception):
    def __init__(self, operation_id: str, status_detail: str | None) -> None:
        super().__init__(f"Operation {operation_id} failed: {status_detail}")
        self.operation_id = operation_id
        self.status_detail = status_detail


class OperationTimedOut(Exception):
    def __init__(self, operation_id: str, last_status: str, waited: float) -> None:
        super().__init__(f"Operation {operation_id} still {last_status} after {waited:.1f} s")
        self.operation_id = operation_id
        self.last_status = last_status
        self.waited = waited


async def wait_for_operation(
    contract: Contract, operation_id: str, *, poll_interval: float = POLL_S, max_wait: float = 300.0
) -> LongRunningOperation:
    """Poll an operation to its end on the simulated clock, as a client of the contract would."""
    started = contract.clock.monotonic()
    while True:
        operation = await contract.graph.get_operation(operation_id)
        if operation.status == OperationStatus.FAILED:
            raise OperationFailed(operation_id, operation.failure_detail)
        if operation.finished:
            return operation
        waited = contract.clock.monotonic() - started
        if waited >= max_wait:
            raise OperationTimedOut(operation_id, operation.status.value, waited)
        await contract.waits.sleep(min(poll_interval, max_wait - waited))
