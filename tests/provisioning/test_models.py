from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from provisioning.domain import (
    ALLOWED_TRANSITIONS,
    AUTO_ATTENDANT_APPLICATION_ID,
    CALL_QUEUE_APPLICATION_ID,
    REQUEST_ID_ALPHABET,
    AccountType,
    Decision,
    NumberRequest,
    NumberType,
    Person,
    ProvisioningResult,
    Request,
    RequestStatus,
    Stage,
    StageState,
    StageStatus,
    can_transition,
    derive_upn,
    mail_nickname,
    new_request_id,
    parse_request_id,
    upn_alternatives,
    validate_upn,
)

S = RequestStatus
DOMAIN = "contoso.onmicrosoft.com"
NOW = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)


# --- lifecycle ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.PENDING_APPROVAL, S.APPROVED),
        (S.PENDING_APPROVAL, S.REJECTED),
        (S.PENDING_APPROVAL, S.EXPIRED),
        (S.PENDING_APPROVAL, S.CANCELLED),
        (S.APPROVED, S.PROVISIONING),
        (S.APPROVED, S.CANCELLED),
        (S.PROVISIONING, S.COMPLETED),
        (S.PROVISIONING, S.FAILED),
        (S.PROVISIONING, S.CANCELLED),
        (S.FAILED, S.PROVISIONING),
        (S.FAILED, S.CANCELLED),
        (S.COMPLETED, S.RELEASED),
    ],
)
def test_lifecycle_allows(current: RequestStatus, new: RequestStatus) -> None:
    assert can_transition(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.PENDING_APPROVAL, S.PROVISIONING),  # approval cannot be skipped
        (S.PENDING_APPROVAL, S.COMPLETED),
        (S.APPROVED, S.REJECTED),  # a decision is not reversed
        (S.REJECTED, S.APPROVED),
        (S.EXPIRED, S.APPROVED),  # a late approval on an expired request
        (S.CANCELLED, S.PROVISIONING),  # retry after cancel
        (S.COMPLETED, S.CANCELLED),  # a live number is released, not cancelled
        (S.COMPLETED, S.FAILED),
        (S.RELEASED, S.COMPLETED),
        (S.PROVISIONING, S.PROVISIONING),
    ],
)
def test_lifecycle_refuses(current: RequestStatus, new: RequestStatus) -> None:
    assert not can_transition(current, new)


def test_every_status_has_a_row_in_the_transition_table() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(RequestStatus)


def test_terminal_statuses_are_the_dead_ends() -> None:
    terminal = {s for s in RequestStatus if s.is_terminal}
    assert terminal == {S.REJECTED, S.EXPIRED, S.CANCELLED, S.RELEASED}
    for status in terminal:
        assert not any(can_transition(status, other) for other in RequestStatus)


def test_open_requests_are_exactly_the_cancellable_ones() -> None:
    assert {s for s in RequestStatus if s.is_open} == {
        S.PENDING_APPROVAL,
        S.APPROVED,
        S.PROVISIONING,
        S.FAILED,
    }
    assert not S.COMPLETED.is_open
    assert not S.COMPLETED.is_terminal


def test_stages_run_in_order_with_human_labels() -> None:
    assert [(s.number, s.label) for s in Stage] == [
        (1, "Acquire number"),
        (2, "Create resource account"),
        (3, "Assign license"),
        (4, "Bind number"),
    ]


# --- number request ----------------------------------------------------------------------


def test_number_request_normalises_country_and_display_name() -> None:
    spec = NumberRequest(country=" us ", area_code=" 425 ", display_name="  Contoso Support ")
    assert spec.country == "US"
    assert spec.area_code == "425"
    assert spec.display_name == "Contoso Support"
    assert spec.number_type is NumberType.AUTO_ATTENDANT_TOLL
    assert spec.account_type is AccountType.IVR_BOT


@pytest.mark.parametrize("country", ["XX", "USA", "U", "", "United States"])
def test_number_request_refuses_unknown_country(country: str) -> None:
    with pytest.raises(ValidationError, match="country code"):
        NumberRequest(country=country, display_name="Support")


@pytest.mark.parametrize("area_code", [None, "any", "ANY", "  "])
def test_any_area_code_means_none(area_code: str | None) -> None:
    assert NumberRequest(country="US", area_code=area_code, display_name="x").area_code is None


@pytest.mark.parametrize("area_code", ["42a", "+1425", "4 25", "123456789"])
def test_area_code_must_be_digits(area_code: str) -> None:
    with pytest.raises(ValidationError, match="area code"):
        NumberRequest(country="US", area_code=area_code, display_name="x")


def test_display_name_may_be_256_characters_but_not_257() -> None:
    assert len(NumberRequest(country="US", display_name="a" * 256).display_name) == 256
    with pytest.raises(ValidationError, match="at most 256"):
        NumberRequest(country="US", display_name="a" * 257)


@pytest.mark.parametrize("name", ["", "   ", "Line\nbreak", "tab\there"])
def test_display_name_refuses_blank_and_control_characters(name: str) -> None:
    with pytest.raises(ValidationError, match="display name"):
        NumberRequest(country="US", display_name=name)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Support \u202egnp.exe", "U+202E RIGHT-TO-LEFT OVERRIDE at position 9"),
        ("Pay\u200broll", "U+200B ZERO WIDTH SPACE at position 4"),
        ("\u2066Admin\u2069", "U+2066 LEFT-TO-RIGHT ISOLATE at position 1"),
        ("Help\u2028Desk", "U+2028 LINE SEPARATOR at position 5"),
        ("Soft\u00adHyphen", "U+00AD SOFT HYPHEN at position 5"),
        ("Bell\x07", "U+0007 (a control character) at position 5"),
    ],
)
def test_display_name_refuses_characters_that_disguise_it(name: str, expected: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(expected)):
        NumberRequest(country="US", display_name=name)


def test_display_name_keeps_visible_non_latin_text() -> None:
    assert NumberRequest(country="JP", display_name="サポート窓口").display_name == "サポート窓口"


def test_a_teams_name_loses_what_could_disguise_it() -> None:
    person = Person(aad_object_id="x", display_name="Mallory\u200b \u202eAdmin\u202c")
    assert person.display_name == "Mallory Admin"


def test_number_type_uses_teams_names() -> None:
    spec = NumberRequest.model_validate(
        {"country": "GB", "display_name": "Helpdesk", "number_type": "CallQueueTollFree"}
    )
    assert spec.number_type is NumberType.CALL_QUEUE_TOLL_FREE
    assert spec.number_type.is_toll_free


def test_account_type_resolves_application_id() -> None:
    bot_id = "0b3c7c55-0000-4000-8000-000000000001"
    assert AccountType.IVR_BOT.application_id(bot_id) == bot_id
    assert AccountType.AUTO_ATTENDANT.application_id(bot_id) == AUTO_ATTENDANT_APPLICATION_ID
    assert AccountType.CALL_QUEUE.application_id(bot_id) == CALL_QUEUE_APPLICATION_ID


# --- UPN derivation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("display_name", "upn"),
    [
        ("Contoso Support", "contoso.support"),
        ("Émilie Çağr\N{LATIN SMALL LETTER DOTLESS I} Ñúñez", "emilie.cagri.nunez"),
        ("Straße Øresund Łódź", "strasse.oresund.lodz"),
        ("O'Brien Helpdesk", "obrien.helpdesk"),
        ("O\N{RIGHT SINGLE QUOTATION MARK}Brien Helpdesk", "obrien.helpdesk"),
        ("Sales & Support / EMEA", "sales.support.emea"),
        ("  ...Leading and trailing...  ", "leading.and.trailing"),
        ("a  b\u00a0c", "a.b.c"),
        ("IVR-Bot_2 (test)", "ivr-bot_2.test"),
        ("Hello! #1 ^~", "hello.1"),
        ("\uff26\uff35\uff2c\uff2c width", "full.width"),
    ],
)
def test_upn_is_derived_from_display_name(display_name: str, upn: str) -> None:
    assert derive_upn(display_name, DOMAIN) == f"{upn}@{DOMAIN}"


def test_upn_derivation_is_deterministic() -> None:
    assert derive_upn("Contoso Support", DOMAIN) == derive_upn("Contoso Support", DOMAIN)


def test_domain_is_normalised() -> None:
    assert derive_upn("Desk", " @Contoso.OnMicrosoft.com ") == f"desk@{DOMAIN}"


@pytest.mark.parametrize("domain", ["", "localhost", "contoso..com", "-contoso.com", "a b.com"])
def test_invalid_domain_is_refused(domain: str) -> None:
    with pytest.raises(ValueError, match="domain"):
        derive_upn("Desk", domain)


def test_prefix_is_kept_in_front() -> None:
    assert derive_upn("Contoso Support", DOMAIN, prefix="ivr.") == f"ivr.contoso.support@{DOMAIN}"


@pytest.mark.parametrize("display_name", ["", "   ", "客服热线", "!!! ???", "'''"])
def test_display_name_without_usable_characters_is_a_clear_error(display_name: str) -> None:
    with pytest.raises(ValueError, match="no letters or digits usable"):
        derive_upn(display_name, DOMAIN)


def test_local_part_of_exactly_64_characters_is_kept() -> None:
    upn = derive_upn("a" * 64, DOMAIN)
    assert upn == "a" * 64 + f"@{DOMAIN}"


def test_local_part_of_65_characters_is_cut_to_64() -> None:
    upn = derive_upn("a" * 65, DOMAIN)
    assert upn == "a" * 64 + f"@{DOMAIN}"


def test_cut_never_leaves_a_dot_before_the_at_sign() -> None:
    # 63 letters then a space: the cut at 64 lands right after the separator.
    upn = derive_upn("a" * 63 + " bcd", DOMAIN)
    assert upn == "a" * 63 + f"@{DOMAIN}"
    validate_upn(upn)


def test_long_domain_shortens_the_local_part_to_fit_113() -> None:
    domain = "d" * 50 + ".onmicrosoft.com"  # 66 characters
    upn = derive_upn("a" * 80, domain)
    assert len(upn) == 113
    assert upn == "a" * 46 + "@" + domain


def test_taken_upn_gets_the_first_free_numbered_alternative() -> None:
    taken = {f"desk@{DOMAIN}", f"DESK2@{DOMAIN.upper()}"}
    assert derive_upn("Desk", DOMAIN, taken=taken) == f"desk3@{DOMAIN}"


def test_taken_can_be_a_predicate() -> None:
    asked: list[str] = []

    def taken(upn: str) -> bool:
        asked.append(upn)
        return upn.startswith("desk@")

    assert derive_upn("Desk", DOMAIN, taken=taken) == f"desk2@{DOMAIN}"
    assert asked == [f"desk@{DOMAIN}", f"desk2@{DOMAIN}"]


def test_when_every_alternative_is_taken_the_error_says_so() -> None:
    with pytest.raises(ValueError, match="all taken"):
        derive_upn("Desk", DOMAIN, taken=lambda upn: True)


def test_alternatives_are_numbered_and_still_valid_at_full_length() -> None:
    assert upn_alternatives(f"desk@{DOMAIN}", count=3) == [
        f"desk2@{DOMAIN}",
        f"desk3@{DOMAIN}",
        f"desk4@{DOMAIN}",
    ]
    full = "a" * 64 + f"@{DOMAIN}"
    for alternative in upn_alternatives(full, count=12):
        validate_upn(alternative)
        assert len(mail_nickname(alternative)) == 64


def test_alternative_never_puts_a_dot_before_the_number() -> None:
    upn = "a" * 62 + f".b@{DOMAIN}"  # cutting one character for the "2" exposes the dot
    assert upn_alternatives(upn, count=1) == ["a" * 62 + f"2@{DOMAIN}"]


@pytest.mark.parametrize(
    ("upn", "reason"),
    [
        ("a" * 65 + f"@{DOMAIN}", "at most 64"),
        ("a" * 64 + "@" + "d" * 50 + ".onmicrosoft.com", "at most 113"),
        (f"desk.@{DOMAIN}", "right before '@'"),
        (f".desk@{DOMAIN}", "must not start with '.'"),
        (f"de..sk@{DOMAIN}", r"'\.\.'"),
        (f"dé sk@{DOMAIN}", "may only contain"),
        ("desk", "name@domain"),
    ],
)
def test_validate_upn_explains_each_rule(upn: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        validate_upn(upn)


def test_validate_upn_accepts_every_allowed_character() -> None:
    upn = f"O'Neil.a-b_c!d#e^f~9@{DOMAIN}"
    assert validate_upn(upn) == upn


# --- requests ----------------------------------------------------------------------------


def test_new_request_ids_use_the_unambiguous_alphabet() -> None:
    ids = {new_request_id() for _ in range(200)}
    assert len(ids) > 150
    for request_id in ids:
        assert request_id.startswith("PD-")
        assert len(request_id) == 7
        assert set(request_id[3:]) <= set(REQUEST_ID_ALPHABET)
    assert not set("01ILOU") & set(REQUEST_ID_ALPHABET)


@pytest.mark.parametrize("typed", ["PD-7K3Q", "pd-7k3q", " 7k3q ", "7K3Q"])
def test_request_ids_are_read_as_people_type_them(typed: str) -> None:
    assert parse_request_id(typed) == "PD-7K3Q"


@pytest.mark.parametrize("typed", ["PD-7K3", "PD-7K3QQ", "PD-0K3Q", "XY-7K3Q", ""])
def test_malformed_request_ids_are_refused(typed: str) -> None:
    with pytest.raises(ValueError, match="not a request id"):
        parse_request_id(typed)


def _request(**overrides: object) -> Request:
    fields: dict[str, object] = {
        "id": "PD-7K3Q",
        "tenant_id": "tenant",
        "requester": Person(aad_object_id="requester-oid", display_name="Ann"),
        "country": "US",
        "display_name": "Contoso Support",
        "created_at": NOW,
        "updated_at": NOW,
    }
    fields.update(overrides)
    return Request.model_validate(fields)


def test_a_new_request_waits_for_approval_with_four_waiting_stages() -> None:
    request = _request()
    assert request.status is S.PENDING_APPROVAL
    assert [(s.stage, s.status) for s in request.stages] == [
        (stage, StageStatus.WAITING) for stage in Stage
    ]
    assert request.result == ProvisioningResult()


def test_stages_are_kept_in_stage_order_whatever_order_they_come_in() -> None:
    done = StageState(stage=Stage.ASSIGN_LICENSE, status=StageStatus.DONE)
    request = _request(stages=[done, StageState(stage=Stage.ACQUIRE_NUMBER)])
    assert [s.stage for s in request.stages] == list(Stage)
    assert request.stage(Stage.ASSIGN_LICENSE) == done


def test_with_stage_replaces_only_that_stage() -> None:
    running = StageState(stage=Stage.CREATE_ACCOUNT, status=StageStatus.RUNNING, started_at=NOW)
    request = _request().with_stage(running)
    assert request.stage(Stage.CREATE_ACCOUNT) == running
    assert request.stage(Stage.ACQUIRE_NUMBER).status is StageStatus.WAITING


def test_timestamps_must_be_aware_and_are_kept_in_utc() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        _request(created_at=datetime(2026, 11, 26, 7, 0))
    paris = timezone(timedelta(hours=1))
    request = _request(created_at=datetime(2026, 11, 26, 8, 0, tzinfo=paris))
    assert request.created_at == NOW
    assert request.created_at.tzinfo is UTC


def test_a_rejection_needs_a_reason() -> None:
    approver = Person(aad_object_id="approver-oid")
    with pytest.raises(ValidationError, match="reason"):
        Decision(approved=False, by=approver, at=NOW, reason="  ")
    assert Decision(approved=True, by=approver, at=NOW).reason is None


def test_result_telephone_number_must_be_e164() -> None:
    assert ProvisioningResult(telephone_number="+14255550100").telephone_number == "+14255550100"
    with pytest.raises(ValidationError, match=r"E\.164"):
        ProvisioningResult(telephone_number="425-555-0100")


def test_models_are_immutable() -> None:
    request = _request()
    with pytest.raises(ValidationError):
        request.status = S.APPROVED  # type: ignore[misc]


def test_request_round_trips_through_json() -> None:
    request = _request(
        status=S.FAILED,
        decision=Decision(approved=True, by=Person(aad_object_id="approver-oid"), at=NOW),
        result=ProvisioningResult(telephone_number="+14255550100", upn=f"desk@{DOMAIN}"),
        failure={"stage": "assign_license", "reason": "No units left", "retryable": False},
    )
    assert Request.model_validate_json(request.model_dump_json()) == request
