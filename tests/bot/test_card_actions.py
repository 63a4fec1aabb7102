"""Clicks on cards (adaptiveCard/action invokes): checked on the server, answered at once."""

from __future__ import annotations

import asyncio

from bot.cards import VERB_APPROVE, VERB_CANCEL, VERB_DIALOG, VERB_REFRESH
from dialogs import FormField
from provisioning.domain import RequestStatus
from tests.bot.teams import (
    ABE,
    ANN,
    RITA,
    SAM,
    Teams,
    action_data,
    card_of,
    card_text,
    card_verbs,
    channel_thread,
    personal,
    request_id_in,
)

ADAPTIVE = "application/vnd.microsoft.card.adaptive"


async def submitted_request(teams: Teams) -> str:
    await teams.say(RITA, 'request US 425 "Contoso Support"')
    sent = await teams.say(RITA, "submit")
    return request_id_in(sent[0].body["text"])


async def test_someone_who_is_not_an_approver_cannot_approve(teams: Teams) -> None:
    request_id = await submitted_request(teams)

    answer = await teams.click(SAM, VERB_APPROVE, {"requestId": request_id}, personal(SAM))

    assert answer["type"] == ADAPTIVE
    assert "Only approvers can approve" in card_text(answer["value"])
    assert card_verbs(answer["value"]) == []  # Sam's view has nothing to click
    assert (await teams.service.get(request_id)).status is RequestStatus.PENDING_APPROVAL


async def test_a_double_click_on_approve_approves_once_and_shows_the_current_card(
    teams: Teams,
) -> None:
    request_id = await submitted_request(teams)
    data = {"requestId": request_id}

    first, second = [
        await teams.click(approver, VERB_APPROVE, data, personal(approver))
        for approver in (ABE, ANN)
    ]

    assert "approved by Abe" in card_text(first["value"])
    stale = card_text(second["value"])
    assert "already approved by Abe" in stale
    assert "Approved by Abe" in stale  # the current state, not the one Ann clicked on
    assert VERB_APPROVE not in card_verbs(second["value"])
    request = await teams.service.get(request_id)
    assert request.decision is not None
    assert request.decision.by.aad_object_id == ABE.person.aad_object_id
    entries = await asyncio.to_thread(teams.store.list_audit, request_id)
    assert [e.action for e in entries].count("request.approved") == 1


async def test_approve_after_cancel_changes_nothing(teams: Teams) -> None:
    request_id = await submitted_request(teams)
    data = {"requestId": request_id}
    cancelled = await teams.click(RITA, VERB_CANCEL, data, personal(RITA))
    assert "cancelled by Rita" in card_text(cancelled["value"])

    late = await teams.click(ABE, VERB_APPROVE, data, personal(ABE))

    assert "already cancelled; nothing changed" in card_text(late["value"])
    assert (await teams.service.get(request_id)).status is RequestStatus.CANCELLED
    assert card_verbs(late["value"]) == []


async def test_refresh_gives_each_reader_their_own_view(teams: Teams) -> None:
    request_id = await submitted_request(teams)
    data = {"requestId": request_id}

    views = {
        user.mri: card_verbs((await teams.click(user, VERB_REFRESH, data, personal(user)))["value"])
        for user in (ABE, RITA, SAM)
    }

    assert VERB_APPROVE in views[ABE.mri]
    assert views[RITA.mri] == [VERB_CANCEL]
    assert views[SAM.mri] == []


async def test_submit_on_the_summary_card_turns_it_into_the_request_card(teams: Teams) -> None:
    [summary] = await teams.say(RITA, 'request US 425 "Contoso Support"')
    submit = action_data(card_of(summary), "Submit")

    answer = await teams.click(
        RITA, VERB_DIALOG, submit, personal(RITA), reply_to_id=summary.response_id
    )

    assert answer["type"] == ADAPTIVE
    request_id = request_id_in(card_text(answer["value"]))
    assert card_verbs(answer["value"]) == [VERB_CANCEL]
    await teams.connector.wait_until(
        lambda: any(
            request_id in card_text(card_of(u))
            for u in teams.connector.updates(summary.response_id)
        ),
        "the summary message is replaced by the request card for everyone",
    )
    # A second click on the same Submit finds the dialog over and submits nothing more.
    again = await teams.click(RITA, VERB_DIALOG, submit, personal(RITA))
    assert "no longer open" in again["value"]
    assert len(await teams.service.list(requester_id=RITA.person.aad_object_id)) == 1


async def test_the_form_in_a_channel_shows_errors_inline_and_submits_once(teams: Teams) -> None:
    thread = channel_thread("1700000000777")
    [form] = await teams.say(RITA, "request", thread)
    submit = action_data(card_of(form), "Submit for approval")

    bad = await teams.click(
        RITA,
        VERB_DIALOG,
        {**submit, FormField.COUNTRY: "US", FormField.AREA_CODE: "425"},
        thread,
        reply_to_id=form.response_id,
    )
    assert bad["type"] == ADAPTIVE
    assert "display name" in card_text(bad["value"]).lower()
    assert await teams.service.list(requester_id=RITA.person.aad_object_id) == []

    filled = {
        **submit,
        FormField.COUNTRY: "US",
        FormField.AREA_CODE: "425",
        FormField.DISPLAY_NAME: "Contoso Support",
    }
    good = await teams.click(RITA, VERB_DIALOG, filled, thread, reply_to_id=form.response_id)
    twice = await teams.click(RITA, VERB_DIALOG, filled, thread, reply_to_id=form.response_id)

    request_id = request_id_in(card_text(good["value"]))
    assert "already submitted as " + request_id in card_text(twice["value"])
    assert len(await teams.service.list(requester_id=RITA.person.aad_object_id)) == 1


async def test_edit_on_the_summary_goes_on_in_the_chat_and_cancel_ends_the_dialog(
    teams: Teams,
) -> None:
    chat = personal(RITA)
    [summary] = await teams.say(RITA, 'request US 425 "Contoso Support"')
    before = len(teams.connector.sent)

    edit = await teams.click(
        RITA, VERB_DIALOG, action_data(card_of(summary), "Edit"), chat, reply_to_id="x"
    )

    assert edit["type"] == "application/vnd.microsoft.activity.message"
    [question] = [s for s in teams.connector.sent[before:] if s.method == "POST"]
    assert "What would you like to change" in question.body["text"]
    offered = [a["value"] for a in question.body["suggestedActions"]["actions"]]
    assert "Display name" in offered

    [summary_again] = await teams.say(RITA, "nothing")
    cancel = await teams.click(
        RITA, VERB_DIALOG, action_data(card_of(summary_again), "Cancel"), chat
    )

    assert cancel["value"] == "Cancelled; nothing was submitted."
    state = await asyncio.to_thread(
        teams.store.load_dialog_state, chat.id, RITA.person.aad_object_id
    )
    assert state is None
    assert await teams.service.list(requester_id=RITA.person.aad_object_id) == []
