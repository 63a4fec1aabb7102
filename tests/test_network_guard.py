"""The suite itself must be unable to reach the internet."""

from __future__ import annotations

import socket

import httpx
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from tests.conftest import NetworkAccessError


def test_connecting_to_a_public_address_fails_the_test() -> None:
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock,
        pytest.raises(NetworkAccessError),
    ):
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed, and never attempted


def test_resolving_microsofts_hosts_fails_the_test() -> None:
    with pytest.raises(NetworkAccessError):
        socket.getaddrinfo("graph.microsoft.com", 443)


async def test_httpx_to_microsoft_fails_the_test() -> None:
    async with httpx.AsyncClient() as client:
        with pytest.raises(NetworkAccessError):
            await client.get(
                "https://login.microsoftonline.com/common/v2.0/.well-known/openid-configuration"
            )


async def test_loopback_servers_still_work(aiohttp_client: AiohttpClient) -> None:
    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    client = await aiohttp_client(app)
    resp = await client.get("/")
    assert await resp.text() == "hi"
