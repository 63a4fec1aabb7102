from __future__ import annotations

from datetime import timedelta

import pytest

from dialogs import (
    Cancelled,
    CommandName,
    ConfirmationCardSpec,
    DialogContext,
    DialogKey,
    DialogState,
    Expired,
    RequestFormSpec,
    Role,
    Step,
    Submitted,
    Turn,
    TurnResult,
    handle_turn,
    load_state,
)
from dialogs.state import AreaChoice
from provisioning.domain import AccountType, NumberRequest, NumberType
from tests.dialogs.chat import DOMAIN, NOW, Chat, make_context, make_offer


def step(chat: Chat) -> Step | None:
    state = chat.state
    return state.step if state else None


def card(chat: Chat) -> ConfirmationCardSpec:
    cards = [r.card for r in chat.last.replies if isinstance(r.card, ConfirmationCardSpec)]
    assert len(cards) == 1, chat.last
    return cards[0]


def summary(chat: Chat) -> dict[str, str]:
    return {f.label: f.value for f in card(chat).fields}


def submitted(result: TurnResult) -> Submitted:
    assert isinstance(result.outcome, Submitted), result
    return result.outcome


def at_confirmation(chat: Chat, one_shot: str = 'US 425 "Contoso Support"') -> Chat:
    chat.say(f"request {one_shot}")
    assert step(chat) is Step.CONFIRM, chat.text
    return chat


# --- asking for what is missing ---------------------------------------------------------


def test_request_asks_for_the_country_first(chat: Chat) -> None:
    chat.say("request")
    assert step(chat) is Step.COUNTRY
    assert "Which country" in chat.text
    assert chat.suggestions[:3] == ("United States", "United Kingdom", "Germany")


def test_step_by_step_answers_reach_a_confirmation_and_submit(chat: Chat) -> None:
    chat.say("request")
    chat.say("Germany")
    assert step(chat) is Step.AREA_CODE
    assert "Which area code in Germany?" in chat.text
    assert list(chat.suggestions) == ["30", "any"]
    chat.say("30")
    assert step(chat) is Step.DISPLAY_NAME
    chat.say("Berlin Hotline")
    assert step(chat) is Step.CONFIRM
    assert summary(chat) == {
        "Country": "Germany (DE)",
        "Area code": "30",
        "Display name": "Berlin Hotline",
        "User name (UPN)": f"berlin.hotline@{DOMAIN}",
        "Number type": "Auto attendant (toll)",
        "Account type": "IVR bot",
    }
    assert chat.suggestions == ("Submit", "Edit", "Cancel")

    outcome = submitted(chat.say("Submit"))
    assert outcome.request == NumberRequest(
        country="DE",
        area_code="30",
        display_name="Berlin Hotline",
        number_type=NumberType.AUTO_ATTENDANT_TOLL,
        account_type=AccountType.IVR_BOT,
    )
    assert outcome.upn == f"berlin.hotline@{DOMAIN}"
    assert chat.last.state is None


@pytest.mark.parametrize(
    ("text", "country", "area", "name"),
    [
        ('request US 425 "Contoso Support"', "US", "425", "Contoso Support"),
        ("request \"United Kingdom\" 20 'Help Desk'", "GB", "20", "Help Desk"),
        ("request US 425 \u201cContoso Support\u201d", "US", "425", "Contoso Support"),
        ("request us 425 \u2018Contoso Support\u2019", "US", "425", "Contoso Support"),
        ("REQUEST   Deutschland 30 'O'Brien Line'", "DE", "30", "O'Brien Line"),
        ("new number DE 30 Berlin Hotline", "DE", "30", "Berlin Hotline"),
        ("request United States 425 Contoso Support", "US", "425", "Contoso Support"),
        ('request US any "Contoso Support"', "US", None, "Contoso Support"),
    ],
)
def test_one_shot_request_goes_straight_to_the_confirmation(
    chat: Chat, text: str, country: str, area: str | None, name: str
) -> None:
    chat.say(text)
    state = chat.state
    assert state is not None
    assert state.step is Step.CONFIRM, chat.text
    assert state.slots.country == country
    assert state.slots.area == AreaChoice(code=area)
    assert state.slots.display_name == name


def test_partial_one_shot_asks_only_for_the_rest(chat: Chat) -> None:
    chat.say("request US")
    assert step(chat) is Step.AREA_CODE
    chat.say("425")
    assert step(chat) is Step.DISPLAY_NAME


def test_one_shot_with_country_and_area_asks_for_the_name(chat: Chat) -> None:
    chat.say("request US 425")
    assert step(chat) is Step.DISPLAY_NAME


def test_one_shot_name_without_area_is_kept_while_the_area_is_asked(chat: Chat) -> None:
    chat.say('request US "Contoso Support"')
    assert step(chat) is Step.AREA_CODE
    chat.say("206")
    assert step(chat) is Step.CONFIRM
    assert summary(chat)["Display name"] == "Contoso Support"


def test_one_shot_area_without_country_is_used_once_the_country_is_known(chat: Chat) -> None:
    chat.say("request 425")
    assert step(chat) is Step.COUNTRY
    chat.say("US")
    assert step(chat) is Step.DISPLAY_NAME


@pytest.mark.parametrize(
    ("one_shot", "asked", "reason", "fix"),
    [
        ('Atlantis 425 "Contoso Support"', Step.COUNTRY, "couldn't find a country", "US"),
        ('US 212 "Contoso Support"', Step.AREA_CODE, "out of stock", "206"),
        ('GB 425 "Contoso Support"', Step.AREA_CODE, "isn't an area code United", "20"),
        (
            'US 425 "\u30b5\u30dd\u30fc\u30c8"',
            Step.DISPLAY_NAME,
            "usable in a user name",
            "Help Line",
        ),
    ],
)
def test_a_bad_one_shot_value_re_asks_only_that_slot(
    chat: Chat, one_shot: str, asked: Step, reason: str, fix: str
) -> None:
    chat.say(f"request {one_shot}")
    assert step(chat) is asked
    assert reason in chat.text
    chat.say(fix)
    assert step(chat) is Step.CONFIRM, chat.text


@pytest.mark.parametrize(
    ("start", "answer", "reason"),
    [
        ("request", "Narnia", "I couldn't find a country called \u201cNarnia\u201d"),
        ("request", "JP", "isn't one of the countries this tenant can order numbers in"),
        ("request US", "212", "out of stock"),
        ("request US", "999", "isn't an area code United States offers"),
        ("request US 425", "   ", "must not be blank"),
        ("request US 425", "x" * 300, "at most 256"),
    ],
)
def test_a_bad_answer_re_asks_the_same_question_with_the_reason(
    chat: Chat, start: str, answer: str, reason: str
) -> None:
    chat.say(start)
    asked = step(chat)
    chat.say(answer)
    assert step(chat) is asked
    assert reason in chat.text
    assert chat.last.outcome is None


def test_an_out_of_stock_answer_offers_the_area_codes_in_stock(chat: Chat) -> None:
    chat.say("request US")
    chat.say("212")
    assert chat.suggestions == ("206", "425", "any")


# --- back, cancel, help, restart ---------------------------------------------------------


def test_back_from_the_area_code_asks_the_country_again(chat: Chat) -> None:
    chat.say("request US")
    chat.say("back")
    state = chat.state
    assert state is not None
    assert state.step is Step.COUNTRY
    assert state.slots.country is None


def test_back_from_the_display_name_asks_the_area_code_again(chat: Chat) -> None:
    chat.say("request US 425")
    chat.say("Back")
    assert step(chat) is Step.AREA_CODE
    assert "Which area code in United States?" in chat.text


def test_back_from_the_confirmation_asks_the_display_name_again(chat: Chat) -> None:
    at_confirmation(chat)
    chat.say("go back")
    assert step(chat) is Step.DISPLAY_NAME
    chat.say("Help Line")
    assert summary(chat)["Display name"] == "Help Line"
    assert summary(chat)["Area code"] == "425"


def test_back_at_the_first_question_stays_there(chat: Chat) -> None:
    chat.say("request")
    chat.say("back")
    assert step(chat) is Step.COUNTRY
    assert "first question" in chat.text


@pytest.mark.parametrize("word", ["cancel", "Cancel!", "stop", "never mind"])
@pytest.mark.parametrize("start", ["request", "request US", "request US 425", 'request US 425 "X"'])
def test_cancel_leaves_the_dialog_at_any_step(chat: Chat, start: str, word: str) -> None:
    chat.say(start)
    result = chat.say(word)
    assert result.outcome == Cancelled()
    assert result.state is None
    assert "nothing was submitted" in chat.text


def test_help_in_the_dialog_repeats_the_question_and_the_way_out(chat: Chat) -> None:
    chat.say("request US")
    chat.say("help")
    assert step(chat) is Step.AREA_CODE
    assert "`back`" in chat.text
    assert "`cancel`" in chat.text
    assert "Which area code" in chat.text


def test_request_in_the_middle_of_a_dialog_starts_over(chat: Chat) -> None:
    chat.say("request US 425")
    chat.say("request")
    state = chat.state
    assert state is not None
    assert state.step is Step.COUNTRY
    assert state.slots.country is None
    assert "Starting over" in chat.text


def test_a_one_shot_request_in_the_middle_of_a_dialog_starts_over_with_its_answers(
    chat: Chat,
) -> None:
    chat.say("request US")
    chat.say('request GB 20 "Help Desk"')
    assert step(chat) is Step.CONFIRM
    assert summary(chat)["Country"] == "United Kingdom (GB)"


def test_a_complete_command_mid_dialog_is_handed_to_the_bot_and_the_dialog_waits(
    chat: Chat,
) -> None:
    chat.say("request US")
    result = chat.say("status PD-7K3Q")
    assert result.command is not None
    assert result.command.name is CommandName.STATUS
    assert result.command.request_id == "PD-7K3Q"
    assert result.replies == ()
    assert step(chat) is Step.AREA_CODE
    chat.say("425")
    assert step(chat) is Step.DISPLAY_NAME


def test_while_the_name_is_asked_a_command_word_is_taken_as_the_name(chat: Chat) -> None:
    chat.say("request US 425")
    result = chat.say("Numbers")
    assert result.command is None
    assert summary(chat)["Display name"] == "Numbers"


# --- idle timeout ------------------------------------------------------------------------


def test_an_idle_dialog_expires_and_the_late_answer_is_not_used() -> None:
    chat = Chat(make_context(idle_limit=timedelta(minutes=30)))
    chat.say("request US")
    result = chat.say("425", after=timedelta(minutes=31))
    assert isinstance(result.outcome, Expired)
    assert result.state is None
    assert "expired after 30 minutes" in chat.text
    assert "nothing was submitted" in chat.text


def test_a_dialog_within_the_idle_limit_carries_on() -> None:
    chat = Chat(make_context(idle_limit=timedelta(minutes=30)))
    chat.say("request US")
    chat.say("425", after=timedelta(minutes=29))
    chat.say("Contoso Support", after=timedelta(minutes=29))
    assert step(chat) is Step.CONFIRM


def test_a_new_request_after_expiry_starts_a_fresh_dialog() -> None:
    chat = Chat(make_context(idle_limit=timedelta(minutes=5)))
    chat.say('request US 425 "Old Name"')
    result = chat.say("request GB", after=timedelta(hours=2))
    assert isinstance(result.outcome, Expired)
    state = chat.state
    assert state is not None
    assert state.step is Step.AREA_CODE
    assert state.slots.country == "GB"
    assert state.slots.display_name is None


def test_clicking_submit_on_an_expired_draft_submits_nothing() -> None:
    chat = Chat(make_context(idle_limit=timedelta(minutes=5)))
    at_confirmation(chat)
    result = chat.click(card(chat).submit_data, after=timedelta(minutes=6))
    assert isinstance(result.outcome, Expired)
    assert "expired" in chat.text


# --- confirmation: edit and submit -------------------------------------------------------


def test_edit_asks_which_answer_to_change_and_changes_only_that(chat: Chat) -> None:
    at_confirmation(chat)
    chat.say("Edit")
    assert step(chat) is Step.CHOOSE_EDIT
    assert chat.suggestions == (
        "Country",
        "Area code",
        "Display name",
        "Number type",
        "Account type",
    )
    chat.say("Display name")
    assert step(chat) is Step.DISPLAY_NAME
    chat.say("Redmond Desk")
    assert step(chat) is Step.CONFIRM
    assert summary(chat)["Display name"] == "Redmond Desk"
    assert summary(chat)["Area code"] == "425"


def test_edit_can_be_named_in_one_go(chat: Chat) -> None:
    at_confirmation(chat)
    chat.say("change the area code")
    assert step(chat) is Step.AREA_CODE
    chat.say("Seattle")
    assert summary(chat)["Area code"] == "206"


def test_changing_the_country_re_asks_an_area_code_it_does_not_offer(chat: Chat) -> None:
    at_confirmation(chat)
    chat.say("edit country")
    chat.say("United Kingdom")
    assert step(chat) is Step.AREA_CODE
    assert "425 isn't an area code United Kingdom offers" in chat.text
    chat.say("London")
    assert summary(chat)["Country"] == "United Kingdom (GB)"
    assert summary(chat)["Display name"] == "Contoso Support"


def test_changing_to_toll_free_re_asks_the_area_code(chat: Chat) -> None:
    at_confirmation(chat)
    chat.say("edit")
    chat.say("number type")
    assert step(chat) is Step.NUMBER_TYPE
    assert chat.suggestions == ("Auto attendant (toll)", "Auto attendant (toll-free)")
    chat.say("toll-free")
    assert step(chat) is Step.AREA_CODE
    assert chat.suggestions == ("800", "any")
    chat.say("800")
    assert summary(chat)["Number type"] == "Auto attendant (toll-free)"
    outcome = submitted(chat.say("submit"))
    assert outcome.request.number_type is NumberType.AUTO_ATTENDANT_TOLL_FREE
    assert outcome.request.area_code == "800"


def test_the_account_type_can_be_changed(chat: Chat) -> None:
    at_confirmation(chat)
    chat.say("edit")
    chat.say("account type")
    chat.say("call queue")
    assert summary(chat)["Account type"] == "Call queue"
    assert submitted(chat.say("yes")).request.account_type is AccountType.CALL_QUEUE


def test_back_from_the_edit_menu_keeps_the_request(chat: Chat) -> None:
    at_confirmation(chat)
    before = card(chat)
    chat.say("edit")
    chat.say("back")
    assert step(chat) is Step.CONFIRM
    assert card(chat) == before


def test_an_unclear_answer_to_the_confirmation_shows_it_again(chat: Chat) -> None:
    at_confirmation(chat)
    chat.say("hmm")
    assert step(chat) is Step.CONFIRM
    assert "Reply **Submit**" in chat.text
    assert chat.last.outcome is None


def test_a_taken_upn_is_replaced_and_the_alternative_shown() -> None:
    chat = Chat(make_context(taken=[f"contoso.support@{DOMAIN}"]))
    at_confirmation(chat)
    assert card(chat).upn == f"contoso.support2@{DOMAIN}"
    assert card(chat).taken_upn == f"contoso.support@{DOMAIN}"
    assert f"`contoso.support@{DOMAIN}` is already in use" in chat.text
    assert submitted(chat.say("submit")).upn == f"contoso.support2@{DOMAIN}"


def test_a_upn_taken_after_the_confirmation_is_shown_again_before_submitting() -> None:
    taken: set[str] = set()
    chat = Chat(make_context(taken))
    at_confirmation(chat)
    taken.add(f"contoso.support@{DOMAIN}")
    result = chat.say("submit")
    assert result.outcome is None
    assert "Something changed" in chat.text
    assert card(chat).upn == f"contoso.support2@{DOMAIN}"
    assert submitted(chat.say("submit")).upn == f"contoso.support2@{DOMAIN}"


def test_stock_running_out_before_submit_re_asks_the_area_code(chat: Chat) -> None:
    at_confirmation(chat)
    offer = make_offer()
    us = offer.country("US")
    assert us is not None
    sold_out = us.model_copy(
        update={
            "area_codes": tuple(
                a.model_copy(update={"available": 0}) if a.area_code == "425" else a
                for a in us.area_codes
            )
        }
    )
    countries = tuple(sold_out if c.iso_code == "US" else c for c in offer.countries)
    chat.ctx = make_context(offer=offer.model_copy(update={"countries": countries}))
    result = chat.say("submit")
    assert result.outcome is None
    assert step(chat) is Step.AREA_CODE
    assert r"425 \(Redmond\) is out of stock" in chat.text


# --- card buttons --------------------------------------------------------------------------


def test_the_submit_button_submits(chat: Chat) -> None:
    at_confirmation(chat)
    outcome = submitted(chat.click(card(chat).submit_data))
    assert outcome.request.display_name == "Contoso Support"


def test_a_double_clicked_submit_submits_once(chat: Chat) -> None:
    at_confirmation(chat)
    data = card(chat).submit_data
    submitted(chat.click(data))
    second = chat.click(data)
    assert second.outcome is None
    assert "no longer open" in chat.text


def test_a_stale_confirmation_card_is_not_acted_on(chat: Chat) -> None:
    at_confirmation(chat)
    old_submit = card(chat).submit_data
    chat.say("edit display name")
    chat.say("New Name")
    result = chat.click(old_submit)
    assert result.outcome is None
    assert "out of date" in chat.text
    assert summary(chat)["Display name"] == "New Name"


def test_card_data_that_is_not_the_dialogs_changes_nothing(chat: Chat) -> None:
    at_confirmation(chat)
    before = chat.state
    result = chat.click({"action": "phonedesk.approval.approve", "requestId": "PD-7K3Q"})
    assert result.replies == ()
    assert result.outcome is None
    state = chat.state
    assert state is not None
    assert before is not None
    assert state.slots == before.slots
    assert state.step is before.step


def test_the_edit_button_opens_the_edit_menu(chat: Chat) -> None:
    at_confirmation(chat)
    chat.click(card(chat).edit_data)
    assert step(chat) is Step.CHOOSE_EDIT


def test_the_cancel_button_cancels(chat: Chat) -> None:
    at_confirmation(chat)
    assert chat.click(card(chat).cancel_data).outcome == Cancelled()
    assert chat.state is None


# --- outside a dialog ------------------------------------------------------------------------


def test_other_commands_are_handed_to_the_bot(chat: Chat) -> None:
    result = chat.say("cancel 7k3q")
    assert result.state is None
    assert result.command is not None
    assert result.command.name is CommandName.CANCEL
    assert result.command.request_id == "PD-7K3Q"


def test_help_is_answered_for_the_callers_role() -> None:
    ctx = make_context(approvals_channel_registered=False)
    Chat(ctx, role=Role.REQUESTER).say("help")
    requester = Chat(ctx, role=Role.REQUESTER)
    requester.say("help")
    approver = Chat(ctx, role=Role.APPROVER)
    approver.say("help")
    assert "`pending`" not in requester.text
    assert "`pending`" in approver.text
    assert "`approvals here`" in approver.text
    assert "No approvers' channel is registered" in approver.text


def test_an_unknown_command_gets_a_suggestion(chat: Chat) -> None:
    result = chat.say("stauts 7K3Q")
    assert result.command is None
    assert "Did you mean `status`?" in chat.text
    assert chat.suggestions[0] == "status 7K3Q"


def test_request_form_posts_the_form(chat: Chat) -> None:
    result = chat.say("request form")
    assert result.state is None
    assert isinstance(result.replies[0].card, RequestFormSpec)


def test_request_in_a_channel_posts_the_form(ctx: DialogContext) -> None:
    chat = Chat(ctx, in_channel=True)
    chat.say("request")
    assert isinstance(chat.last.replies[0].card, RequestFormSpec)
    assert chat.state is None


def test_a_one_shot_request_in_a_channel_uses_the_dialog(ctx: DialogContext) -> None:
    chat = Chat(ctx, in_channel=True)
    chat.say('request US 425 "Contoso Support"')
    assert step(chat) is Step.CONFIRM


def test_a_submitted_form_leaves_a_chat_dialog_alone(chat: Chat) -> None:
    chat.say("request US")
    before = chat.stored
    result = chat.click(
        {
            "action": "phonedesk.request.form.submit",
            "draftId": "d1",
            "country": "GB",
            "areaCode": "20",
            "displayName": "Help Desk",
        }
    )
    assert submitted(result).request.country == "GB"
    assert chat.stored == before


# --- escaping ------------------------------------------------------------------------------


def test_user_text_echoed_in_a_reply_cannot_inject_links_or_mentions(chat: Chat) -> None:
    chat.say("request")
    chat.say("[click](http://evil.example) <at>Everyone</at>")
    assert step(chat) is Step.COUNTRY
    assert "[click]" not in chat.text
    assert "](http" not in chat.text
    assert "<at>" not in chat.text
    assert r"\[click\]\(http://evil.example\)" in chat.text


def test_a_display_name_with_markdown_is_escaped_in_text_and_raw_on_the_card(chat: Chat) -> None:
    chat.say('request US 425 "**Boss** [x](http://evil.example)"')
    assert step(chat) is Step.CONFIRM
    assert r"\*\*Boss\*\* \[x\]\(http://evil.example\)" in chat.text
    assert summary(chat)["Display name"] == "**Boss** [x](http://evil.example)"


# --- state ---------------------------------------------------------------------------------


def test_a_dialog_resumes_from_stored_json_after_a_restart(ctx: DialogContext) -> None:
    before_restart = Chat(ctx)
    before_restart.say('request US "Contoso Support"')
    stored = before_restart.stored
    assert stored is not None

    after_restart = Chat(make_context(), stored=stored, now=before_restart.now)
    after_restart.say("425")
    assert step(after_restart) is Step.CONFIRM
    assert summary(after_restart)["Display name"] == "Contoso Support"
    assert submitted(after_restart.say("submit")).request.area_code == "425"


def test_state_round_trips_through_json_unchanged(chat: Chat) -> None:
    at_confirmation(chat)
    state = chat.last.state
    assert state is not None
    dumped = state.model_dump(mode="json")
    assert dumped["version"] == 1
    assert DialogState.model_validate(dumped) == state
    assert load_state(state.model_dump_json()) == state


@pytest.mark.parametrize(
    "stored",
    [None, "not json", '{"version": 99, "step": "country"}', {"version": 1, "step": "nowhere"}],
)
def test_unusable_stored_state_is_dropped(stored: str | dict[str, object] | None) -> None:
    assert load_state(stored) is None


def test_each_user_in_each_conversation_has_their_own_dialog_key() -> None:
    alice_here = DialogKey(conversation_id="19:abc@thread.tacv2", user_id="alice")
    bob_here = DialogKey(conversation_id="19:abc@thread.tacv2", user_id="bob")
    alice_elsewhere = DialogKey(conversation_id="a:personal", user_id="alice")
    keys = {alice_here.storage_key, bob_here.storage_key, alice_elsewhere.storage_key}
    assert len(keys) == 3
    assert (
        alice_here.storage_key
        == DialogKey(conversation_id="19:abc@thread.tacv2", user_id="alice").storage_key
    )


def test_a_naive_time_is_refused(ctx: DialogContext) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        handle_turn(None, Turn(now=NOW.replace(tzinfo=None), text="help"), ctx)
