"""A simulator on a manual clock, driven over HTTP like the real clients drive Microsoft."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from provisioning.simulator.app import SIMULATOR, create_simulator_app
from provisioning.simulator.clock import ManualClock
from provisioning.simulator.config import SimulatorConfig
from provisioning.simulator.state import TenantState
from provisioning.simulator.wire import GRAPH_SCOPE, ROUTES, TEAMS_ADMIN_SCOPE, fill

NUMBERS = "/admin/teams/telephoneNumberManagement"
AUTO_ATTENDANT_APP_ID = "ce933385-9390-45d1-9512-c8d228074e07"
PHONE_RESOURCE_SKU_ID = "440eaaa8-b3e0-484b-a8be-62870b9ba70a"
E5_SKU_ID = "c7df2760-2c81-4ef7-b578-5b5392b571df"


def teams_path(route: str, arg: str | None = None) -> str:
    template: str = getattr(ROUTES, route)
    return template if arg is None else fill(template, arg)


@dataclass
class Sim:
    client: TestClient[web.Request, web.Application]
    config: SimulatorConfig
    clock: ManualClock
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> TenantState:
        return self.client.app[SIMULATOR].state

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    async def token(self, scope: str) -> str:
        if scope not in self.tokens:
            resp = await self.client.post(
                f"/auth/{self.config.tenant_id}/oauth2/v2.0/token",
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.config.client_id,
                    "client_secret": self.config.client_secret.get_secret_value(),
                    "scope": scope,
                },
            )
            assert resp.status == 200, await resp.text()
            self.tokens[scope] = (await resp.json())["access_token"]
        return self.tokens[scope]

    async def graph(self, method: str, path: str, **kwargs: Any) -> ClientResponse:
        headers = {"Authorization": f"Bearer {await self.token(GRAPH_SCOPE)}"}
        headers.update(kwargs.pop("headers", {}))
        return await self.client.request(method, f"/graph/v1.0{path}", headers=headers, **kwargs)

    async def teams(self, method: str, path: str, **kwargs: Any) -> ClientResponse:
        headers = {"Authorization": f"Bearer {await self.token(TEAMS_ADMIN_SCOPE)}"}
        headers.update(kwargs.pop("headers", {}))
        return await self.client.request(method, f"/teams{path}", headers=headers, **kwargs)

    async def admin(self, method: str, path: str, **kwargs: Any) -> ClientResponse:
        return await self.client.request(method, f"/_sim{path}", **kwargs)

    async def counters(self) -> dict[str, int]:
        resp = await self.admin("GET", "/counters")
        result: dict[str, int] = await resp.json()
        return result

    async def create_instance(self, alias: str, display_name: str = "Contoso Support") -> str:
        resp = await self.teams(
            "POST",
            teams_path("application_instances"),
            json={
                "userPrincipalName": f"{alias}@{self.config.tenant_domain}",
                "displayName": display_name,
                "applicationId": AUTO_ATTENDANT_APP_ID,
            },
        )
        assert resp.status == 201, await resp.text()
        object_id: str = (await resp.json())["objectId"]
        return object_id

    async def ready_instance(self, alias: str, *, usage_location: str = "US") -> str:
        """A resource account that is propagated, licensed and synced."""
        object_id = await self.create_instance(alias)
        self.advance(self.config.propagation_max_s)
        resp = await self.graph(
            "PATCH", f"/users/{object_id}", json={"usageLocation": usage_location}
        )
        assert resp.status == 204, await resp.text()
        resp = await self.graph(
            "POST",
            f"/users/{object_id}/assignLicense",
            json={"addLicenses": [{"skuId": PHONE_RESOURCE_SKU_ID}], "removeLicenses": []},
        )
        assert resp.status == 200, await resp.text()
        resp = await self.teams("POST", teams_path("application_instance_sync", object_id))
        assert resp.status == 204, await resp.text()
        self.advance(self.config.sync_delay_s)
        return object_id

    async def unassigned_service_number(self) -> str:
        resp = await self.graph(
            "GET",
            f"{NUMBERS}/numberAssignments",
            params={"$filter": "assignmentStatus eq 'unassigned' and isoCountryCode eq 'US'"},
        )
        numbers = (await resp.json())["value"]
        number: str = next(
            n["telephoneNumber"]
            for n in numbers
            if "voiceApplicationAssignment" in n["capabilities"]
            and n["numberType"] == "callingPlan"
        )
        return number


SimFactory = Callable[..., Awaitable[Sim]]


@pytest.fixture
def make_sim(aiohttp_client: AiohttpClient) -> SimFactory:
    async def make(**overrides: Any) -> Sim:
        config = SimulatorConfig(**overrides)
        clock = ManualClock()
        client = await aiohttp_client(create_simulator_app(config, clock=clock))
        return Sim(client, config, clock)

    return make


@pytest.fixture
async def sim(make_sim: SimFactory) -> Sim:
    return await make_sim()


async def error_of(resp: ClientResponse) -> tuple[int, str, str]:
    body = await resp.json()
    return resp.status, body["error"]["code"], body["error"]["message"]
