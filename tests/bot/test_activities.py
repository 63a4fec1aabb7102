"""Reading Teams activities: the bot's @mention, HTML entities and identity."""

from __future__ import annotations

from typing import Any

import pytest
from botbuilder.schema import Activity

from bot.activities import channel_id, message_text, person_of, tenant_id

BOT = {"id": "28:phonedesk-bot", "name": "PhoneDesk"}


def activity(text: str, **extra: Any) -> Activity:
    body = {
        "type": "message",
        "text": text,
        "recipient": BOT,
        "from": {"id": "29:1rita", "name": "Rita", "aadObjectId": "aad-rita"},
        "conversation": {"id": "a:chat", "conversationType": "personal"},
        "channelData": {"tenant": {"id": "tenant-1"}},
        **extra,
    }
    return Activity().deserialize(body)


def mention(name: str = "PhoneDesk", id_: str = BOT["id"]) -> dict[str, Any]:
    return {"type": "mention", "text": f"<at>{name}</at>", "mentioned": {"id": id_, "name": name}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<at>PhoneDesk</at>&nbsp;status PD-7K3Q", "status PD-7K3Q"),
        (
            "<at>PhoneDesk</at> request US 425 &quot;PhoneDesk Support&quot;",
            'request US 425 "PhoneDesk Support"',
        ),
        ("<p><at>PhoneDesk</at>\xa0help</p>", "help"),
        ("  mine  ", "mine"),
    ],
)
def test_the_bots_mention_goes_and_the_words_stay(text: str, expected: str) -> None:
    assert message_text(activity(text, entities=[mention()])) == expected


def test_someone_elses_mention_stays_as_their_name() -> None:
    text = "<at>PhoneDesk</at> request US 425 <at>Abe</at>"
    entities = [mention(), mention("Abe", "29:1abe")]
    assert message_text(activity(text, entities=entities)) == "request US 425 Abe"


def test_identity_comes_from_the_aad_object_id() -> None:
    person = person_of(activity("hi"))
    assert person is not None
    assert person.aad_object_id == "aad-rita"
    assert person_of(activity("hi", **{"from": {"id": "29:x", "name": "No Id"}})) is None


def test_a_channel_message_names_its_channel_without_the_thread() -> None:
    message = activity(
        "hi",
        conversation={
            "id": "19:general@thread.tacv2;messageid=17",
            "conversationType": "channel",
        },
        channelData={"tenant": {"id": "tenant-1"}},
    )
    assert channel_id(message) == "19:general@thread.tacv2"
    assert tenant_id(message) == "tenant-1"
    assert channel_id(activity("hi")) is None
