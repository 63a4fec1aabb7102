"""A request dialog nobody finishes is forgotten after PHONEDESK_DIALOG_EXPIRY_H."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pytest_aiohttp import AiohttpClient

from tests.bot.teams import RITA, Teams, personal
from tests.connector import RecordingConnector
from tests.provisioning.conftest import make_settings


async def test_an_abandoned_dialog_is_forgotten_and_the_next_message_starts_afresh(
    tmp_path: Path, aiohttp_client: AiohttpClient
) -> None:
    # 0.36 s, so the sweep (a quarter of it) runs several times within the test.
    settings = make_settings(tmp_path, dialog_expiry_h=0.0001)
    connector = RecordingConnector()
    teams = Teams(aiohttp_client, settings, connector, "")
    server = await teams.aiohttp_client(connector.app())
    teams.service_url = str(server.make_url(""))
    await teams.start()
    [ask_country] = await teams.say(RITA, "request")
    assert "Which country" in ask_country.body["text"]
    conversation = personal(RITA).id

    for _ in range(200):
        if teams.store.load_dialog_state(conversation, RITA.person.aad_object_id) is None:
            break
        await asyncio.sleep(0.05)
    assert teams.store.load_dialog_state(conversation, RITA.person.aad_object_id) is None

    [reply] = await teams.say(RITA, "United States")
    assert "area code" not in reply.body["text"]
