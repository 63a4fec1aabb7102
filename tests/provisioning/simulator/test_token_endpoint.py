"""The token endpoint speaks OAuth2 client credentials; APIs demand a token for their scope."""

from __future__ import annotations

import pytest

from provisioning.simulator.wire import GRAPH_SCOPE, TEAMS_ADMIN_SCOPE
from tests.provisioning.simulator.conftest import Sim, error_of, teams_path


def credentials(sim: Sim, **changes: str | None) -> dict[str, str]:
    form: dict[str, str | None] = {
        "grant_type": "client_credentials",
        "client_id": sim.config.client_id,
        "client_secret": sim.config.client_secret.get_secret_value(),
        "scope": GRAPH_SCOPE,
        **changes,
    }
    return {k: v for k, v in form.items() if v is not None}


def token_path(sim: Sim, tenant: str | None = None) -> str:
    return f"/auth/{tenant or sim.config.tenant_id}/oauth2/v2.0/token"


async def test_client_credentials_get_a_bearer_token(sim: Sim) -> None:
    resp = await sim.client.post(token_path(sim), data=credentials(sim))
    body = await resp.json()
    assert resp.status == 200
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3599
    assert body["access_token"]


async def test_the_tenant_domain_works_as_well_as_the_tenant_id(sim: Sim) -> None:
    resp = await sim.client.post(token_path(sim, sim.config.tenant_domain), data=credentials(sim))
    assert resp.status == 200


@pytest.mark.parametrize(
    "changes",
    [
        {"client_secret": "wrong"},
        {"client_secret": None},
        {"client_id": "00000000-0000-0000-0000-000000000000"},
        {"client_id": None},
    ],
)
async def test_wrong_or_missing_credentials_are_invalid_client(
    sim: Sim, changes: dict[str, str | None]
) -> None:
    resp = await sim.client.post(token_path(sim), data=credentials(sim, **changes))
    body = await resp.json()
    assert resp.status == 401
    assert body["error"] == "invalid_client"
    assert body["error_description"].startswith("AADSTS")
    assert "access_token" not in body


async def test_an_unknown_scope_is_refused(sim: Sim) -> None:
    resp = await sim.client.post(
        token_path(sim), data=credentials(sim, scope="https://management.azure.com/.default")
    )
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid_resource"


async def test_an_unknown_tenant_is_refused(sim: Sim) -> None:
    resp = await sim.client.post(token_path(sim, "fabrikam.onmicrosoft.com"), data=credentials(sim))
    assert resp.status == 400
    assert "AADSTS90002" in (await resp.json())["error_description"]


async def test_another_grant_type_is_refused(sim: Sim) -> None:
    resp = await sim.client.post(token_path(sim), data=credentials(sim, grant_type="password"))
    assert resp.status == 400
    assert (await resp.json())["error"] == "unsupported_grant_type"


async def test_graph_without_a_token_is_401(sim: Sim) -> None:
    resp = await sim.client.get("/graph/v1.0/subscribedSkus")
    assert (await error_of(resp))[:2] == (401, "InvalidAuthenticationToken")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_made_up_token_is_401(sim: Sim) -> None:
    resp = await sim.client.get(
        "/graph/v1.0/subscribedSkus", headers={"Authorization": "Bearer not-a-token"}
    )
    assert (await error_of(resp))[:2] == (401, "InvalidAuthenticationToken")


async def test_a_token_for_one_api_does_not_open_the_other(sim: Sim) -> None:
    graph_token = await sim.token(GRAPH_SCOPE)
    teams_token = await sim.token(TEAMS_ADMIN_SCOPE)
    resp = await sim.client.get(
        f"/teams{teams_path('countries')}", headers={"Authorization": f"Bearer {graph_token}"}
    )
    assert (await error_of(resp))[:2] == (401, "InvalidAuthenticationToken")
    resp = await sim.client.get(
        "/graph/v1.0/subscribedSkus", headers={"Authorization": f"Bearer {teams_token}"}
    )
    assert resp.status == 401
    resp = await sim.client.get(
        f"/teams{teams_path('countries')}", headers={"Authorization": f"Bearer {teams_token}"}
    )
    assert resp.status == 200


async def test_the_admin_endpoint_needs_no_token(sim: Sim) -> None:
    resp = await sim.admin("GET", "/counters")
    assert resp.status == 200
