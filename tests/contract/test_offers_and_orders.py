"""Teams admin number offers and search orders: every call, stock and expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from provisioning.microsoft.errors import CODE_BAD_REQUEST, BadRequest, NotFound
from provisioning.microsoft.graph import AssignmentStatus, NumberCapability, number_filter
from provisioning.microsoft.teams_admin import SearchOrderErrorCode, SearchOrderStatus
from tests.contract.conftest import Contract

AUTO_ATTENDANT_TOLL = "AutoAttendantToll"


async def place_order(
    contract: Contract, name: str, *, area_code: str | None = "425", quantity: int = 1
) -> str:
    return await contract.teams.create_search_order(
        name=name,
        description="contract test",
        country_code="US",
        number_type=AUTO_ATTENDANT_TOLL,
        quantity=quantity,
        area_code=area_code,
    )


async def available(contract: Contract, area_code: str) -> int:
    number_types = await contract.teams.list_number_types("US")
    toll = next(t for t in number_types if t.number_type == AUTO_ATTENDANT_TOLL)
    return next(a.available_quantity for a in toll.area_codes if a.area_code == area_code)


async def test_countries_offer_at_least_the_five_markets(contract: Contract) -> None:
    countries = {c.iso_country_code: c for c in await contract.teams.list_countries()}

    assert set(countries) >= {"US", "CA", "GB", "DE", "AU"}
    assert countries["US"].display_name == "United States"


async def test_number_types_list_area_codes_with_availability(contract: Contract) -> None:
    number_types = {t.number_type: t for t in await contract.teams.list_number_types("US")}

    assert set(number_types) >= {
        "AutoAttendantToll",
        "AutoAttendantTollFree",
        "CallQueueToll",
        "CallQueueTollFree",
    }
    toll = number_types[AUTO_ATTENDANT_TOLL]
    assert not toll.is_toll_free
    assert number_types["AutoAttendantTollFree"].is_toll_free
    areas = {a.area_code: a for a in toll.area_codes}
    assert {"206", "425", "212"} <= set(areas)
    assert areas["425"].city == "Redmond"
    assert areas["425"].available_quantity > 0
    assert areas["212"].available_quantity == 0


async def test_number_types_of_a_country_not_offered_is_not_found(contract: Contract) -> None:
    with pytest.raises(NotFound):
        await contract.teams.list_number_types("ZZ")


async def test_a_search_order_is_pending_then_reserves_numbers(contract: Contract) -> None:
    order_id = await place_order(contract, "phonedesk-req-1", quantity=2)

    pending = await contract.teams.get_search_order(order_id)
    contract.advance(contract.config.search_delay_s)
    reserved = await contract.teams.get_search_order(order_id)

    assert pending.status == SearchOrderStatus.PENDING
    assert (pending.id, pending.name) == (order_id, "phonedesk-req-1")
    assert reserved.status == SearchOrderStatus.RESERVED
    assert reserved.error_code == SearchOrderErrorCode.NO_ERROR
    assert (reserved.country_code, reserved.area_code, reserved.quantity) == ("US", "425", 2)
    assert len(reserved.telephone_numbers) == 2
    assert all(n.telephone_number.startswith("+1425") for n in reserved.telephone_numbers)
    assert reserved.created_at is not None
    assert reserved.reservation_expiry_date is not None
    assert reserved.reservation_expiry_date - reserved.created_at == timedelta(
        seconds=contract.config.reservation_expiry_s
    )
    assert (await contract.counters())["ordersCreated"] == 1


async def test_find_search_order_by_name_returns_the_newest(contract: Contract) -> None:
    await place_order(contract, "phonedesk-req-2")
    contract.advance(1)
    newest = await place_order(contract, "phonedesk-req-2")
    await place_order(contract, "phonedesk-req-3")

    found = await contract.teams.find_search_order_by_name("phonedesk-req-2")

    assert found is not None
    assert found.id == newest


async def test_find_search_order_by_name_is_none_for_an_unknown_name(contract: Contract) -> None:
    await place_order(contract, "phonedesk-req-4")

    assert await contract.teams.find_search_order_by_name("phonedesk-req-404") is None


async def test_get_of_an_unknown_search_order_is_not_found(contract: Contract) -> None:
    with pytest.raises(NotFound):
        await contract.teams.get_search_order("0f0f0f0f-0000-4000-8000-000000000000")


async def test_completing_puts_the_numbers_in_the_inventory_exactly_once(
    contract: Contract,
) -> None:
    order_id = await place_order(contract, "phonedesk-req-5")
    contract.advance(contract.config.search_delay_s)
    reserved = await contract.teams.get_search_order(order_id)

    await contract.teams.complete_search_order(order_id)
    await contract.teams.complete_search_order(order_id)

    completed = await contract.teams.get_search_order(order_id)
    assert completed.status == SearchOrderStatus.COMPLETED
    ordered = reserved.telephone_numbers[0].telephone_number
    number = await contract.graph.get_number_assignment(ordered)
    assert number.assignment_status == AssignmentStatus.UNASSIGNED
    assert number.number_type == "callingPlan"
    assert NumberCapability.VOICE_APPLICATION_ASSIGNMENT in number.capabilities
    assert (await contract.counters())["ordersCompleted"] == 1


async def test_cancelling_releases_the_reservation(contract: Contract) -> None:
    before = await available(contract, "425")
    order_id = await place_order(contract, "phonedesk-req-6")
    contract.advance(contract.config.search_delay_s)
    assert await available(contract, "425") == before - 1

    await contract.teams.cancel_search_order(order_id)

    assert (await contract.teams.get_search_order(order_id)).status == SearchOrderStatus.CANCELLED
    assert await available(contract, "425") == before
    with pytest.raises(BadRequest):
        await contract.teams.complete_search_order(order_id)
    assert (await contract.counters())["ordersCancelled"] == 1


# -- failure modes -------------------------------------------------------------------------


async def test_an_area_code_without_stock_ends_in_error_out_of_stock(contract: Contract) -> None:
    order_id = await place_order(contract, "phonedesk-req-7", area_code="212")
    contract.advance(contract.config.search_delay_s)

    failed = await contract.teams.get_search_order(order_id)

    assert failed.status == SearchOrderStatus.ERROR
    assert failed.error_code == SearchOrderErrorCode.OUT_OF_STOCK
    assert failed.telephone_numbers == []
    with pytest.raises(BadRequest) as caught:
        await contract.teams.complete_search_order(order_id)
    assert caught.value.code == CODE_BAD_REQUEST
    assert (await contract.counters())["ordersCompleted"] == 0


async def test_an_uncompleted_reservation_expires_and_cannot_be_completed(
    contract: Contract,
) -> None:
    before = await available(contract, "425")
    order_id = await place_order(contract, "phonedesk-req-8")
    contract.advance(contract.config.search_delay_s)
    reserved = await contract.teams.get_search_order(order_id)

    contract.advance(contract.config.reservation_expiry_s)
    expired = await contract.teams.get_search_order(order_id)

    assert expired.status == SearchOrderStatus.EXPIRED
    with pytest.raises(BadRequest) as caught:
        await contract.teams.complete_search_order(order_id)
    assert caught.value.code == CODE_BAD_REQUEST
    assert "expired" in caught.value.message
    assert await available(contract, "425") == before
    ordered = reserved.telephone_numbers[0].telephone_number
    assert await contract.graph.find_number_assignment(ordered) is None
    assert (await contract.counters())["ordersCompleted"] == 0


async def test_completing_a_pending_order_is_bad_request(contract: Contract) -> None:
    order_id = await place_order(contract, "phonedesk-req-9")

    with pytest.raises(BadRequest):
        await contract.teams.complete_search_order(order_id)


async def test_an_area_code_not_offered_is_bad_request_at_once(contract: Contract) -> None:
    with pytest.raises(BadRequest) as caught:
        await place_order(contract, "phonedesk-req-10", area_code="999")

    assert caught.value.code == CODE_BAD_REQUEST
    assert "999" in caught.value.message
    assert (await contract.counters())["ordersCreated"] == 0


async def test_an_order_without_an_area_code_gets_one_and_its_numbers_are_listed(
    contract: Contract,
) -> None:
    order_id = await place_order(contract, "phonedesk-req-11", area_code=None)
    contract.advance(contract.config.search_delay_s)
    await contract.teams.complete_search_order(order_id)
    completed = await contract.teams.get_search_order(order_id)

    numbers = await contract.graph.list_number_assignments(
        filter=number_filter(
            telephone_number=completed.telephone_numbers[0].telephone_number,
            assignment_status="unassigned",
        )
    )

    assert completed.area_code is not None
    assert len(numbers) == 1


async def test_an_order_name_with_query_syntax_in_it_is_found_exactly(
    contract: Contract,
) -> None:
    name = "Contoso & Co + 1 #2 = 100% Zürich?"
    order_id = await place_order(contract, name)
    await place_order(contract, "Contoso")

    found = await contract.teams.find_search_order_by_name(name)

    assert found is not None
    assert (found.id, found.name) == (order_id, name)
    (answer,) = contract.traffic.api_answers()[-1:]
    assert [order["id"] for order in answer.json()["value"]] == [order_id]
