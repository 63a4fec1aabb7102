"""Where an authenticated bot may send replies: Microsoft's Bot Connector hosts, over https."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import JsonValue

from bot.adapter import create_adapter
from bot.edge import EdgeRefusal, check_service_url
from bot.proactive import ProactiveMessenger
from provisioning.settings import Settings
from tests.provisioning.conftest import make_settings


@pytest.fixture
def hosts(tmp_path: Path) -> list[str]:
    return make_settings(tmp_path).service_url_hosts


@pytest.mark.parametrize(
    "url",
    [
        "https://smba.trafficmanager.net/amer/",
        "https://smba.trafficmanager.net/teams/",
        "https://europe.webchat.botframework.com/",
        "https://smba.infra.gcc.teams.microsoft.com/gcc/",
        "https://smba.infra.gov.teams.microsoft.us/",
        "https://smba.infra.dod.teams.microsoft.us/",
    ],
)
def test_microsofts_connectors_are_allowed_by_default(url: str, hosts: list[str]) -> None:
    check_service_url(url, anonymous=False, allowed_hosts=hosts)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://smba.trafficmanager.net/amer/", "https"),
        ("https://attacker.example/", "not an allowed"),
        ("https://botframework.com.attacker.example/", "not an allowed"),
        ("https://evilbotframework.com/", "not an allowed"),
        ("https://127.0.0.1:3978/", "not an allowed"),
        ("https://smba.trafficmanager.net@attacker.example/", "not an allowed"),
    ],
)
def test_anything_else_is_refused_naming_the_field(url: str, why: str, hosts: list[str]) -> None:
    with pytest.raises(EdgeRefusal) as refused:
        check_service_url(url, anonymous=False, allowed_hosts=hosts)
    assert refused.value.status == 400
    assert "`serviceUrl`" in refused.value.message
    assert why in refused.value.message


def test_the_allow_list_is_a_comma_separated_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PHONEDESK_SERVICE_URL_HOSTS", "connector.contoso.test, *.relay.test")
    settings = Settings(data_dir=tmp_path)
    assert settings.service_url_hosts == ["connector.contoso.test", "*.relay.test"]
    check_service_url(
        "https://a.relay.test/", anonymous=False, allowed_hosts=settings.service_url_hosts
    )
    with pytest.raises(EdgeRefusal):
        check_service_url(
            "https://smba.trafficmanager.net/",
            anonymous=False,
            allowed_hosts=settings.service_url_hosts,
        )


async def test_a_stored_reference_to_a_public_host_is_not_followed_without_an_app_id(
    tmp_path: Path,
) -> None:
    messenger = ProactiveMessenger(create_adapter(make_settings(tmp_path), None), "")
    reference: dict[str, JsonValue] = {
        "serviceUrl": "https://attacker.example/",
        "channelId": "msteams",
        "conversation": {"id": "a:1"},
    }
    with pytest.raises(ValueError, match="loopback"):
        await messenger.update_card(reference, "1", {"type": "AdaptiveCard"})
    with pytest.raises(ValueError, match="loopback"):
        await messenger.post_to_channel(reference, "19:x", None, card={"type": "AdaptiveCard"})
