from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import httpx
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr
from pytest_aiohttp import AiohttpServer

from provisioning.microsoft.auth import (
    ClientCertificate,
    MsalTokenProvider,
    SimulatorTokenProvider,
)
from provisioning.microsoft.errors import (
    ApiConnectionError,
    AuthenticationError,
    ServerError,
)

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
SECRET = "s3cr3t~Value.that-must-never-leak"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
TEAMS_SCOPE = "48ac35b8-9aa8-4d74-927d-1f4a14a0b239/.default"
AUTHORITY = f"https://login.microsoftonline.com/{TENANT}"
TOKEN_ENDPOINT = f"{AUTHORITY}/oauth2/v2.0/token"
DISCOVERY_URL = f"{AUTHORITY}/v2.0/.well-known/openid-configuration"


class FakeResponse:
    """The response shape msal's HttpClient contract asks for."""

    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        self.status_code = status_code
        self.text = json.dumps(body)
        self.headers = {"Content-Type": "application/json"}

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(f"HTTP {self.status_code}")


class FakeEntra:
    """Microsoft Entra's discovery and token endpoints, answered in memory for msal."""

    def __init__(
        self,
        *,
        token_error: dict[str, Any] | None = None,
        token_status: int = 401,
        known_tenant: bool = True,
    ) -> None:
        self.token_error = token_error
        self.token_status = token_status
        self.known_tenant = known_tenant
        self.gets: list[str] = []
        self.token_posts: list[dict[str, Any]] = []

    def get(
        self,
        url: str,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> FakeResponse:
        self.gets.append(url)
        if url == DISCOVERY_URL and self.known_tenant:
            return FakeResponse(
                200,
                {
                    "issuer": f"https://login.microsoftonline.com/{TENANT}/v2.0",
                    "authorization_endpoint": f"{AUTHORITY}/oauth2/v2.0/authorize",
                    "token_endpoint": TOKEN_ENDPOINT,
                },
            )
        if url == "https://login.microsoftonline.com/common/discovery/instance":
            # msal looks up the authority's aliases after a failed token request.
            return FakeResponse(
                200,
                {
                    "tenant_discovery_endpoint": DISCOVERY_URL,
                    "api-version": "1.1",
                    "metadata": [
                        {
                            "preferred_network": "login.microsoftonline.com",
                            "preferred_cache": "login.windows.net",
                            "aliases": ["login.microsoftonline.com", "login.windows.net"],
                        }
                    ],
                },
            )
        return FakeResponse(400, {"error": "invalid_tenant", "error_description": "no such tenant"})

    def post(
        self,
        url: str,
        params: dict[str, Any] | None = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> FakeResponse:
        assert url == TOKEN_ENDPOINT
        self.token_posts.append(dict(data))
        if self.token_error is not None:
            return FakeResponse(self.token_status, self.token_error)
        return FakeResponse(
            200,
            {
                "token_type": "Bearer",
                "access_token": f"token-{len(self.token_posts)}",
                "expires_in": 3599,
                "ext_expires_in": 3599,
            },
        )

    def close(self) -> None:
        pass


class UnreachableEntra(FakeEntra):
    def get(self, url: str, *args: Any, **kwargs: Any) -> FakeResponse:
        raise ConnectionError("connection refused")


def secret_provider(entra: FakeEntra) -> MsalTokenProvider:
    return MsalTokenProvider(
        tenant_id=TENANT, client_id=CLIENT_ID, client_secret=SecretStr(SECRET), http_client=entra
    )


async def test_msal_token_comes_back_for_the_requested_scope() -> None:
    entra = FakeEntra()
    token = await secret_provider(entra).get_token(GRAPH_SCOPE)
    assert token == "token-1"
    [form] = entra.token_posts
    assert form["client_id"] == CLIENT_ID
    assert form["grant_type"] == "client_credentials"
    assert GRAPH_SCOPE in form["scope"].split()
    assert form["client_secret"] == SECRET


async def test_msal_second_call_is_served_from_its_cache() -> None:
    entra = FakeEntra()
    provider = secret_provider(entra)
    first = await provider.get_token(GRAPH_SCOPE)
    second = await provider.get_token(GRAPH_SCOPE)
    assert first == second
    assert len(entra.token_posts) == 1


async def test_msal_caches_each_scope_separately() -> None:
    entra = FakeEntra()
    provider = secret_provider(entra)
    await provider.get_token(GRAPH_SCOPE)
    await provider.get_token(TEAMS_SCOPE)
    await provider.get_token(TEAMS_SCOPE)
    assert [post["scope"] for post in entra.token_posts] == [GRAPH_SCOPE, TEAMS_SCOPE]


async def test_msal_invalid_client_becomes_authentication_error_without_the_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    entra = FakeEntra(
        token_error={
            "error": "invalid_client",
            # A hostile or careless endpoint that echoes the secret must not get it logged.
            "error_description": f"AADSTS7000215: Invalid client secret provided: {SECRET}",
        }
    )
    with pytest.raises(AuthenticationError) as caught:
        await secret_provider(entra).get_token(GRAPH_SCOPE)
    error = caught.value
    assert error.error == "invalid_client"
    assert error.client_id == CLIENT_ID
    assert error.tenant_id == TENANT
    assert CLIENT_ID in str(error)
    assert TENANT in str(error)
    assert "AADSTS7000215" in str(error)
    assert SECRET not in str(error)
    assert SECRET not in repr(error.__dict__)
    assert SECRET not in caplog.text


async def test_msal_unknown_tenant_names_the_tenant() -> None:
    entra = FakeEntra(known_tenant=False)
    with pytest.raises(AuthenticationError, match=TENANT):
        await secret_provider(entra).get_token(GRAPH_SCOPE)
    assert entra.token_posts == []


async def test_msal_unreachable_endpoint_is_a_connection_error() -> None:
    with pytest.raises(ApiConnectionError) as caught:
        await secret_provider(UnreachableEntra()).get_token(GRAPH_SCOPE)
    assert isinstance(caught.value.__cause__, ConnectionError)


async def test_msal_failing_token_endpoint_is_a_retryable_connection_error() -> None:
    entra = FakeEntra(
        token_error={"error": "server_error", "error_description": "try later"}, token_status=503
    )
    with pytest.raises(ApiConnectionError, match="failed"):
        await secret_provider(entra).get_token(GRAPH_SCOPE)


async def test_msal_certificate_credential_signs_an_assertion_instead_of_a_secret() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    entra = FakeEntra()
    provider = MsalTokenProvider(
        tenant_id=TENANT,
        client_id=CLIENT_ID,
        certificate=ClientCertificate(
            private_key_pem=SecretStr(pem), thumbprint="A1B2C3D4E5F6A1B2C3D4E5F6A1B2C3D4E5F6A1B2"
        ),
        http_client=entra,
    )
    assert await provider.get_token(GRAPH_SCOPE) == "token-1"
    [form] = entra.token_posts
    assert "client_secret" not in form
    claims = jwt.decode(
        form["client_assertion"],
        key.public_key(),
        algorithms=["RS256", "PS256"],
        audience=TOKEN_ENDPOINT,
    )
    assert claims["iss"] == CLIENT_ID


def test_msal_provider_needs_exactly_one_credential() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        MsalTokenProvider(tenant_id=TENANT, client_id=CLIENT_ID)


def test_msal_provider_repr_hides_the_secret() -> None:
    assert SECRET not in repr(secret_provider(FakeEntra()))


class TokenEndpoint:
    """The simulator's token endpoint, reduced to what the provider relies on."""

    def __init__(self, *, status: int = 200, expires_in: int = 3599) -> None:
        self.status = status
        self.expires_in = expires_in
        self.forms: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        form = {key: str(value) for key, value in (await request.post()).items()}
        self.forms.append(form)
        if self.status != 200:
            return web.json_response(
                {"error": {"code": "ServiceUnavailable", "message": "down"}}, status=self.status
            )
        if form.get("client_secret") != SECRET:
            return web.json_response(
                {"error": "invalid_client", "error_description": "Invalid client secret."},
                status=401,
            )
        return web.json_response(
            {
                "token_type": "Bearer",
                "access_token": f"sim-{len(self.forms)}",
                "expires_in": self.expires_in,
            }
        )


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def start_endpoint(aiohttp_server: AiohttpServer, endpoint: TokenEndpoint) -> str:
    app = web.Application()
    app.router.add_post("/auth/{tenant}/oauth2/v2.0/token", endpoint.handle)
    server = await aiohttp_server(app)
    return str(server.make_url(f"/auth/{TENANT}/oauth2/v2.0/token"))


async def test_simulator_token_is_fetched_with_client_credentials(
    aiohttp_server: AiohttpServer,
) -> None:
    endpoint = TokenEndpoint()
    url = await start_endpoint(aiohttp_server, endpoint)
    async with httpx.AsyncClient(timeout=5.0) as http:
        provider = SimulatorTokenProvider(http, url, CLIENT_ID, SecretStr(SECRET))
        assert await provider.get_token(GRAPH_SCOPE) == "sim-1"
    [form] = endpoint.forms
    assert form == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "scope": GRAPH_SCOPE,
    }


async def test_simulator_token_is_cached_per_scope_until_shortly_before_expiry(
    aiohttp_server: AiohttpServer,
) -> None:
    endpoint = TokenEndpoint(expires_in=3599)
    url = await start_endpoint(aiohttp_server, endpoint)
    clock = ManualClock()
    async with httpx.AsyncClient(timeout=5.0) as http:
        provider = SimulatorTokenProvider(http, url, CLIENT_ID, SecretStr(SECRET), clock=clock)
        assert await provider.get_token(GRAPH_SCOPE) == "sim-1"
        assert await provider.get_token(GRAPH_SCOPE) == "sim-1"
        assert await provider.get_token(TEAMS_SCOPE) == "sim-2"
        clock.now += 3000
        assert await provider.get_token(GRAPH_SCOPE) == "sim-1"
        clock.now += 500  # within the last minutes of the token's life
        assert await provider.get_token(GRAPH_SCOPE) == "sim-3"
    assert [form["scope"] for form in endpoint.forms] == [GRAPH_SCOPE, TEAMS_SCOPE, GRAPH_SCOPE]


async def test_simulator_concurrent_first_calls_fetch_once(aiohttp_server: AiohttpServer) -> None:
    endpoint = TokenEndpoint()
    url = await start_endpoint(aiohttp_server, endpoint)
    async with httpx.AsyncClient(timeout=5.0) as http:
        provider = SimulatorTokenProvider(http, url, CLIENT_ID, SecretStr(SECRET))
        tokens = await asyncio.gather(*(provider.get_token(GRAPH_SCOPE) for _ in range(5)))
    assert set(tokens) == {"sim-1"}
    assert len(endpoint.forms) == 1


async def test_simulator_wrong_secret_is_authentication_error_without_the_secret(
    aiohttp_server: AiohttpServer,
) -> None:
    url = await start_endpoint(aiohttp_server, TokenEndpoint())
    wrong = "not-the-" + SECRET
    async with httpx.AsyncClient(timeout=5.0) as http:
        provider = SimulatorTokenProvider(http, url, CLIENT_ID, SecretStr(wrong))
        with pytest.raises(AuthenticationError, match="invalid_client") as caught:
            await provider.get_token(GRAPH_SCOPE)
    assert wrong not in str(caught.value)
    assert CLIENT_ID in str(caught.value)


async def test_simulator_unavailable_endpoint_is_a_retryable_server_error(
    aiohttp_server: AiohttpServer,
) -> None:
    url = await start_endpoint(aiohttp_server, TokenEndpoint(status=503))
    async with httpx.AsyncClient(timeout=5.0) as http:
        provider = SimulatorTokenProvider(http, url, CLIENT_ID, SecretStr(SECRET))
        with pytest.raises(ServerError):
            await provider.get_token(GRAPH_SCOPE)


async def test_simulator_unreachable_endpoint_is_a_connection_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        provider = SimulatorTokenProvider(
            http, "http://127.0.0.1:1/auth/t/oauth2/v2.0/token", CLIENT_ID, SecretStr(SECRET)
        )
        with pytest.raises(ApiConnectionError) as caught:
            await provider.get_token(GRAPH_SCOPE)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
