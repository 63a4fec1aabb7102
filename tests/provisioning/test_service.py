"""The service's use cases: who may do what, and what a refused command leaves behind."""

from __future__ import annotations

import asyncio
import time

import pytest

from provisioning.domain import AuditResult, NumberRequest, RequestStatus
from provisioning.service import RequestNotFound
from tests.provisioning.conftest import (
    APPROVER,
    REQUESTER,
    SECOND_APPROVER,
    STRANGER,
    Harness,
    OpenHarness,
)


async def test_submit_acknowledges_at_once_with_the_proposed_user_name(harness: Harness) -> None:
    started = time.monotonic()
    outcome = await harness.service.submit(
        REQUESTER, NumberRequest(country="us", area_code="425", display_name="Contoso Support")
    )

    assert time.monotonic() - started < 5
    assert outcome.ok
    assert outcome.request is not None
    assert outcome.request.status is RequestStatus.PENDING_APPROVAL
    assert "contoso.support@contoso.onmicrosoft.com" in outcome.message
    assert "Waiting for an approver" in outcome.message
    stored = await harness.service.get(outcome.request.id)
    assert stored.requester == REQUESTER
    assert [e.action for e in await harness.service.audit(stored.id)] == ["request.submitted"]


async def test_submit_refuses_a_display_name_without_usable_letters(harness: Harness) -> None:
    outcome = await harness.service.submit(
        REQUESTER, NumberRequest(country="US", display_name="電話サポート")
    )

    assert not outcome.ok
    assert outcome.request is None
    assert "no letters or digits usable in a user name" in outcome.message
    assert await harness.service.list() == []


async def test_only_configured_approvers_can_approve(harness: Harness) -> None:
    request = await harness.submit("Contoso Support")

    outcome = await harness.service.approve(request.id, STRANGER)

    assert not outcome.ok
    assert outcome.message == "Only approvers can approve requests."
    assert (await harness.service.get(request.id)).status is RequestStatus.PENDING_APPROVAL
    refused = (await harness.service.audit(request.id))[-1]
    assert (refused.action, refused.actor, refused.result) == (
        "request.approve",
        STRANGER.aad_object_id,
        AuditResult.REFUSED,
    )


async def test_only_configured_approvers_can_reject(harness: Harness) -> None:
    request = await harness.submit("Contoso Support")

    outcome = await harness.service.reject(request.id, REQUESTER, reason="changed my mind")

    assert not outcome.ok
    assert (await harness.service.get(request.id)).status is RequestStatus.PENDING_APPROVAL


async def test_a_requester_never_approves_their_own_request(open_harness: OpenHarness) -> None:
    async with open_harness(approvers=[REQUESTER.aad_object_id, APPROVER.aad_object_id]) as h:
        request = await h.submit("Self Service")

        outcome = await h.service.approve(request.id, REQUESTER)

        assert not outcome.ok
        assert "your own request" in outcome.message
        assert (await h.service.get(request.id)).status is RequestStatus.PENDING_APPROVAL


async def test_a_rejection_needs_a_reason(harness: Harness) -> None:
    request = await harness.submit("Contoso Support")

    outcome = await harness.service.reject(request.id, APPROVER, reason="  ")

    assert not outcome.ok
    assert outcome.message == "A rejection needs a reason."


async def test_a_decision_on_a_finished_request_changes_nothing_and_says_why(
    harness: Harness,
) -> None:
    request = await harness.submit("Contoso Support")
    rejected = await harness.service.reject(request.id, APPROVER, reason="use the main line")
    assert rejected.ok

    late = await harness.service.approve(request.id, SECOND_APPROVER)

    assert not late.ok
    assert late.message.startswith(f"{request.id} was already rejected by Abe at ")
    assert late.message.endswith("nothing changed.")
    current = await harness.service.get(request.id)
    assert current.status is RequestStatus.REJECTED
    assert current.decision is not None
    assert current.decision.reason == "use the main line"
    assert (await harness.counters())["accountsCreated"] == 0


async def test_two_approvers_deciding_at_once_only_one_wins(harness: Harness) -> None:
    request = await harness.submit("Contoso Support")

    outcomes = await asyncio.gather(
        harness.service.approve(request.id, APPROVER),
        harness.service.reject(request.id, SECOND_APPROVER, reason="duplicate"),
    )

    assert sorted(o.ok for o in outcomes) == [False, True]
    loser = next(o for o in outcomes if not o.ok)
    assert "nothing changed" in loser.message


async def test_a_double_click_on_approve_is_answered_with_the_current_state(
    harness: Harness,
) -> None:
    request = await harness.submit("Contoso Support")

    first = await harness.service.approve(request.id, APPROVER)
    second = await harness.service.approve(request.id, APPROVER)

    assert first.ok
    assert not second.ok
    assert second.request is not None
    assert second.request.status is not RequestStatus.PENDING_APPROVAL


async def test_strangers_cannot_cancel(harness: Harness) -> None:
    request = await harness.submit("Contoso Support")

    outcome = await harness.service.cancel(request.id, STRANGER)

    assert not outcome.ok
    assert "Only the requester or an approver" in outcome.message
    assert (await harness.service.get(request.id)).status is RequestStatus.PENDING_APPROVAL


async def test_an_approver_may_cancel_someone_elses_request(harness: Harness) -> None:
    request = await harness.submit("Contoso Support")

    outcome = await harness.service.cancel(request.id, SECOND_APPROVER, reason="duplicate")

    assert outcome.ok
    assert (await harness.service.get(request.id)).status is RequestStatus.CANCELLED


async def test_cancel_of_a_completed_request_points_to_release(harness: Harness) -> None:
    request = await harness.submit_approved("Contoso Support")
    await harness.wait(request.id, RequestStatus.COMPLETED)

    outcome = await harness.service.cancel(request.id, REQUESTER)

    assert not outcome.ok
    assert "Use release" in outcome.message
    assert (await harness.service.get(request.id)).status is RequestStatus.COMPLETED


async def test_retry_is_only_for_failed_requests(harness: Harness) -> None:
    request = await harness.submit("Contoso Support")

    outcome = await harness.service.retry(request.id, REQUESTER)

    assert not outcome.ok
    assert "only a failed request can be retried" in outcome.message


async def test_strangers_cannot_retry_or_release(harness: Harness) -> None:
    request = await harness.submit_approved("Out Of Stock", area_code="212")
    await harness.wait(request.id, RequestStatus.FAILED)

    retried = await harness.service.retry(request.id, STRANGER)
    released = await harness.service.release(request.id, STRANGER)

    assert not retried.ok
    assert not released.ok
    assert (await harness.service.get(request.id)).status is RequestStatus.FAILED


async def test_release_is_only_for_completed_requests(harness: Harness) -> None:
    request = await harness.submit("Contoso Support")

    outcome = await harness.service.release(request.id, REQUESTER)

    assert not outcome.ok
    assert "only a completed request can be released" in outcome.message


async def test_an_unknown_request_raises_not_found(harness: Harness) -> None:
    with pytest.raises(RequestNotFound):
        await harness.service.get("PD-2222")
    with pytest.raises(RequestNotFound):
        await harness.service.approve("PD-2222", APPROVER)


async def test_a_malformed_request_id_is_a_value_error(harness: Harness) -> None:
    with pytest.raises(ValueError, match="not a request id"):
        await harness.service.get("hello")


async def test_request_ids_are_read_the_way_people_type_them(harness: Harness) -> None:
    request = await harness.submit("Contoso Support")

    found = await harness.service.get(request.id.removeprefix("PD-").lower())

    assert found.id == request.id


async def test_list_filters_by_requester_and_status(harness: Harness) -> None:
    mine = await harness.submit("Mine")
    other = await harness.service.submit(
        SECOND_APPROVER, NumberRequest(country="US", display_name="Theirs")
    )
    assert other.request is not None
    await harness.service.cancel(other.request.id, SECOND_APPROVER)

    assert [r.id for r in await harness.service.list(requester_id=REQUESTER.aad_object_id)] == [
        mine.id
    ]
    assert [r.id for r in await harness.service.pending()] == [mine.id]
    cancelled = await harness.service.list(status=[RequestStatus.CANCELLED])
    assert [r.id for r in cancelled] == [other.request.id]


async def test_numbers_lists_unassigned_inventory_and_who_holds_each(harness: Harness) -> None:
    request = await harness.submit_approved("Holder")
    done = await harness.wait(request.id, RequestStatus.COMPLETED)

    numbers = await harness.service.numbers("US")

    assert all(n.country == "US" for n in numbers)
    capable = [n for n in numbers if n.voice_application_capable]
    assert len(capable) == 2
    assert all(n.claimed_by is None for n in numbers)
    assert done.result.telephone_number not in {n.telephone_number for n in numbers}


async def test_number_offers_show_area_codes_in_stock(harness: Harness) -> None:
    countries = {c.iso_country_code for c in await harness.service.countries()}
    offers = await harness.service.number_offers("us")

    assert {"US", "GB"} <= countries
    toll = next(o for o in offers if o.number_type == "AutoAttendantToll")
    assert {a.area_code: a.available_quantity for a in toll.area_codes}["212"] == 0


async def test_every_decision_is_audited_with_who_and_what(harness: Harness) -> None:
    request = await harness.submit("Audited")
    await harness.service.approve(request.id, STRANGER)
    await harness.service.approve(request.id, APPROVER)
    await harness.wait(request.id, RequestStatus.COMPLETED)

    entries = await harness.service.audit(request.id)

    by_action = [(e.action, e.actor, e.result) for e in entries]
    assert by_action[:3] == [
        ("request.submitted", REQUESTER.aad_object_id, AuditResult.OK),
        ("request.approve", STRANGER.aad_object_id, AuditResult.REFUSED),
        ("request.approved", APPROVER.aad_object_id, AuditResult.OK),
    ]
    assert [e.id for e in entries] == sorted(e.id for e in entries)
    assert {"number.claimed", "account.created", "license.assigned", "number.bound"} <= {
        e.action for e in entries
    }
