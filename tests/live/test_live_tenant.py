"""Read-only smoke test against a real Microsoft 365 tenant.

Opt-in and never part of a normal run: it runs only with PHONEDESK_LIVE_TENANT=1 and the
tenant's credentials in the environment (the rest of the settings as the bot reads
them, `.env` included). It only reads: tokens for both APIs, the tenant's subscribed
SKUs, one page of at most five telephone numbers, and the countries numbers can be
ordered in. A failure names the call, so an admin can tell a missing permission from
a missing role (see docs/real-tenant.md).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from provisioning.microsoft.auth import ClientCertificate, MsalTokenProvider
from provisioning.microsoft.base import ApiClient
from provisioning.microsoft.graph import GRAPH_ROUTES, GRAPH_SCOPE, GraphClient, NumberAssignment
from provisioning.microsoft.teams_admin import TEAMS_ADMIN_SCOPE, TeamsAdminClient
from provisioning.settings import Settings, load_settings

_CREDENTIALS = (
    "PHONEDESK_TENANT_ID, PHONEDESK_CLIENT_ID and PHONEDESK_CLIENT_SECRET "
    "(or PHONEDESK_CLIENT_CERTIFICATE_PATH and PHONEDESK_CLIENT_CERTIFICATE_THUMBPRINT)"
)


def _opted_in() -> bool:
    # Only the real environment opts in, never a .env file left lying around.
    env = os.environ
    return (
        env.get("PHONEDESK_LIVE_TENANT") == "1"
        and bool(env.get("PHONEDESK_TENANT_ID"))
        and bool(env.get("PHONEDESK_CLIENT_ID"))
        and bool(env.get("PHONEDESK_CLIENT_SECRET") or env.get("PHONEDESK_CLIENT_CERTIFICATE_PATH"))
    )


pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        not _opted_in(),
        reason=f"live tenant smoke test: set PHONEDESK_LIVE_TENANT=1 and {_CREDENTIALS}",
    ),
]


@pytest.fixture
def settings() -> Settings:
    settings = load_settings()
    assert not settings.uses_simulator
    return settings


@pytest.fixture
def tokens(settings: Settings) -> MsalTokenProvider:
    assert settings.tenant_id is not None
    assert settings.client_id is not None
    certificate = None
    if settings.client_certificate_path is not None:
        certificate = ClientCertificate(
            private_key_pem=SecretStr(settings.client_certificate_path.read_text("ascii")),
            thumbprint=settings.client_certificate_thumbprint,
        )
    return MsalTokenProvider(
        tenant_id=settings.tenant_id,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        certificate=certificate,
        authority=f"{settings.authority_host.rstrip('/')}/{settings.tenant_id}",
    )


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(settings.http_timeout_s)) as client:
        yield client


@pytest.fixture
def graph_api(settings: Settings, tokens: MsalTokenProvider, http: httpx.AsyncClient) -> ApiClient:
    return ApiClient(http=http, base_url=settings.graph_base_url, scope=GRAPH_SCOPE, tokens=tokens)


@pytest.fixture
def teams_api(settings: Settings, tokens: MsalTokenProvider, http: httpx.AsyncClient) -> ApiClient:
    return ApiClient(
        http=http, base_url=settings.teams_admin_base_url, scope=TEAMS_ADMIN_SCOPE, tokens=tokens
    )


async def test_entra_issues_tokens_for_graph_and_the_teams_admin_api(
    tokens: MsalTokenProvider,
) -> None:
    for scope in (GRAPH_SCOPE, TEAMS_ADMIN_SCOPE):
        assert await tokens.get_token(scope), scope


async def test_the_tenant_subscribes_to_a_license_phonedesk_assigns(
    settings: Settings, graph_api: ApiClient
) -> None:
    skus = await GraphClient(graph_api).list_subscribed_skus()

    wanted = [part.upper() for part in (settings.preferred_sku, *settings.fallback_skus)]
    present = sorted(sku.sku_part_number.upper() for sku in skus)
    assert set(wanted) & set(present), f"none of {wanted} among the tenant's SKUs {present}"


async def test_one_page_of_telephone_numbers_can_be_read(graph_api: ApiClient) -> None:
    # One page only, however large the inventory: the client's lister follows every link.
    page = await graph_api.get_json(GRAPH_ROUTES.number_assignments, params={"$top": 5})

    items = page.get("value")
    assert isinstance(items, list)
    assert len(items) <= 5
    for item in items:
        NumberAssignment.model_validate(item)


async def test_the_teams_admin_api_lists_the_countries_numbers_come_from(
    teams_api: ApiClient,
) -> None:
    # The Teams admin API is undocumented: a 404 here means the path in ROUTES
    # (provisioning/microsoft/teams_admin.py) needs correcting from a capture.
    countries = await TeamsAdminClient(teams_api).list_countries()

    assert countries
    assert all(len(country.iso_country_code) == 2 for country in countries)
