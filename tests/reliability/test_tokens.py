"""Bot Framework tokens, end to end and offline: a local OpenID server with a test RSA key.

A correctly signed token is accepted, so the real check runs; every other token is a fast
401 with one warning line; and Microsoft's login endpoint being slow, dead or a black hole
neither stalls the event loop nor lets a flood of forged tokens cause a flood of fetches.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import RSAAlgorithm
from pytest_aiohttp import AiohttpClient, AiohttpServer

from bot.channel_auth import BOT_FRAMEWORK_ISSUER
from provisioning.domain import NumberRequest
from provisioning.settings import Settings
from tests.bot.teams import ABE, RITA, Teams, personal
from tests.connector import RecordingConnector
from tests.provisioning.conftest import make_settings
from tests.reliability.conftest import BlackHole

APP_ID: Final = "6f1c2a9e-0b1d-4c2e-9f3a-5e6d7c8b9a01"
SERVICE_URL: Final = "https://smba.trafficmanager.net/amer/"
KID: Final = "phonedesk-test-key"


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class OpenIdServer:
    """Bot Framework's login endpoint, as far as a bot uses it: metadata and a key set."""

    key: rsa.RSAPrivateKey
    metadata_url: str = ""
    fetches: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        async def metadata(request: web.Request) -> web.Response:
            self.fetches.append(request.path)
            base = f"{request.scheme}://{request.host}"
            return web.json_response(
                {"issuer": BOT_FRAMEWORK_ISSUER, "jwks_uri": f"{base}/v1/.well-known/keys"}
            )

        async def keys(request: web.Request) -> web.Response:
            self.fetches.append(request.path)
            jwk: dict[str, Any] = RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
            jwk.update(kid=KID, use="sig", endorsements=["msteams"])
            return web.json_response({"keys": [jwk]})

        app = web.Application()
        app.router.add_get("/v1/.well-known/openidconfiguration", metadata)
        app.router.add_get("/v1/.well-known/keys", keys)
        return app


@pytest.fixture
async def openid(aiohttp_server: AiohttpServer, signing_key: rsa.RSAPrivateKey) -> OpenIdServer:
    server = OpenIdServer(signing_key)
    running = await aiohttp_server(server.app())
    server.metadata_url = str(running.make_url("/v1/.well-known/openidconfiguration"))
    return server


def authenticated(tmp_path: Path, metadata_url: str, **overrides: Any) -> Settings:
    return make_settings(
        tmp_path,
        app_id=APP_ID,
        app_password="test-only-password",
        bot_openid_metadata_url=metadata_url,
        **overrides,
    )


@pytest.fixture
async def bot(tmp_path: Path, aiohttp_client: AiohttpClient, openid: OpenIdServer) -> Teams:
    teams = Teams(
        aiohttp_client,
        authenticated(tmp_path, openid.metadata_url),
        RecordingConnector(),
        SERVICE_URL,
    )
    await teams.start()
    return teams


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": BOT_FRAMEWORK_ISSUER,
        "aud": APP_ID,
        "serviceurl": SERVICE_URL,
        "nbf": now - 60,
        "exp": now + 3600,
    }
    values.update(changes)
    return {name: value for name, value in values.items() if value is not None}


def mint(key: rsa.RSAPrivateKey, *, kid: str = KID, alg: str = "RS256", **changes: Any) -> str:
    return jwt.encode(claims(**changes), key, algorithm=alg, headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], body: dict[str, Any], secret: bytes | None) -> str:
    """A token PyJWT would refuse to make: unsigned, or HMAC-signed with the public key."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}"
    if secret is None:
        return f"{signing_input}."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def approve_click(bot: Teams, request_id: str) -> dict[str, Any]:
    activity = bot._base("invoke", ABE, personal(ABE))
    activity["name"] = "adaptiveCard/action"
    activity["value"] = {
        "action": {"type": "Action.Execute", "verb": "approve", "data": {"requestId": request_id}},
        "trigger": "manual",
    }
    return activity


async def post(bot: Teams, activity: dict[str, Any], token: str | None) -> tuple[int, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    response = await bot.client.post("/api/messages", json=activity, headers=headers)
    return response.status, await response.json()


async def test_a_correctly_signed_token_is_accepted_and_the_turn_runs(
    bot: Teams, signing_key: rsa.RSAPrivateKey, openid: OpenIdServer
) -> None:
    status, body = await post(bot, approve_click(bot, "PD-ZZZZ"), mint(signing_key))

    assert status == 200
    # The bot itself answered: the click reached the service, which knows no PD-ZZZZ.
    assert "PD-ZZZZ" in json.dumps(body)
    for _ in range(5):
        status, _ = await post(bot, approve_click(bot, "PD-ZZZZ"), mint(signing_key))
        assert status == 200
    # Metadata and keys, once, for every activity since.
    assert openid.fetches == ["/v1/.well-known/openidconfiguration", "/v1/.well-known/keys"]


def _tokens(key: rsa.RSAPrivateKey, other: rsa.RSAPrivateKey) -> dict[str, tuple[str | None, str]]:
    public_pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    now = int(time.time())
    return {
        "no header": (None, "no Authorization header"),
        "not a JWT": ("garbage", "not a well-formed JWT"),
        "three dots": ("a.b.c", "not a well-formed JWT"),
        "unsigned": (hand_signed({"alg": "none", "kid": KID}, claims(), None), "algorithm"),
        "unsigned without iss": (hand_signed({"alg": "none"}, claims(iss=None), None), "algorithm"),
        "HMAC with the public key": (
            hand_signed({"alg": "HS256", "kid": KID, "typ": "JWT"}, claims(), public_pem),
            "algorithm",
        ),
        "wrong signature": (mint(other), "signature does not match"),
        "expired": (mint(key, exp=now - 3600, nbf=now - 7200), "expired"),
        "not yet valid": (mint(key, nbf=now + 3600), "not valid yet"),
        "no expiry": (mint(key, exp=None), "no exp claim"),
        "another issuer": (mint(key, iss="https://sts.windows.net/attacker/"), "issued by"),
        "another app": (mint(key, aud="00000000-0000-0000-0000-000000000000"), "another app"),
        "unknown key": (mint(key, kid="made-up"), "key Bot Framework does not publish"),
        "another service URL": (
            mint(key, serviceurl="https://smba.trafficmanager.net/emea/"),
            "serviceurl claim does not match",
        ),
    }


TOKEN_CASES: Final = [
    "no header",
    "not a JWT",
    "three dots",
    "unsigned",
    "unsigned without iss",
    "HMAC with the public key",
    "wrong signature",
    "expired",
    "not yet valid",
    "no expiry",
    "another issuer",
    "another app",
    "unknown key",
    "another service URL",
]


@pytest.mark.parametrize("case", TOKEN_CASES)
async def test_every_other_token_is_a_401_with_one_warning_and_changes_nothing(
    case: str,
    bot: Teams,
    signing_key: rsa.RSAPrivateKey,
    other_key: rsa.RSAPrivateKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    token, reason = _tokens(signing_key, other_key)[case]
    pending = await bot.service.submit(RITA.person, _spec())
    assert pending.request is not None
    request_id = pending.request.id
    audit_before = await bot.service.audit(request_id)
    caplog.clear()

    status, body = await post(bot, approve_click(bot, request_id), token)

    assert status == 401
    assert reason in body["error"]["message"]
    warnings = [r for r in caplog.records if r.name == "bot.routes"]
    assert [r.levelno for r in warnings] == [logging.WARNING]
    assert reason in warnings[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info]
    # The click was an approval: refused, it approved nothing.
    after = await bot.service.get(request_id)
    assert after.status == pending.request.status
    assert await bot.service.audit(request_id) == audit_before


def _spec() -> NumberRequest:
    return NumberRequest(country="US", area_code="206", display_name="Front desk")


async def test_a_channel_the_key_is_not_endorsed_for_is_refused(
    bot: Teams, signing_key: rsa.RSAPrivateKey
) -> None:
    activity = {**approve_click(bot, "PD-ZZZZ"), "channelId": "skype"}
    status, body = await post(bot, activity, mint(signing_key))
    assert status == 401
    assert "not endorsed for channel 'skype'" in body["error"]["message"]


async def test_the_token_is_checked_before_the_body(bot: Teams) -> None:
    response = await bot.client.post(
        "/api/messages",
        data=b"[[[[not json",
        headers={"Authorization": "Bearer a.b.c", "Content-Type": "text/plain"},
    )
    assert response.status == 401


async def test_a_flood_of_forged_tokens_costs_at_most_one_fetch(
    bot: Teams, signing_key: rsa.RSAPrivateKey, openid: OpenIdServer
) -> None:
    # Each names a key id of its own, as an attacker's would, to force key refreshes.
    forged = [mint(signing_key, kid=f"forged-{n}") for n in range(200)]
    answers = await asyncio.gather(
        *(post(bot, approve_click(bot, "PD-ZZZZ"), token) for token in forged)
    )
    assert {status for status, _ in answers} == {401}
    assert openid.fetches.count("/v1/.well-known/keys") == 1


@dataclass
class LoopLag:
    """How late a 10 ms timer fires: the event loop's lag while something else runs."""

    worst_s: float = 0.0

    async def probe(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            self.worst_s = max(self.worst_s, time.perf_counter() - started - 0.01)


@pytest.fixture
async def lag() -> AsyncIterator[Callable[[], LoopLag]]:
    stop = asyncio.Event()
    probes: list[asyncio.Task[None]] = []
    measured = LoopLag()

    def start() -> LoopLag:
        probes.append(asyncio.create_task(measured.probe(stop)))
        return measured

    yield start
    stop.set()
    await asyncio.gather(*probes)


async def test_a_black_hole_login_endpoint_neither_stalls_the_loop_nor_floods_it(
    tmp_path: Path,
    aiohttp_client: AiohttpClient,
    black_hole: BlackHole,
    signing_key: rsa.RSAPrivateKey,
    lag: Callable[[], LoopLag],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = authenticated(
        tmp_path, f"{black_hole.url}v1/.well-known/openidconfiguration", bot_keys_timeout_s=1.0
    )
    bot = Teams(aiohttp_client, settings, RecordingConnector(), SERVICE_URL)
    await bot.start()
    measured = lag()

    started = time.monotonic()
    first_wave = asyncio.gather(
        *(post(bot, approve_click(bot, "PD-ZZZZ"), mint(signing_key)) for _ in range(20))
    )
    health = await bot.client.get("/healthz")
    assert health.status == 200
    healthz_s = time.monotonic() - started
    answers = await first_wave
    first_wave_s = time.monotonic() - started

    assert {status for status, _ in answers} == {503}
    retry_after = await bot.client.post(
        "/api/messages",
        json=approve_click(bot, "x"),
        headers={"Authorization": f"Bearer {mint(signing_key)}"},
    )
    assert retry_after.status == 503
    assert int(retry_after.headers["Retry-After"]) >= 1
    # The start-up fetch and every waiting request shared one connection; the failure is
    # remembered, so later requests cost nothing until the backoff ends.
    assert black_hole.connections == 1
    # Generous bounds: the old path froze the process for good.
    assert healthz_s < 1.0
    assert first_wave_s < 5.0
    assert measured.worst_s < 0.5
    warned = [r for r in caplog.records if r.name == "bot.channel_auth"]
    assert [r.levelno for r in warned] == [logging.WARNING]
    assert "no answer in time" in warned[0].getMessage()
    # The figure RELIABILITY.md quotes: run with -o log_cli=true --log-cli-level=INFO.
    logging.getLogger(__name__).info(
        f"loop lag during a black-hole key fetch: worst {measured.worst_s * 1000:.1f} ms; "
        f"/healthz in {healthz_s * 1000:.0f} ms; 20 requests answered 503 in {first_wave_s:.2f} s"
    )


async def test_a_refused_connection_to_the_login_endpoint_is_a_prompt_503(
    tmp_path: Path,
    aiohttp_client: AiohttpClient,
    unused_tcp_port: int,
    signing_key: rsa.RSAPrivateKey,
) -> None:
    settings = authenticated(
        tmp_path, f"http://127.0.0.1:{unused_tcp_port}/v1/.well-known/openidconfiguration"
    )
    bot = Teams(aiohttp_client, settings, RecordingConnector(), SERVICE_URL)
    await bot.start()

    status, body = await post(bot, approve_click(bot, "PD-ZZZZ"), mint(signing_key))

    assert status == 503
    assert "signing keys are not loaded" in body["error"]["message"]
