"""The bot server's local API, and the CLI going through it instead of a second engine."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from aiohttp.test_utils import TestServer
from pytest_aiohttp import AiohttpServer

from app import create_app
from provisioning.interfaces.cli import run
from provisioning.interfaces.local_api import (
    LOCAL_API_PREFIX,
    LocalApiInfo,
    connect_local_api,
    is_loopback_address,
    local_api_path,
    read_local_api_info,
)
from provisioning.settings import Settings
from tests.provisioning.conftest import APPROVER, REQUESTER, make_settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    settings: Settings
    server: TestServer
    info: LocalApiInfo

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        secret = self.info.token.get_secret_value() if token is None else token
        return httpx.AsyncClient(
            base_url=self.info.url + LOCAL_API_PREFIX,
            headers={"Authorization": f"Bearer {secret}"} if secret else {},
        )


@pytest.fixture
async def running(aiohttp_server: AiohttpServer, tmp_path: Path) -> Server:
    # The server advertises the port it was configured with, so it must listen there.
    settings = make_settings(tmp_path, port=free_port())
    server = await aiohttp_server(await create_app(settings), port=settings.port)
    info = read_local_api_info(settings.data_dir)
    assert info is not None
    return Server(settings, server, info)


async def phonedesk(settings: Settings, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = await run(list(argv), settings=settings)
    return code, out.getvalue(), err.getvalue()


async def test_the_server_advertises_itself_to_its_owner_only_while_it_runs(
    running: Server,
) -> None:
    path = local_api_path(running.settings.data_dir)

    assert running.info.url == f"http://127.0.0.1:{running.settings.port}"
    assert running.info.pid == os.getpid()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    await running.server.close()
    assert not path.exists()


async def test_requests_without_the_right_token_are_unauthorized(running: Server) -> None:
    for token in ("", "not-the-token"):
        async with running.client(token) as client:
            response = await client.get("/requests")

        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "unauthorized"


async def test_proxied_requests_are_refused_even_with_the_token(running: Server) -> None:
    async with running.client() as client:
        response = await client.get("/ping", headers={"X-Forwarded-For": "203.0.113.7"})

    assert response.status_code == 403
    assert "proxied" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.5", False),
        ("203.0.113.7", False),
        ("::ffff:10.0.0.5", False),
        ("fe80::1%eth0", False),
        ("", False),
        (None, False),
        ("localhost", False),
    ],
)
def test_only_loopback_peers_count_as_local(address: str | None, loopback: bool) -> None:
    assert is_loopback_address(address) is loopback


async def test_bad_input_is_a_400_naming_the_field(running: Server) -> None:
    actor = REQUESTER.model_dump()
    async with running.client() as client:
        bad_country = await client.post(
            "/requests",
            json={"actor": actor, "request": {"country": "ZZ", "display_name": "X"}},
        )
        no_actor = await client.post(
            "/requests", json={"request": {"country": "US", "display_name": "X"}}
        )
        not_json = await client.post("/requests", content=b"{nope")
        bad_id = await client.get("/requests/not-an-id")
        bad_status = await client.get("/requests", params={"status": "done"})

    for response, field in [
        (bad_country, "request.country"),
        (no_actor, "actor"),
        (not_json, "body"),
        (bad_id, "request_id"),
        (bad_status, "status"),
    ]:
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "bad_request"
        assert error["message"].startswith(f"{field}:"), error


async def test_unknown_requests_and_routes_are_json_404s(running: Server) -> None:
    async with running.client() as client:
        unknown_request = await client.get("/requests/PD-2222")
        unknown_route = await client.get("/nothing-here")

    assert unknown_request.status_code == 404
    assert unknown_request.json()["error"] == {
        "code": "request_not_found",
        "message": "no request PD-2222",
        "request_id": "PD-2222",
    }
    assert unknown_route.status_code == 404
    assert unknown_route.json()["error"]["code"] == "not_found"


async def test_wait_says_whether_the_status_was_reached(running: Server) -> None:
    async with running.client() as client:
        submitted = await client.post(
            "/requests",
            json={
                "actor": REQUESTER.model_dump(),
                "request": {"country": "US", "area_code": "425", "display_name": "Waited For"},
            },
        )
        request_id = submitted.json()["request"]["id"]
        still_pending = await client.get(
            f"/requests/{request_id}/wait", params={"status": "completed", "timeout_s": "0.05"}
        )
        pending = await client.get(
            f"/requests/{request_id}/wait", params={"status": "pending_approval"}
        )

    assert submitted.json()["ok"] is True
    assert still_pending.json()["reached"] is False
    assert still_pending.json()["request"]["status"] == "pending_approval"
    assert pending.json()["reached"] is True


async def test_the_cli_goes_through_the_running_server(running: Server) -> None:
    code, out, err = await phonedesk(
        running.settings,
        "request",
        "US",
        "425",
        "Served Support",
        "--as",
        REQUESTER.aad_object_id,
        "--approve-as",
        APPROVER.aad_object_id,
        "--wait",
        "--json",
    )

    assert code == 0, err
    # Through the server: an embedded engine would have said so and been refused.
    assert "note:" not in err
    final = json.loads(out)["request"]
    assert final["status"] == "completed"
    assert final["result"]["upn"] == "served.support@contoso.onmicrosoft.com"
    code, out, _ = await phonedesk(running.settings, "audit", final["id"], "--json")
    assert code == 0
    assert "provisioning.completed" in [entry["action"] for entry in json.loads(out)]


async def test_a_refusal_through_the_server_exits_non_zero_with_its_message(
    running: Server,
) -> None:
    code, out, err = await phonedesk(
        running.settings, "request", "US", "425", "Self Approved", "--as", REQUESTER.aad_object_id
    )
    assert code == 0, err
    request_id = out.split()[0]

    code, _, err = await phonedesk(
        running.settings, "approve", request_id, "--as", REQUESTER.aad_object_id
    )

    assert code == 1
    assert err.strip() == "phonedesk: Only approvers can approve requests."


async def test_an_advert_left_by_a_dead_server_is_ignored(tmp_path: Path) -> None:
    local_api_path(tmp_path).write_text(
        json.dumps(
            {
                "url": f"http://127.0.0.1:{free_port()}",
                "token": "stale",
                "pid": 1,
                "started_at": "2026-01-01T00:00:00Z",
            }
        )
    )

    assert await connect_local_api(tmp_path) is None
