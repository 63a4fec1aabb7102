"""Graph telephone number assignments and their long-running operations."""

from __future__ import annotations

import pytest

from provisioning.microsoft.errors import (
    CODE_BAD_REQUEST,
    BadRequest,
    NotFound,
)
from provisioning.microsoft.graph import (
    AssignmentStatus,
    InventoryNumberType,
    NumberCapability,
    OperationStatus,
    number_filter,
)
from tests.contract.conftest import (
    POLL_S,
    Contract,
    OperationFailed,
    OperationTimedOut,
    wait_for_operation,
)


async def test_listing_follows_next_links_page_by_page(contract: Contract) -> None:
    everything = await contract.graph.list_number_assignments(top=1000)
    contract.traffic.clear()

    paged = await contract.graph.list_number_assignments(top=2)

    assert paged == everything
    pages = contract.traffic.api_requests()
    assert len(pages) == -(-len(everything) // 2) > 2
    assert all("$skiptoken" in str(page.url) for page in pages[1:])


async def test_listing_filters_on_every_clause(contract: Contract) -> None:
    unassigned_us = await contract.graph.list_number_assignments(
        filter=number_filter(assignment_status="unassigned", iso_country_code="US"), top=1
    )

    assert len(unassigned_us) >= 3
    assert {n.assignment_status for n in unassigned_us} == {AssignmentStatus.UNASSIGNED}
    assert {n.iso_country_code for n in unassigned_us} == {"US"}
    direct = await contract.graph.list_number_assignments(
        filter=number_filter(assignment_status="unassigned", number_type="directRouting")
    )
    assert [n.number_type for n in direct] == [InventoryNumberType.DIRECT_ROUTING]
    voice_ready = [n for n in unassigned_us if n.can_serve_voice_applications]
    assert len(voice_ready) == 3
    assert all(n.number_type == InventoryNumberType.CALLING_PLAN for n in voice_ready)


async def test_a_filter_on_an_e164_number_finds_exactly_it(contract: Contract) -> None:
    number = await contract.free_service_number()

    found = await contract.graph.list_number_assignments(
        filter=number_filter(telephone_number=number.telephone_number)
    )

    assert found == [number]


async def test_a_filter_outside_the_grammar_is_bad_request(contract: Contract) -> None:
    with pytest.raises(BadRequest) as caught:
        await contract.graph.list_number_assignments(filter="startswith(city, 'Red')")

    assert caught.value.code == CODE_BAD_REQUEST


async def test_get_number_assignment_by_telephone_number(contract: Contract) -> None:
    number = await contract.free_service_number()

    fetched = await contract.graph.get_number_assignment(number.telephone_number)

    assert fetched == number
    assert fetched.id == number.telephone_number.removeprefix("+")
    assert NumberCapability.VOICE_APPLICATION_ASSIGNMENT in fetched.capabilities
    assert fetched.activation_state == "activated"


async def test_find_number_assignment_is_none_for_a_number_not_in_the_inventory(
    contract: Contract,
) -> None:
    assert await contract.graph.find_number_assignment("+14255550199") is None


async def test_assign_number_binds_it_once_the_operation_succeeds(contract: Contract) -> None:
    account = await contract.ready_account("ivr-main")
    number = await contract.free_service_number()

    operation_id = await contract.graph.assign_number(
        number.telephone_number, account.object_id, InventoryNumberType.CALLING_PLAN
    )
    first = await contract.graph.get_operation(operation_id)
    done = await wait_for_operation(contract, operation_id, poll_interval=POLL_S)

    assert first.status in (OperationStatus.NOT_STARTED, OperationStatus.RUNNING)
    assert done.status == OperationStatus.SUCCEEDED
    assert done.numbers[0].resource_location is not None
    assert done.numbers[0].resource_location.endswith(number.telephone_number.removeprefix("+"))
    assert contract.waits.delays, "the client polled while the operation ran"
    assert all(delay <= POLL_S for delay in contract.waits.delays)
    bound = await contract.graph.get_number_assignment(number.telephone_number)
    assert bound.assignment_status == AssignmentStatus.VOICE_APPLICATION_ASSIGNED
    assert bound.assignment_target_id == account.object_id
    assert bound.assignment_category == "primary"
    instance = await contract.teams.get_application_instance(account.object_id)
    assert instance.phone_number == number.telephone_number
    assert (await contract.counters())["numbersBound"] == 1


async def test_assigning_the_same_number_again_succeeds_without_binding_twice(
    contract: Contract,
) -> None:
    account = await contract.ready_account("ivr-again")
    number = await contract.free_service_number()
    for _ in range(2):
        operation_id = await contract.graph.assign_number(
            number.telephone_number, account.object_id, InventoryNumberType.CALLING_PLAN
        )
        await wait_for_operation(contract, operation_id, poll_interval=POLL_S)

    assert (await contract.counters())["numbersBound"] == 1


async def test_unassign_number_releases_it(contract: Contract) -> None:
    account = await contract.ready_account("ivr-gone")
    number = await contract.free_service_number()
    bind = await contract.graph.assign_number(
        number.telephone_number, account.object_id, InventoryNumberType.CALLING_PLAN
    )
    await wait_for_operation(contract, bind, poll_interval=POLL_S)

    unbind = await contract.graph.unassign_number(
        number.telephone_number, InventoryNumberType.CALLING_PLAN
    )
    done = await wait_for_operation(contract, unbind, poll_interval=POLL_S)

    assert done.status == OperationStatus.SUCCEEDED
    released = await contract.graph.get_number_assignment(number.telephone_number)
    assert released.assignment_status == AssignmentStatus.UNASSIGNED
    assert released.assignment_target_id is None
    assert (await contract.counters())["numbersUnbound"] == 1


async def test_get_of_an_unknown_operation_is_not_found(contract: Contract) -> None:
    with pytest.raises(NotFound):
        await contract.graph.get_operation("9e9e9e9e-0000-4000-8000-000000000000")


# -- failure modes -------------------------------------------------------------------------


async def test_an_operation_still_running_at_the_deadline_times_out_the_wait(
    contract: Contract,
) -> None:
    account = await contract.ready_account("ivr-slow")
    number = await contract.free_service_number()
    operation_id = await contract.graph.assign_number(
        number.telephone_number, account.object_id, InventoryNumberType.CALLING_PLAN
    )
    max_wait = contract.config.operation_delay_s / 2

    with pytest.raises(OperationTimedOut) as caught:
        await wait_for_operation(
            contract, operation_id, poll_interval=POLL_S / 10, max_wait=max_wait
        )

    assert caught.value.operation_id == operation_id
    assert caught.value.last_status == OperationStatus.RUNNING
    assert caught.value.waited >= max_wait
    done = await wait_for_operation(contract, operation_id, poll_interval=POLL_S)
    assert done.status == OperationStatus.SUCCEEDED


async def test_assign_number_to_an_unlicensed_account_fails_saying_so(
    contract: Contract,
) -> None:
    account = await contract.ready_account("ivr-nolicense", licensed=False)
    number = await contract.free_service_number()
    operation_id = await contract.graph.assign_number(
        number.telephone_number, account.object_id, InventoryNumberType.CALLING_PLAN
    )

    with pytest.raises(OperationFailed) as caught:
        await wait_for_operation(contract, operation_id, poll_interval=POLL_S)

    assert caught.value.operation_id == operation_id
    assert caught.value.status_detail is not None
    assert "not licensed" in caught.value.status_detail
    assert caught.value.status_detail in str(caught.value)
    unbound = await contract.graph.get_number_assignment(number.telephone_number)
    assert unbound.assignment_status == AssignmentStatus.UNASSIGNED
    assert (await contract.counters())["numbersBound"] == 0


async def test_assign_number_to_an_unsynced_account_fails_saying_so(contract: Contract) -> None:
    account = await contract.ready_account("ivr-nosync", synced=False)
    number = await contract.free_service_number()
    operation_id = await contract.graph.assign_number(
        number.telephone_number, account.object_id, InventoryNumberType.CALLING_PLAN
    )

    with pytest.raises(OperationFailed) as caught:
        await wait_for_operation(contract, operation_id, poll_interval=POLL_S)

    assert caught.value.status_detail is not None
    assert "not synced" in caught.value.status_detail
    assert (await contract.counters())["numbersBound"] == 0


async def test_assign_number_after_the_sync_lands_succeeds(contract: Contract) -> None:
    account = await contract.ready_account("ivr-late", synced=False)
    number = await contract.free_service_number()
    await contract.teams.sync_application_instance(account.object_id)
    contract.advance(contract.config.sync_delay_s)

    operation_id = await contract.graph.assign_number(
        number.telephone_number, account.object_id, InventoryNumberType.CALLING_PLAN
    )
    done = await wait_for_operation(contract, operation_id, poll_interval=POLL_S)

    assert done.status == OperationStatus.SUCCEEDED


async def test_assign_number_without_voice_application_capability_fails_saying_so(
    contract: Contract,
) -> None:
    account = await contract.ready_account("ivr-usernumber")
    unassigned = await contract.graph.list_number_assignments(
        filter=number_filter(assignment_status="unassigned", number_type="callingPlan")
    )
    user_only = next(n for n in unassigned if not n.can_serve_voice_applications)
    operation_id = await contract.graph.assign_number(
        user_only.telephone_number, account.object_id, InventoryNumberType.CALLING_PLAN
    )

    with pytest.raises(OperationFailed) as caught:
        await wait_for_operation(contract, operation_id, poll_interval=POLL_S)

    assert caught.value.status_detail is not None
    assert NumberCapability.VOICE_APPLICATION_ASSIGNMENT in caught.value.status_detail


async def test_assign_number_with_a_malformed_body_is_refused_at_once(
    contract: Contract,
) -> None:
    account = await contract.ready_account("ivr-badbody", licensed=False, synced=False)

    with pytest.raises(BadRequest) as caught:
        await contract.graph.assign_number("4255550100", account.object_id, "callingPlan")

    assert caught.value.code == CODE_BAD_REQUEST
    assert "telephoneNumber" in caught.value.message
