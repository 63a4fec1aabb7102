"""A turn that fails inside still answers the user, and the log says why exactly once."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.bot.teams import RITA, Teams


async def test_a_failing_turn_apologises_and_logs_one_traceback(
    teams: Teams, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the store fell over")

    monkeypatch.setattr(teams.service, "list", broken)
    caplog.set_level(logging.INFO)

    replies = await teams.say(RITA, "status")

    texts = [str(r.body.get("text", "")) for r in replies]
    assert any("Sorry, something went wrong on my side" in t for t in texts), texts
    assert not any("RuntimeError" in t or "Traceback" in t for t in texts)
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1, [r.getMessage() for r in tracebacks]
