"""From a chat dialog to a provisioned number, through the approvers' channel.

Everything goes through /api/messages as Teams would send it, and everything the bot
sends is read back from the recording connector.
"""

from __future__ import annotations

from typing import Any

from bot.cards import VERB_APPROVE, VERB_CANCEL, VERB_REFRESH, VERB_REJECT
from provisioning.domain import RequestStatus
from tests.bot.teams import (
    ABE,
    RITA,
    Teams,
    card_of,
    card_text,
    card_verbs,
    channel_thread,
    personal,
    request_id_in,
    thread_of,
)
from tests.connector import SentActivity

ADAPTIVE = "application/vnd.microsoft.card.adaptive"


def status_line(card: dict[str, Any]) -> str:
    header = card["body"][0]
    return str(header["items"][1]["text"])


async def register_approvals_channel(teams: Teams) -> None:
    [reply] = await teams.say(ABE, "approvals here", channel_thread())
    assert "approvers' channel" in reply.body["text"]


async def submit_by_chat(teams: Teams) -> tuple[str, SentActivity]:
    """Rita asks for a number question by question and submits; returns the id and her card."""
    [ask_country] = await teams.say(RITA, "request")
    assert "Which country" in ask_country.body["text"]
    [ask_area] = await teams.say(RITA, "United States")
    assert "area code" in ask_area.body["text"]
    [ask_name] = await teams.say(RITA, "425")
    assert "called" in ask_name.body["text"]
    [confirm] = await teams.say(RITA, "Contoso Support")
    assert "contoso.support@" in card_text(card_of(confirm))
    [submitted] = await teams.say(RITA, "submit")
    return request_id_in(submitted.body["text"]), submitted


async def test_a_request_goes_from_chat_to_a_bound_number_with_cards_updated_in_place(
    teams: Teams,
) -> None:
    await register_approvals_channel(teams)
    request_id, rita_card = await submit_by_chat(teams)

    posts = teams.connector.posts()
    # A new thread in the channel, not a reply in the thread where `approvals here` was said.
    [channel_card] = [
        p for p in posts if p.conversation_id.startswith("19:approvals") and p.activity_id is None
    ]
    assert request_id in card_text(card_of(channel_card))
    assert request_id in card_text(card_of(rita_card))
    # Everyone sees the read-only card; approvers and Rita get their own views on refresh.
    assert card_verbs(card_of(channel_card)) == []
    assert card_of(channel_card)["refresh"]["action"]["verb"] == VERB_REFRESH

    abes_view = await teams.click(
        ABE, VERB_REFRESH, {"requestId": request_id}, thread_of(channel_card)
    )
    assert abes_view["type"] == ADAPTIVE
    assert VERB_APPROVE in card_verbs(abes_view["value"])
    ritas_view = await teams.click(RITA, VERB_REFRESH, {"requestId": request_id}, personal(RITA))
    assert card_verbs(ritas_view["value"]) == [VERB_CANCEL]

    approved = await teams.click(
        ABE,
        VERB_APPROVE,
        {"requestId": request_id},
        thread_of(channel_card),
        reply_to_id=channel_card.response_id,
    )

    # The new card comes back in the same HTTP response as the click.
    assert approved["statusCode"] == 200
    assert approved["type"] == ADAPTIVE
    assert "Approved by Abe" in card_text(approved["value"])
    assert VERB_APPROVE not in card_verbs(approved["value"])

    tracked = {(channel_card.conversation_id, channel_card.response_id)}
    tracked.add((rita_card.conversation_id, rita_card.response_id))

    def completed(card_id: str | None) -> bool:
        updates = teams.connector.updates(card_id)
        return bool(updates) and status_line(card_of(updates[-1])).startswith("Completed")

    await teams.connector.wait_until(
        lambda: completed(channel_card.response_id) and completed(rita_card.response_id),
        "both cards show the completed request",
    )
    request = await teams.service.get(request_id)
    assert request.status is RequestStatus.COMPLETED
    number, upn = request.result.telephone_number, request.result.upn
    assert number is not None
    assert upn is not None

    updates = teams.connector.updates()
    assert {(u.conversation_id, u.activity_id) for u in updates} <= tracked
    for card_id in (channel_card.response_id, rita_card.response_id):
        cards = [card_of(u) for u in teams.connector.updates(card_id)]
        final = card_text(cards[-1])
        assert number in final
        assert upn in final
        seen = [status_line(card) for card in cards]
        assert len(set(seen)) >= 2, seen  # it moved through states, not just to the end
        assert card_verbs(cards[-1]) == []


async def test_an_approver_cannot_approve_their_own_request(teams: Teams) -> None:
    await teams.say(ABE, 'request US 425 "Abe Line"')
    sent = await teams.say(ABE, "submit")
    request_id = request_id_in(sent[0].body["text"])

    answer = await teams.click(ABE, VERB_APPROVE, {"requestId": request_id}, personal(ABE))

    assert "can't approve your own request" in card_text(answer["value"])
    assert (await teams.service.get(request_id)).status is RequestStatus.PENDING_APPROVAL


async def test_reject_needs_a_reason_and_then_tells_everyone_why(teams: Teams) -> None:
    request_id, rita_card = await submit_by_chat(teams)

    refused = await teams.click(ABE, VERB_REJECT, {"requestId": request_id}, personal(ABE))
    assert "needs a reason" in card_text(refused["value"])
    assert (await teams.service.get(request_id)).status is RequestStatus.PENDING_APPROVAL

    rejected = await teams.click(
        ABE, VERB_REJECT, {"requestId": request_id, "reason": "Use the shared line"}, personal(ABE)
    )
    assert "Rejected by Abe" in card_text(rejected["value"])
    assert "Use the shared line" in card_text(rejected["value"])
    assert (await teams.service.get(request_id)).status is RequestStatus.REJECTED

    await teams.connector.wait_until(
        lambda: any(
            "Use the shared line" in card_text(card_of(u))
            for u in teams.connector.updates(rita_card.response_id)
        ),
        "Rita's card shows the reason",
    )
