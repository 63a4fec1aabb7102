"""The whole app, started as `make run` starts it: health, and a help round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient, AiohttpServer

from app import create_app
from provisioning.settings import ConfigError, Settings
from tests.connector import RecordingConnector


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path, **overrides)


def message(text: str, service_url: str, **extra: Any) -> dict[str, Any]:
    activity: dict[str, Any] = {
        "type": "message",
        "id": "incoming-1",
        "channelId": "msteams",
        "serviceUrl": service_url,
        "text": text,
        "from": {"id": "29:requester", "name": "Rita Requester", "aadObjectId": "aad-rita"},
        "recipient": {"id": "28:phonedesk", "name": "PhoneDesk"},
        "conversation": {"id": "a:personal-chat", "conversationType": "personal"},
        "channelData": {"tenant": {"id": "tenant-1"}},
    }
    activity.update(extra)
    return activity


async def test_healthz_reports_kinds_but_no_addresses(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    client = await aiohttp_client(await create_app(make_settings(tmp_path)))
    resp = await client.get("/healthz")
    assert resp.status == 200
    body = await resp.json()
    assert body["status"] == "ok"
    assert body["version"]
    assert body["database"] == {"ok": True, "backend": "sqlite"}
    assert body["microsoft365"] == {"mode": "simulator"}
    assert body["bot"] == {"auth": "anonymous"}
    text = await resp.text()
    assert "http" not in text
    assert "127.0.0.1" not in text
    assert str(tmp_path) not in text


async def test_help_reply_is_delivered_to_the_service_url(
    aiohttp_client: AiohttpClient, aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    connector = RecordingConnector()
    connector_server = await aiohttp_server(connector.app())
    client = await aiohttp_client(await create_app(make_settings(tmp_path)))

    resp = await client.post(
        "/api/messages", json=message("help", str(connector_server.make_url("")))
    )

    assert resp.status in (200, 201)
    assert len(connector.sent) == 1
    reply = connector.sent[0]
    assert reply.conversation_id == "a:personal-chat"
    assert reply.activity_id == "incoming-1"  # a reply to the user's message
    assert "request" in reply.body["text"]
    assert "pending" not in reply.body["text"]  # requesters don't see approver commands


async def test_channel_mention_is_stripped_and_approvers_see_their_commands(
    aiohttp_client: AiohttpClient, aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    connector = RecordingConnector()
    connector_server = await aiohttp_server(connector.app())
    client = await aiohttp_client(await create_app(make_settings(tmp_path, approvers=["aad-alex"])))
    activity = message(
        "<at>PhoneDesk</at> help",
        str(connector_server.make_url("")),
        **{
            "from": {"id": "29:alex", "name": "Alex Approver", "aadObjectId": "aad-alex"},
            "conversation": {"id": "19:approvals@thread.tacv2", "conversationType": "channel"},
            "entities": [
                {
                    "type": "mention",
                    "text": "<at>PhoneDesk</at>",
                    "mentioned": {"id": "28:phonedesk", "name": "PhoneDesk"},
                }
            ],
        },
    )

    resp = await client.post("/api/messages", json=activity)

    assert resp.status in (200, 201)
    assert "pending" in connector.sent[0].body["text"]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b'{"text": "no type"}', "application/json", 400),
        (b"help", "text/plain", 415),
    ],
)
async def test_malformed_posts_get_a_clear_error_not_a_500(
    aiohttp_client: AiohttpClient, tmp_path: Path, body: bytes, content_type: str, status: int
) -> None:
    client = await aiohttp_client(await create_app(make_settings(tmp_path)))
    resp = await client.post("/api/messages", data=body, headers={"Content-Type": content_type})
    assert resp.status == status
    assert (await resp.json())["error"]["message"]


async def test_anonymous_bot_refuses_to_serve_a_public_address(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        await create_app(make_settings(tmp_path, host="0.0.0.0"))


def test_simulator_command_refuses_a_bad_time_scale(capsys: pytest.CaptureFixture[str]) -> None:
    from provisioning.interfaces.cli import main

    assert main(["simulator", "--time-scale", "-1"]) == 2
    assert "time_scale" in capsys.readouterr().err
