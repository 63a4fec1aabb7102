"""Connects PhoneDesk to Microsoft 365: a real tenant, or the built-in simulator.

The HTTP clients are identical in both cases; only the base URLs and the token
provider differ.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Literal

import httpx
from pydantic import SecretStr

from provisioning.microsoft.auth import (
    ClientCertificate,
    MsalTokenProvider,
    SimulatorTokenProvider,
    TokenProvider,
)
from provisioning.microsoft.base import ApiClient
from provisioning.microsoft.graph import GRAPH_SCOPE, GraphClient
from provisioning.microsoft.pacing import Pacer
from provisioning.microsoft.retry import RetryPolicy
from provisioning.microsoft.teams_admin import TEAMS_ADMIN_SCOPE, TeamsAdminClient
from provisioning.settings import ConfigError, Settings
from provisioning.simulator.server import RunningSimulator, start_simulator
from provisioning.simulator.wire import AUTH_PREFIX, GRAPH_PREFIX, TEAMS_PREFIX

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Microsoft365:
    mode: Literal["simulator", "tenant"]
    graph: GraphClient
    teams_admin: TeamsAdminClient
    graph_base_url: str
    teams_admin_base_url: str
    simulator: RunningSimulator | None


@asynccontextmanager
async def connect_microsoft(settings: Settings) -> AsyncIterator[Microsoft365]:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(
            httpx.AsyncClient(timeout=httpx.Timeout(settings.http_timeout_s))
        )
        simulator: RunningSimulator | None = None
        tokens: TokenProvider
        if settings.uses_simulator:
            if settings.simulator_url:
                base_url = settings.simulator_url.rstrip("/")
                log.info("Using the Microsoft 365 simulator at %s", base_url)
            else:
                simulator = await stack.enter_async_context(
                    start_simulator(
                        settings.simulator, host="127.0.0.1", port=settings.simulator_port
                    )
                )
                base_url = simulator.base_url
            graph_base = base_url + GRAPH_PREFIX
            teams_base = base_url + TEAMS_PREFIX
            tokens = SimulatorTokenProvider(
                http,
                token_url=f"{base_url}{AUTH_PREFIX}/{settings.simulator.tenant_id}/oauth2/v2.0/token",
                client_id=settings.simulator.client_id,
                client_secret=settings.simulator.client_secret,
            )
            log.warning(
                "No Microsoft 365 tenant configured: using the built-in simulator at %s "
                "(time scale %s: 15-20 minutes of account propagation take ~%.0f s). "
                "Set PHONEDESK_TENANT_ID, PHONEDESK_CLIENT_ID and PHONEDESK_CLIENT_SECRET "
                "(or PHONEDESK_CLIENT_CERTIFICATE_PATH) to provision in a real tenant.",
                base_url,
                settings.simulator.time_scale,
                17.5 * 60 * settings.simulator.time_scale,
            )
        else:
            # Settings validation guarantees both once a tenant is configured.
            assert settings.tenant_id is not None
            assert settings.client_id is not None
            graph_base = settings.graph_base_url
            teams_base = settings.teams_admin_base_url
            tokens = MsalTokenProvider(
                tenant_id=settings.tenant_id,
                client_id=settings.client_id,
                client_secret=settings.client_secret,
                certificate=_load_certificate(settings),
                authority=f"{settings.authority_host.rstrip('/')}/{settings.tenant_id}",
            )
            log.info("Provisioning in Microsoft 365 tenant %s", settings.tenant_id)
        policy = RetryPolicy()
        graph = GraphClient(
            ApiClient(
                http=http, base_url=graph_base, scope=GRAPH_SCOPE, tokens=tokens, policy=policy
            )
        )
        teams_admin = TeamsAdminClient(
            ApiClient(
                http=http,
                base_url=teams_base,
                scope=TEAMS_ADMIN_SCOPE,
                tokens=tokens,
                policy=policy,
                # Oldest request first: the Teams admin API does most of stages 1 and 2, so
                # early requests reach the license and binding (Graph) while later ones are
                # still ordering. Graph stays first come, first served, so that a young
                # request's number lookups never starve behind older requests' bindings.
                pacer=Pacer(clock=time.monotonic, sleep=asyncio.sleep, by_priority=True),
            )
        )
        yield Microsoft365(
            mode="simulator" if settings.uses_simulator else "tenant",
            graph=graph,
            teams_admin=teams_admin,
            graph_base_url=graph_base,
            teams_admin_base_url=teams_base,
            simulator=simulator,
        )


def _load_certificate(settings: Settings) -> ClientCertificate | None:
    path = settings.client_certificate_path
    if path is None:
        return None
    try:
        pem = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"PHONEDESK_CLIENT_CERTIFICATE_PATH: cannot read a PEM file at {path}: {exc}"
        ) from None
    return ClientCertificate(
        private_key_pem=SecretStr(pem), thumbprint=settings.client_certificate_thumbprint
    )
