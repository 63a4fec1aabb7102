"""How often PhoneDesk asks Microsoft for Bot Framework's signing keys, on a fake clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from bot.channel_auth import KeysUnavailable, SigningKeys

METADATA = "https://login.botframework.com/v1/.well-known/openidconfiguration"
JWKS = "https://login.botframework.com/v1/.well-known/keys"


@dataclass
class Login:
    """Microsoft's login endpoint as an httpx transport: it can be up or down."""

    up: bool = True
    kids: list[str] = field(default_factory=lambda: ["k1"])
    jwks_uri: str = JWKS
    requests: list[str] = field(default_factory=list)
    key: Any = field(default_factory=lambda: rsa.generate_private_key(65537, 2048).public_key())

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        if not self.up:
            raise httpx.ConnectError("connection refused", request=request)
        if str(request.url) == METADATA:
            return httpx.Response(200, json={"jwks_uri": self.jwks_uri})
        jwks = []
        for kid in self.kids:
            jwk = RSAAlgorithm.to_jwk(self.key, as_dict=True)
            jwk.update(kid=kid, endorsements=["msteams"])
            jwks.append(jwk)
        return httpx.Response(200, json={"keys": jwks})

    @property
    def fetches(self) -> int:
        return self.requests.count(METADATA)


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def login() -> Login:
    return Login()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def keys(login: Login, clock: Clock) -> AsyncIterator[SigningKeys]:
    signing_keys = SigningKeys(METADATA, clock=clock, transport=httpx.MockTransport(login.handle))
    yield signing_keys
    await signing_keys.aclose()


async def test_many_requests_at_once_share_one_fetch(keys: SigningKeys, login: Login) -> None:
    found = await asyncio.gather(*(keys.get("k1") for _ in range(50)))
    assert all(key is not None and key.endorsements == {"msteams"} for key in found)
    assert login.fetches == 1


async def test_keys_are_kept_for_a_day(keys: SigningKeys, login: Login, clock: Clock) -> None:
    await keys.get("k1")
    clock.now += 23 * 3600
    await keys.get("k1")
    assert login.fetches == 1
    clock.now += 2 * 3600
    await keys.get("k1")
    assert login.fetches == 2


async def test_an_unknown_key_id_refetches_at_most_once_an_hour(
    keys: SigningKeys, login: Login, clock: Clock
) -> None:
    await keys.get("k1")
    clock.now += 3601
    for n in range(20):
        assert await keys.get(f"forged-{n}") is None
    assert login.fetches == 2
    # Microsoft rotated its keys: the new one is picked up by the next hourly refetch.
    login.kids = ["k1", "k2"]
    assert await keys.get("k2") is None
    clock.now += 3601
    assert await keys.get("k2") is not None
    assert login.fetches == 3


async def test_a_failed_fetch_is_remembered_and_retried_with_a_doubling_backoff(
    keys: SigningKeys, login: Login, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    login.up = False
    with pytest.raises(KeysUnavailable) as first:
        await keys.get("k1")
    assert first.value.retry_after_s == 30
    for _ in range(100):
        with pytest.raises(KeysUnavailable):
            await keys.get("k1")
    assert login.fetches == 1
    clock.now += 30
    with pytest.raises(KeysUnavailable) as second:
        await keys.get("k1")
    assert second.value.retry_after_s == 60
    assert login.fetches == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "login.botframework.com" in warnings[0]
    assert "next try in 30 s" in warnings[0]
    login.up = True
    clock.now += 60
    assert await keys.get("k1") is not None
    assert login.fetches == 3


async def test_the_backoff_stops_growing_at_a_quarter_of_an_hour(
    keys: SigningKeys, login: Login, clock: Clock
) -> None:
    login.up = False
    waits = []
    for _ in range(8):
        with pytest.raises(KeysUnavailable) as unavailable:
            await keys.get("k1")
        waits.append(unavailable.value.retry_after_s)
        clock.now += unavailable.value.retry_after_s
    assert waits == [30, 60, 120, 240, 480, 900, 900, 900]


async def test_keys_loaded_earlier_are_used_while_the_endpoint_is_down(
    keys: SigningKeys, login: Login, clock: Clock
) -> None:
    await keys.get("k1")
    login.up = False
    clock.now += 25 * 3600
    assert await keys.get("k1") is not None
    assert login.fetches == 2


async def test_a_key_set_outside_https_is_not_trusted(
    keys: SigningKeys, login: Login, caplog: pytest.LogCaptureFixture
) -> None:
    login.jwks_uri = "http://keys.attacker.example/keys"
    with pytest.raises(KeysUnavailable):
        await keys.get("k1")
    assert "jwks_uri is not an https URL" in caplog.text
    assert "keys.attacker.example" not in " ".join(login.requests)
