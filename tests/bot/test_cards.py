"""The Adaptive Cards as people in Teams meet them: what each view can press, what it reads."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.cards import (
    ADAPTIVE_CARD_CONTENT_TYPE,
    MAX_REFRESH_USER_IDS,
    REASON_INPUT_ID,
    VERB_APPROVE,
    VERB_CANCEL,
    VERB_DIALOG,
    VERB_REFRESH,
    VERB_REJECT,
    VERB_RETRY,
    CardView,
    adaptive_attachment,
    card_size_bytes,
    confirmation_card,
    request_card,
    request_form_card,
)
from dialogs import (
    Choice,
    ConfirmationCardSpec,
    FormField,
    FormValues,
    RequestFormSpec,
    SummaryField,
)
from dialogs.replies import ACTION_FIELD, DRAFT_FIELD, SNAPSHOT_FIELD, CardAction
from provisioning.domain import (
    Decision,
    Failure,
    Person,
    ProvisioningResult,
    Request,
    RequestStatus,
    Stage,
    StageState,
    StageStatus,
)

NOW = datetime(2025, 3, 3, 14, 30, tzinfo=UTC)
ALICE = Person(aad_object_id="00000000-0000-0000-0000-0000000000a1", display_name="Alice")
BOB = Person(aad_object_id="00000000-0000-0000-0000-0000000000b0", display_name="Bob")
NUMBER = "+14255550123"
UPN = "contoso.support@contoso.onmicrosoft.com"
SKU = "PHONESYSTEM_VIRTUALUSER"

INJECTIONS = ["[click](http://evil.example)", "<at>Everyone</at>", "**bold**"]


# --- building requests --------------------------------------------------------------------


def make_request(**changes: Any) -> Request:
    request = Request(
        id="PD-7K3Q",
        tenant_id="tenant",
        requester=ALICE,
        country="US",
        area_code="425",
        display_name="Contoso Support",
        created_at=NOW - timedelta(minutes=30),
        updated_at=NOW,
    )
    return request.model_copy(update=changes)


def at(minutes_ago: int) -> datetime:
    return NOW - timedelta(minutes=minutes_ago)


def done(stage: Stage, detail: str | None = None) -> StageState:
    return StageState(
        stage=stage, status=StageStatus.DONE, started_at=at(20), finished_at=at(18), detail=detail
    )


def approved() -> Decision:
    return Decision(approved=True, by=BOB, at=at(25))


def provisioning_request(running: Stage) -> Request:
    stages = [
        done(stage) if stage.number < running.number else StageState(stage=stage) for stage in Stage
    ]
    stages[running.number - 1] = StageState(
        stage=running, status=StageStatus.RUNNING, started_at=at(3)
    )
    return make_request(
        status=RequestStatus.PROVISIONING,
        decision=approved(),
        stages=tuple(stages),
        result=ProvisioningResult(telephone_number=NUMBER),
    )


def completed_request() -> Request:
    return make_request(
        status=RequestStatus.COMPLETED,
        decision=approved(),
        result=ProvisioningResult(
            telephone_number=NUMBER, upn=UPN, sku_part_number=SKU, account_id="acc-1"
        ),
        stages=(
            done(Stage.ACQUIRE_NUMBER, f"{NUMBER}, newly ordered (order 7)"),
            done(Stage.CREATE_ACCOUNT, UPN),
            done(Stage.ASSIGN_LICENSE, SKU),
            done(Stage.BIND_NUMBER, f"{NUMBER} \N{RIGHTWARDS ARROW} {UPN}"),
        ),
    )


def failed_request(*, retryable: bool = True, reason: str = "No licenses left") -> Request:
    return make_request(
        status=RequestStatus.FAILED,
        decision=approved(),
        result=ProvisioningResult(telephone_number=NUMBER, upn=UPN),
        failure=Failure(stage=Stage.ASSIGN_LICENSE, reason=reason, retryable=retryable),
        stages=(
            done(Stage.ACQUIRE_NUMBER),
            done(Stage.CREATE_ACCOUNT),
            StageState(
                stage=Stage.ASSIGN_LICENSE,
                status=StageStatus.FAILED,
                started_at=at(10),
                finished_at=at(9),
                error=reason,
            ),
            StageState(stage=Stage.BIND_NUMBER),
        ),
    )


def card_for(
    request: Request, view: CardView = CardView.OBSERVER, refresh_ids: tuple[str, ...] = ()
) -> dict[str, Any]:
    return request_card(request, view=view, refresh_user_ids=refresh_ids, now=NOW)


# --- reading cards ------------------------------------------------------------------------


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def without_refresh(card: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in card.items() if key != "refresh"}


def buttons(card: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every action a person can press, including those inside a ShowCard."""
    return [
        node
        for node in walk(without_refresh(card))
        if str(node.get("type", "")).startswith("Action.")
    ]


def verbs(card: Mapping[str, Any]) -> set[str]:
    return {node["verb"] for node in buttons(card) if node["type"] == "Action.Execute"}


def shown_texts(card: Mapping[str, Any]) -> list[str]:
    """What is rendered as markdown: TextBlock texts and FactSet titles and values."""
    texts: list[str] = []
    for node in walk(card):
        if node.get("type") == "TextBlock":
            texts.append(node["text"])
        elif node.get("type") == "FactSet":
            for fact in node["facts"]:
                texts += [fact["title"], fact["value"]]
    return texts


def shown(card: Mapping[str, Any]) -> str:
    return "\n".join(shown_texts(card))


def element(card: Mapping[str, Any], element_id: str) -> dict[str, Any]:
    matches = [node for node in walk(card) if node.get("id") == element_id]
    assert len(matches) == 1, f"expected one element with id {element_id!r}"
    return matches[0]


def stage_row(card: Mapping[str, Any], stage: Stage) -> str:
    for node in walk(card):
        if node.get("type") == "ColumnSet":
            texts = shown_texts(node)
            if stage.label in texts:
                return "\n".join(texts)
    raise AssertionError(f"no row for {stage.label}")


# --- who can do what ----------------------------------------------------------------------


def test_approver_sees_approve_and_reject_but_not_cancel_on_a_pending_request() -> None:
    card = card_for(make_request(), CardView.APPROVER)

    assert verbs(card) == {VERB_APPROVE, VERB_REJECT}


def test_reject_asks_for_a_required_reason_before_sending() -> None:
    card = card_for(make_request(), CardView.APPROVER)

    show_card = next(node for node in buttons(card) if node["type"] == "Action.ShowCard")
    reason = element(show_card["card"], REASON_INPUT_ID)
    assert reason["type"] == "Input.Text"
    assert reason["isRequired"] is True
    assert reason["errorMessage"]
    [reject] = show_card["card"]["actions"]
    assert reject == {
        "type": "Action.Execute",
        "title": reject["title"],
        "verb": VERB_REJECT,
        "data": {"requestId": "PD-7K3Q"},
        "style": "destructive",
    }


def test_requester_sees_cancel_but_cannot_approve_their_pending_request() -> None:
    card = card_for(make_request(), CardView.REQUESTER)

    assert verbs(card) == {VERB_CANCEL}


@pytest.mark.parametrize(
    "request_",
    [
        make_request(),
        provisioning_request(Stage.CREATE_ACCOUNT),
        failed_request(),
        completed_request(),
        make_request(status=RequestStatus.CANCELLED),
    ],
    ids=lambda r: r.status.value,
)
def test_observers_get_a_read_only_card(request_: Request) -> None:
    card = card_for(request_, CardView.OBSERVER)

    assert buttons(card) == []
    assert "actions" not in card


@pytest.mark.parametrize("view", [CardView.REQUESTER, CardView.APPROVER])
def test_a_failed_card_offers_retry_and_cancel_with_the_reason(view: CardView) -> None:
    card = card_for(failed_request(reason="No PHONESYSTEM_VIRTUALUSER licenses left"), view)

    assert verbs(card) == {VERB_RETRY, VERB_CANCEL}
    for button in buttons(card):
        assert button["data"] == {"requestId": "PD-7K3Q"}
    assert "Failed at stage 3 of 4, assign license" in shown(card)
    assert "No PHONESYSTEM\\_VIRTUALUSER licenses left" in shown(card)


def test_a_cancelled_request_still_shows_why_its_stage_failed() -> None:
    request = failed_request(reason="No licenses left").model_copy(
        update={"status": RequestStatus.CANCELLED}
    )

    card = card_for(request, CardView.REQUESTER)

    assert "No licenses left" in stage_row(card, Stage.ASSIGN_LICENSE)
    assert "Failed at" not in shown(card)


def test_a_failure_retrying_cannot_fix_offers_only_cancel() -> None:
    card = card_for(failed_request(retryable=False), CardView.REQUESTER)

    assert verbs(card) == {VERB_CANCEL}
    assert "Retrying won't help" in shown(card)


@pytest.mark.parametrize("view", [CardView.REQUESTER, CardView.APPROVER])
def test_a_request_in_flight_can_be_cancelled(view: CardView) -> None:
    card = card_for(provisioning_request(Stage.ASSIGN_LICENSE), view)

    assert verbs(card) == {VERB_CANCEL}


@pytest.mark.parametrize(
    "status",
    [
        RequestStatus.COMPLETED,
        RequestStatus.REJECTED,
        RequestStatus.EXPIRED,
        RequestStatus.CANCELLED,
        RequestStatus.RELEASED,
    ],
)
def test_a_finished_request_offers_nothing_to_press(status: RequestStatus) -> None:
    request = make_request(status=status)
    if status is RequestStatus.REJECTED:
        request = request.model_copy(
            update={"decision": Decision(approved=False, by=BOB, at=at(5), reason="no budget")}
        )

    for view in CardView:
        assert buttons(card_for(request, view)) == []


# --- what it says -------------------------------------------------------------------------


def test_the_card_shows_what_was_asked_and_by_whom() -> None:
    text = shown(card_for(make_request(area_code=None)))

    for expected in ["PD-7K3Q", "Alice", "Contoso Support", "US", "any", "IVR bot"]:
        assert expected in text
    assert "Waiting for approval" in text


def test_a_completed_card_shows_the_number_account_and_license() -> None:
    card = card_for(completed_request(), CardView.REQUESTER)

    text = shown(card)
    assert f"Completed: {NUMBER} is ready" in text
    assert NUMBER in stage_row(card, Stage.ACQUIRE_NUMBER)
    assert "newly ordered" in stage_row(card, Stage.ACQUIRE_NUMBER)
    assert "contoso.support@contoso.onmicrosoft.com" in stage_row(card, Stage.CREATE_ACCOUNT)
    assert "PHONESYSTEM\\_VIRTUALUSER" in stage_row(card, Stage.ASSIGN_LICENSE)
    assert NUMBER in stage_row(card, Stage.BIND_NUMBER)
    assert "contoso.support@" in stage_row(card, Stage.BIND_NUMBER)


def test_the_stages_appear_in_the_order_they_run() -> None:
    text = shown(card_for(make_request()))

    positions = [text.index(stage.label) for stage in Stage]
    assert positions == sorted(positions)
    assert [stage.label for stage in Stage] == [
        "Acquire number",
        "Create resource account",
        "Assign license",
        "Bind number",
    ]


def test_each_stage_state_reads_differently() -> None:
    request = failed_request().with_stage(
        StageState(stage=Stage.BIND_NUMBER, status=StageStatus.CANCELLED, detail="not started")
    )
    card = card_for(request)
    running = card_for(provisioning_request(Stage.CREATE_ACCOUNT))

    assert "Done" in stage_row(card, Stage.ACQUIRE_NUMBER)
    assert "Failed" in stage_row(card, Stage.ASSIGN_LICENSE)
    assert "Cancelled" in stage_row(card, Stage.BIND_NUMBER)
    assert "Running" in stage_row(running, Stage.CREATE_ACCOUNT)
    assert "Waiting" in stage_row(running, Stage.BIND_NUMBER)
    glyphs = {
        stage_row(card, Stage.ACQUIRE_NUMBER).split("\n")[0],
        stage_row(card, Stage.ASSIGN_LICENSE).split("\n")[0],
        stage_row(card, Stage.BIND_NUMBER).split("\n")[0],
        stage_row(running, Stage.CREATE_ACCOUNT).split("\n")[0],
        stage_row(running, Stage.BIND_NUMBER).split("\n")[0],
    }
    assert len(glyphs) == 5


def test_stage_times_are_shown_in_utc() -> None:
    card = card_for(provisioning_request(Stage.CREATE_ACCOUNT))

    assert "Finished 14:12 UTC (took 2 min)" in stage_row(card, Stage.ACQUIRE_NUMBER)
    assert "Started 14:27 UTC, running for 3 min" in stage_row(card, Stage.CREATE_ACCOUNT)


def test_a_time_on_another_day_shows_its_date() -> None:
    yesterday = NOW - timedelta(days=1)
    request = make_request(created_at=yesterday, updated_at=yesterday)

    assert "2 Mar 14:30 UTC" in shown(card_for(request))


def test_while_the_account_is_created_the_card_says_it_waits_for_microsoft() -> None:
    note = "waiting for microsoft 365 to finish creating the account (usually 15\N{EN DASH}20 min)"

    waiting = card_for(provisioning_request(Stage.CREATE_ACCOUNT))
    later = card_for(provisioning_request(Stage.ASSIGN_LICENSE))

    assert note in stage_row(waiting, Stage.CREATE_ACCOUNT).lower()
    assert note not in shown(later).lower()


def test_the_decision_says_who_rejected_when_and_why() -> None:
    request = make_request(
        status=RequestStatus.REJECTED,
        decision=Decision(approved=False, by=BOB, at=at(5), reason="Use the shared number"),
    )

    text = shown(card_for(request, CardView.REQUESTER))

    assert "Rejected by Bob at 14:25 UTC" in text
    assert "Use the shared number" in text


def test_an_approval_says_who_approved() -> None:
    text = shown(card_for(provisioning_request(Stage.ACQUIRE_NUMBER)))

    assert "Approved by Bob at 14:05 UTC" in text


# --- escaping -----------------------------------------------------------------------------


def assert_inert(text: str) -> None:
    assert "[click](" not in text
    assert "](http" not in text
    assert "<at>" not in text
    assert "**bold**" not in text


@pytest.mark.parametrize("payload", INJECTIONS)
def test_user_text_on_the_request_card_cannot_inject_links_mentions_or_markup(
    payload: str,
) -> None:
    request = make_request(
        status=RequestStatus.FAILED,
        display_name=f"Desk {payload}",
        requester=Person(aad_object_id="x", display_name=payload),
        decision=Decision(
            approved=False,
            by=Person(aad_object_id="y", display_name=payload),
            at=at(1),
            reason=payload,
        ),
        failure=Failure(stage=Stage.ACQUIRE_NUMBER, reason=payload, retryable=True),
    ).with_stage(
        StageState(
            stage=Stage.ACQUIRE_NUMBER, status=StageStatus.FAILED, error=payload, detail=payload
        )
    )

    for view in CardView:
        for text in shown_texts(card_for(request, view)):
            assert_inert(text)


def test_escaped_user_text_still_reads_as_typed() -> None:
    request = make_request(display_name="[click](http://evil.example)")

    assert "\\[click\\]\\(http://evil.example\\)" in shown(card_for(request))


@pytest.mark.parametrize("payload", INJECTIONS)
def test_user_text_on_dialog_cards_cannot_inject_markup(payload: str) -> None:
    confirmation = confirmation_card(
        confirmation_spec(fields=(SummaryField("Display name", payload),))
    )
    form = request_form_card(form_spec(errors={FormField.DISPLAY_NAME: f"Bad name {payload}"}))

    for text in shown_texts(confirmation) + shown_texts(form):
        assert_inert(text)


def test_a_form_input_keeps_the_raw_value_the_user_typed() -> None:
    raw = "**Contoso** [click](http://evil.example) <at>Everyone</at> & Co"
    card = request_form_card(form_spec(values=FormValues(country="US", display_name=raw)))

    assert element(card, FormField.DISPLAY_NAME.value)["value"] == raw


@pytest.mark.parametrize(
    ("typed", "rendered"),
    [("- item", "\\- item"), ("+ item", "\\+ item"), ("1. item", "1\\. item")],
)
def test_user_text_cannot_start_a_list(typed: str, rendered: str) -> None:
    text = shown_texts(card_for(make_request(display_name=typed)))

    assert rendered in text


# --- refresh and size ---------------------------------------------------------------------


def test_every_request_card_refreshes_for_its_request() -> None:
    card = card_for(make_request(), CardView.OBSERVER)

    assert card["refresh"] == {
        "action": {
            "type": "Action.Execute",
            "verb": VERB_REFRESH,
            "data": {"requestId": "PD-7K3Q"},
        },
        "userIds": [],
    }


def test_refresh_user_ids_are_deduplicated_in_order_and_capped_at_sixty() -> None:
    ids = ("approver-b", "approver-a", "approver-b", *(f"user-{i}" for i in range(100)))

    user_ids = card_for(make_request(), refresh_ids=ids)["refresh"]["userIds"]

    assert MAX_REFRESH_USER_IDS == 60
    assert len(user_ids) == 60
    assert user_ids[:3] == ["approver-b", "approver-a", "user-0"]
    assert len(set(user_ids)) == 60


def test_the_largest_plausible_card_stays_well_under_the_message_limit() -> None:
    long_text = "Détail <at>x</at> [y](z) " * 40
    stages = tuple(
        StageState(
            stage=stage,
            status=StageStatus.FAILED,
            started_at=at(60),
            finished_at=at(1),
            detail=long_text,
            error=long_text,
        )
        for stage in Stage
    )
    request = make_request(
        status=RequestStatus.FAILED,
        display_name="Ω*[" * 85 + "x",
        requester=Person(aad_object_id="x", display_name=long_text),
        decision=Decision(approved=False, by=BOB, at=at(2), reason=long_text * 3),
        failure=Failure(stage=Stage.BIND_NUMBER, reason=long_text * 3, retryable=True),
        result=ProvisioningResult(telephone_number=NUMBER, upn=UPN, sku_part_number=SKU),
        stages=stages,
    )
    refresh_ids = tuple(f"29:1{'x' * 60}{i}" for i in range(60))

    sizes = [card_size_bytes(card_for(request, view, refresh_ids)) for view in CardView]

    assert len(request.display_name) == 256
    assert max(sizes) < 40_000


def test_card_size_counts_utf8_bytes() -> None:
    assert card_size_bytes({"text": "é"}) == len('{"text":"é"}'.encode())


def test_an_attachment_wraps_the_card_as_an_adaptive_card() -> None:
    card = card_for(make_request())

    attachment = adaptive_attachment(card)

    assert attachment == {"contentType": ADAPTIVE_CARD_CONTENT_TYPE, "content": card}
    assert ADAPTIVE_CARD_CONTENT_TYPE == "application/vnd.microsoft.card.adaptive"


def test_changing_one_card_leaves_the_next_untouched() -> None:
    first = card_for(make_request(), CardView.APPROVER)
    first["body"].clear()
    first["refresh"]["userIds"].append("someone")
    for button in buttons(first):
        button["title"] = "changed"

    second = card_for(make_request(), CardView.APPROVER)

    assert second["body"]
    assert second["refresh"]["userIds"] == []
    assert "changed" not in {button["title"] for button in buttons(second)}


# --- dialog cards -------------------------------------------------------------------------

SUBMIT = {ACTION_FIELD: CardAction.SUBMIT.value, SNAPSHOT_FIELD: "abc123"}
EDIT = {ACTION_FIELD: CardAction.EDIT.value, SNAPSHOT_FIELD: "abc123"}
CANCEL = {ACTION_FIELD: CardAction.CANCEL.value, SNAPSHOT_FIELD: "abc123"}
FORM_SUBMIT = {ACTION_FIELD: CardAction.FORM_SUBMIT.value, DRAFT_FIELD: "draft-1"}


def confirmation_spec(
    *, fields: tuple[SummaryField, ...] | None = None, taken_upn: str | None = None
) -> ConfirmationCardSpec:
    return ConfirmationCardSpec(
        fields=fields
        or (
            SummaryField("Country", "United States (US)"),
            SummaryField("Area code", "425"),
            SummaryField("Display name", "Contoso Support"),
        ),
        upn="contoso.support2@contoso.onmicrosoft.com" if taken_upn else UPN,
        taken_upn=taken_upn,
        submit_data=SUBMIT,
        edit_data=EDIT,
        cancel_data=CANCEL,
    )


def form_spec(
    *,
    values: FormValues | None = None,
    errors: Mapping[FormField, str] | None = None,
    area_codes: tuple[Choice, ...] = (),
    upn: str | None = None,
) -> RequestFormSpec:
    return RequestFormSpec(
        values=values or FormValues(),
        errors=errors or {},
        country_choices=(Choice("US", "United States"), Choice("GB", "United Kingdom")),
        area_code_choices=area_codes,
        number_type_choices=(
            Choice("AutoAttendantToll", "Auto attendant (toll)"),
            Choice("CallQueueToll", "Call queue (toll)"),
        ),
        account_type_choices=(Choice("ivr_bot", "IVR bot"), Choice("call_queue", "Call queue")),
        submit_data=FORM_SUBMIT,
        upn=upn,
    )


def test_confirmation_buttons_send_the_dialog_data_unchanged() -> None:
    card = confirmation_card(confirmation_spec())

    sent = {button["title"]: (button["verb"], button["data"]) for button in buttons(card)}

    assert sent == {
        "Submit": (VERB_DIALOG, SUBMIT),
        "Edit": (VERB_DIALOG, EDIT),
        "Cancel": (VERB_DIALOG, CANCEL),
    }
    assert {button["type"] for button in buttons(card)} == {"Action.Execute"}


def test_confirmation_shows_the_summary_and_the_account_name() -> None:
    card = confirmation_card(confirmation_spec())

    facts = next(node for node in walk(card) if node.get("type") == "FactSet")["facts"]
    assert {"title": "Area code", "value": "425"} in facts
    assert "contoso.support@contoso.onmicrosoft.com" in shown(card)
    assert "already in use" not in shown(card)


def test_confirmation_explains_a_replaced_account_name() -> None:
    card = confirmation_card(confirmation_spec(taken_upn=UPN))

    text = shown(card)
    assert f"{UPN} is already in use" in text
    assert "contoso.support2@contoso.onmicrosoft.com" in text


def test_the_form_submit_sends_the_dialog_data_and_inputs_use_the_form_field_ids() -> None:
    card = request_form_card(form_spec())

    [submit] = buttons(card)
    input_ids = {node["id"] for node in walk(card) if str(node.get("type")).startswith("Input.")}

    assert (submit["type"], submit["verb"], submit["data"]) == (
        "Action.Execute",
        VERB_DIALOG,
        FORM_SUBMIT,
    )
    assert input_ids == {form_field.value for form_field in FormField}


def test_the_form_is_prefilled_with_the_current_values() -> None:
    values = FormValues(
        country="US",
        area_code="425",
        display_name="Contoso Support",
        number_type="CallQueueToll",
        account_type="call_queue",
    )
    card = request_form_card(
        form_spec(values=values, area_codes=(Choice("425", "425 (Redmond)"), Choice("any", "Any")))
    )

    assert element(card, FormField.COUNTRY.value)["value"] == "US"
    assert element(card, FormField.AREA_CODE.value)["value"] == "425"
    assert element(card, FormField.DISPLAY_NAME.value)["value"] == "Contoso Support"
    assert element(card, FormField.NUMBER_TYPE.value)["value"] == "CallQueueToll"
    assert element(card, FormField.ACCOUNT_TYPE.value)["value"] == "call_queue"


def test_the_area_code_can_always_be_any() -> None:
    card = request_form_card(form_spec())

    area = element(card, FormField.AREA_CODE.value)
    assert area["type"] == "Input.ChoiceSet"
    assert [choice["value"] for choice in area["choices"]] == ["any"]
    assert area["value"] == "any"


def test_an_area_code_that_is_not_offered_stays_selected_so_its_error_makes_sense() -> None:
    card = request_form_card(
        form_spec(
            values=FormValues(country="US", area_code="999"),
            errors={FormField.AREA_CODE: "No numbers in 999 are in stock."},
            area_codes=(Choice("425", "425 (Redmond)"), Choice("any", "Any area code")),
        )
    )

    area = element(card, FormField.AREA_CODE.value)
    assert [choice["value"] for choice in area["choices"]] == ["425", "999", "any"]
    assert area["value"] == "999"


def test_the_display_name_input_allows_what_microsoft_allows() -> None:
    card = request_form_card(form_spec(upn=UPN))

    name = element(card, FormField.DISPLAY_NAME.value)
    assert name["type"] == "Input.Text"
    assert name["maxLength"] == 256
    assert name["isRequired"] is True
    assert f"The account will be {UPN}" in shown(card)


def test_form_errors_are_shown_right_under_their_field() -> None:
    errors = {
        FormField.COUNTRY: "Choose a country.",
        FormField.DISPLAY_NAME: "display name must not be blank",
    }
    card = request_form_card(form_spec(errors=errors))

    body = card["body"]
    ids = [node.get("id") for node in body]
    for form_field, message in errors.items():
        below = body[ids.index(form_field.value) + 1]
        assert below["type"] == "TextBlock"
        assert below["color"] == "attention"
        assert below["text"] == message
    for form_field in (FormField.AREA_CODE, FormField.NUMBER_TYPE, FormField.ACCOUNT_TYPE):
        position = ids.index(form_field.value)
        for below in body[position + 1 : position + 2]:
            assert below.get("color") != "attention"


# --- schema -------------------------------------------------------------------------------

ADAPTIVE_CARDS_1_5_TYPES = frozenset(
    {
        "AdaptiveCard",
        "TextBlock",
        "Image",
        "Media",
        "RichTextBlock",
        "TextRun",
        "Container",
        "ColumnSet",
        "Column",
        "FactSet",
        "ImageSet",
        "ActionSet",
        "Table",
        "TableRow",
        "TableCell",
        "Input.Text",
        "Input.Number",
        "Input.Date",
        "Input.Time",
        "Input.Toggle",
        "Input.ChoiceSet",
        "Action.OpenUrl",
        "Action.Submit",
        "Action.ShowCard",
        "Action.ToggleVisibility",
        "Action.Execute",
    }
)
ENUMS: Mapping[str, frozenset[str]] = {
    "color": frozenset({"default", "dark", "light", "accent", "good", "warning", "attention"}),
    "spacing": frozenset({"none", "small", "default", "medium", "large", "extralarge", "padding"}),
    "size": frozenset({"default", "small", "medium", "large", "extralarge"}),
    "weight": frozenset({"default", "lighter", "bolder"}),
    "horizontalAlignment": frozenset({"left", "center", "right"}),
}
STYLES: Mapping[str, frozenset[str]] = {
    "TextBlock": frozenset({"default", "heading"}),
    "Container": frozenset({"default", "emphasis", "good", "attention", "warning", "accent"}),
    "Input.ChoiceSet": frozenset({"compact", "expanded", "filtered"}),
    "Action.Execute": frozenset({"default", "positive", "destructive"}),
    "Action.ShowCard": frozenset({"default", "positive", "destructive"}),
}


def every_card() -> Iterator[dict[str, Any]]:
    requests = [
        make_request(),
        provisioning_request(Stage.CREATE_ACCOUNT),
        failed_request(),
        completed_request(),
    ]
    for request in requests:
        for view in CardView:
            yield card_for(request, view, ("u1",))
    yield confirmation_card(confirmation_spec(taken_upn=UPN))
    yield request_form_card(form_spec(errors={FormField.COUNTRY: "Choose a country."}, upn=UPN))


def test_cards_use_only_adaptive_cards_1_5() -> None:
    for card in every_card():
        assert card["type"] == "AdaptiveCard"
        assert card["version"] == "1.5"
        assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
        json.dumps(card)
        for node in walk(card):
            if "type" not in node:
                continue
            kind = node["type"]
            assert kind in ADAPTIVE_CARDS_1_5_TYPES
            assert kind != "Action.Submit", "Universal Actions only"
            if kind == "Action.Execute":
                assert node["verb"]
                assert isinstance(node["data"], dict)
            for prop, allowed in ENUMS.items():
                if prop in node:
                    assert str(node[prop]).lower() in allowed, (kind, prop, node[prop])
            if "style" in node:
                assert str(node["style"]).lower() in STYLES[kind], (kind, node["style"])
            if kind == "TextBlock":
                assert isinstance(node["text"], str)
                assert node["text"]
