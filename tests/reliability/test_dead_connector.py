"""A Bot Connector that accepts connections and never answers must not hold a turn."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from botframework.connector.auth import ClaimsIdentity
from pytest_aiohttp import AiohttpClient

from bot.adapter import create_adapter
from tests.bot.teams import RITA, Teams, personal
from tests.connector import RecordingConnector
from tests.provisioning.conftest import make_settings
from tests.reliability.conftest import BlackHole


async def test_a_turn_ends_within_a_bound_when_the_connector_never_answers(
    tmp_path: Path,
    aiohttp_client: AiohttpClient,
    black_hole: BlackHole,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = make_settings(tmp_path, connector_read_timeout_s=1.0)
    teams = Teams(aiohttp_client, settings, RecordingConnector(), black_hole.url)
    await teams.start()
    caplog.set_level(logging.INFO)

    started = time.monotonic()
    response = await teams.client.post(
        "/api/messages", json={**teams._base("message", RITA, personal(RITA)), "text": "help"}
    )
    elapsed = time.monotonic() - started

    # Without the bound this took 200 s (two 100 s reads); the reply and the apology each
    # get one read timeout now.
    assert elapsed < 15, elapsed
    assert response.status < 500
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, [r.getMessage() for r in tracebacks]


async def test_connector_clients_get_the_configured_timeouts(tmp_path: Path) -> None:
    adapter = create_adapter(make_settings(tmp_path), None)
    factory = adapter.bot_framework_authentication.create_connector_factory(
        ClaimsIdentity({}, is_authenticated=False)
    )
    client = await factory.create("http://127.0.0.1:1/", "")
    assert client.config.connection.timeout == (3.0, 10.0)
    assert client.config.retry_policy.policy.read == 0
