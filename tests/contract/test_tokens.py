"""The token endpoint, and a token's scope deciding which API it opens."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from provisioning.microsoft.auth import SimulatorTokenProvider
from provisioning.microsoft.errors import (
    CODE_INVALID_AUTHENTICATION_TOKEN,
    AuthenticationError,
    Unauthorized,
)
from provisioning.microsoft.graph import GRAPH_SCOPE, GraphClient
from provisioning.microsoft.teams_admin import TEAMS_ADMIN_SCOPE
from tests.contract.conftest import Contract


async def test_good_credentials_get_a_token_per_scope_that_the_apis_accept(
    contract: Contract,
) -> None:
    graph_token = await contract.tokens.get_token(GRAPH_SCOPE)
    teams_token = await contract.tokens.get_token(TEAMS_ADMIN_SCOPE)

    assert graph_token
    assert teams_token
    assert graph_token != teams_token
    assert await contract.graph.list_subscribed_skus()
    assert await contract.teams.list_countries()


async def test_a_token_is_fetched_once_and_reused(contract: Contract) -> None:
    await contract.graph.list_subscribed_skus()
    await contract.graph.list_subscribed_skus()

    token_calls = [r for r in contract.traffic.sent if r.url.path.endswith("/token")]
    assert len(token_calls) == 1


async def test_a_wrong_client_secret_is_a_clear_authentication_error(contract: Contract) -> None:
    secret = "not-the-secret-0123"
    tokens = SimulatorTokenProvider(
        contract.http,
        token_url=contract.simulator.token_url,
        client_id=contract.config.client_id,
        client_secret=SecretStr(secret),
    )

    with pytest.raises(AuthenticationError) as caught:
        await tokens.get_token(GRAPH_SCOPE)

    assert caught.value.error == "invalid_client"
    assert contract.config.client_id in str(caught.value)
    assert secret not in str(caught.value)


async def test_an_unknown_client_id_is_a_clear_authentication_error(contract: Contract) -> None:
    tokens = SimulatorTokenProvider(
        contract.http,
        token_url=contract.simulator.token_url,
        client_id="00000000-0000-4000-8000-000000000000",
        client_secret=contract.config.client_secret,
    )

    with pytest.raises(AuthenticationError) as caught:
        await tokens.get_token(GRAPH_SCOPE)

    assert caught.value.error == "invalid_client"


async def test_an_unknown_tenant_is_an_authentication_error(contract: Contract) -> None:
    tokens = SimulatorTokenProvider(
        contract.http,
        token_url=contract.simulator.token_url.replace(
            contract.config.tenant_id, "fabrikam.onmicrosoft.com"
        ),
        client_id=contract.config.client_id,
        client_secret=contract.config.client_secret,
    )

    with pytest.raises(AuthenticationError) as caught:
        await tokens.get_token(GRAPH_SCOPE)

    assert caught.value.error == "invalid_request"


async def test_a_scope_no_api_has_is_refused_by_the_token_endpoint(contract: Contract) -> None:
    with pytest.raises(AuthenticationError) as caught:
        await contract.tokens.get_token("https://vault.azure.net/.default")

    assert caught.value.error == "invalid_resource"


async def test_a_token_for_the_other_api_is_401_invalid_authentication_token(
    contract: Contract,
) -> None:
    graph_with_teams_token = GraphClient(
        contract.api(contract.simulator.graph_base_url, TEAMS_ADMIN_SCOPE)
    )

    with pytest.raises(Unauthorized) as caught:
        await graph_with_teams_token.list_subscribed_skus()

    assert caught.value.status == 401
    assert caught.value.code == CODE_INVALID_AUTHENTICATION_TOKEN
    assert len(contract.traffic.api_requests()) == 1, "a 401 is not retried"
