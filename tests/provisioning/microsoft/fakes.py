"""Fakes shared by the client tests: a token provider, a clock and a scripted server."""

from __future__ import annotations

import random
from collections.abc import Callable

import httpx

from provisioning.microsoft.base import ApiClient
from provisioning.microsoft.retry import RetryPolicy

BASE_URL = "https://api.test/v1.0"
SCOPE = "https://api.test/.default"

Handler = Callable[[httpx.Request], httpx.Response]


class StaticTokens:
    def __init__(self, token: str = "test-token") -> None:
        self.token = token
        self.scopes: list[str] = []

    async def get_token(self, scope: str) -> str:
        self.scopes.append(scope)
        return self.token


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """A server that answers from a list of outcomes; the last one repeats forever."""

    def __init__(self, *outcomes: httpx.Response | Exception) -> None:
        self.outcomes = list(outcomes)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def graph_error(status: int, code: str, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"error": {"code": code, "message": f"{code} happened"}}, headers=headers
    )


def make_api(
    handler: Handler,
    *,
    time: FakeTime | None = None,
    tokens: StaticTokens | None = None,
    policy: RetryPolicy | None = None,
    base_url: str = BASE_URL,
) -> ApiClient:
    time = time or FakeTime()
    return ApiClient(
        http=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        base_url=base_url,
        scope=SCOPE,
        tokens=tokens or StaticTokens(),
        policy=policy or RetryPolicy(),
        rng=random.Random(1),
        sleep=time.sleep,
        clock=time.clock,
    )
