"""Fixtures for the reliability suite: the bot harness, and a peer that never answers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from tests.bot.conftest import bot_settings, teams

__all__ = ["BlackHole", "black_hole", "bot_settings", "teams"]


@dataclass
class BlackHole:
    """A server that accepts connections and never answers, as a firewall that drops packets."""

    url: str
    connections: int = 0
    held: list[asyncio.StreamWriter] = field(default_factory=list)


@pytest.fixture
async def black_hole() -> AsyncIterator[BlackHole]:
    hole = BlackHole("")

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hole.connections += 1
        hole.held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    hole.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    yield hole
    for writer in hole.held:
        writer.close()
    server.close()
