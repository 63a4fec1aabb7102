"""The whole app against the in-process simulator, with a recording Bot Framework connector."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient, AiohttpServer

from provisioning.settings import Settings
from tests.bot.teams import Teams
from tests.connector import RecordingConnector
from tests.provisioning.conftest import make_settings


@pytest.fixture
def bot_settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def teams(
    aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient, bot_settings: Settings
) -> Teams:
    # The connector is set up first so it is torn down last: the app flushes card updates
    # to it while it stops.
    connector = RecordingConnector()
    server = await aiohttp_server(connector.app())
    client = Teams(aiohttp_client, bot_settings, connector, str(server.make_url("")))
    await client.start()
    return client
