"""Chat commands through the whole app: status, mine, pending, numbers and the rest."""

from __future__ import annotations

from tests.bot.teams import (
    ABE,
    RITA,
    SAM,
    Teams,
    card_of,
    card_text,
    channel_thread,
    request_id_in,
)


async def submit(teams: Teams, name: str) -> str:
    await teams.say(RITA, f'request US 425 "{name}"')
    sent = await teams.say(RITA, "submit")
    return request_id_in(sent[0].body["text"])


async def test_status_mine_and_pending_show_the_requests(teams: Teams) -> None:
    first = await submit(teams, "Contoso Support")
    second = await submit(teams, "Contoso Sales")

    [status] = await teams.say(RITA, "status")
    assert second in status.body["text"]  # no id: the latest request
    assert second in card_text(card_of(status))
    [by_id] = await teams.say(RITA, f"status {first.lower().removeprefix('pd-')}")
    assert first in card_text(card_of(by_id))

    [mine] = await teams.say(RITA, "mine")
    assert first in mine.body["text"]
    assert second in mine.body["text"]
    assert "Contoso Sales" in mine.body["text"]

    [pending] = await teams.say(ABE, "pending")
    assert first in pending.body["text"]
    assert second in pending.body["text"]
    [not_for_rita] = await teams.say(RITA, "pending")
    assert "only for approvers" in not_for_rita.body["text"]


async def test_numbers_lists_the_tenants_free_service_numbers(teams: Teams) -> None:
    [numbers] = await teams.say(RITA, "numbers")
    assert "Unassigned service numbers" in numbers.body["text"]
    assert "+1425" in numbers.body["text"]
    assert "free" in numbers.body["text"]


async def test_an_unknown_request_id_gets_a_plain_answer(teams: Teams) -> None:
    [answer] = await teams.say(RITA, "status PD-ZZZZ")
    assert answer.body["text"] == "No request PD-ZZZZ."
    [cancel] = await teams.say(RITA, "cancel PD-ZZZZ")
    assert cancel.body["text"] == "No request PD-ZZZZ."


async def test_cancel_and_audit_by_command(teams: Teams) -> None:
    request_id = await submit(teams, "Contoso Support")

    [refused] = await teams.say(SAM, f"cancel {request_id}")
    assert "Only the requester or an approver" in refused.body["text"]
    [cancelled] = await teams.say(RITA, f"cancel {request_id}")
    assert "cancelled by Rita" in cancelled.body["text"]

    [audit] = await teams.say(ABE, f"audit {request_id}")
    assert "request.submitted" in audit.body["text"]
    assert "refused" in audit.body["text"]
    assert "request.cancelled" in audit.body["text"]


async def test_only_an_approver_can_choose_the_approvers_channel(teams: Teams) -> None:
    [refused] = await teams.say(RITA, "approvals here", channel_thread())
    assert "only for approvers" in refused.body["text"]
    [not_a_channel] = await teams.say(ABE, "approvals here")
    assert "works in a Teams channel" in not_a_channel.body["text"]
    [help_text] = await teams.say(ABE, "help")
    assert "approvals here" in help_text.body["text"]
    assert "No approvers' channel is registered yet" in help_text.body["text"]

    [registered] = await teams.say(ABE, "approvals here", channel_thread())

    assert "now the approvers' channel" in registered.body["text"]
    assert registered.activity_id is not None  # answered in the thread it was asked in
    [help_after] = await teams.say(ABE, "help")
    assert "No approvers' channel" not in help_after.body["text"]
