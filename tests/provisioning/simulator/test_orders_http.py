"""Number offers and search orders over HTTP, from search to completion, expiry or cancel."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from tests.provisioning.simulator.conftest import NUMBERS, Sim, SimFactory, error_of, teams_path


def order(**changes: Any) -> dict[str, Any]:
    body = {
        "name": "phonedesk-req-42",
        "description": "IVR for Contoso Support",
        "countryCode": "US",
        "numberType": "AutoAttendantToll",
        "quantity": 1,
        "areaCode": "425",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


async def place(sim: Sim, **changes: Any) -> str:
    resp = await sim.teams("POST", teams_path("search_orders"), json=order(**changes))
    assert resp.status == 201, await resp.text()
    order_id: str = (await resp.json())["orderId"]
    return order_id


async def read(sim: Sim, order_id: str) -> dict[str, Any]:
    resp = await sim.teams("GET", teams_path("search_order", order_id))
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_countries_and_number_types_describe_what_can_be_ordered(sim: Sim) -> None:
    countries = (await (await sim.teams("GET", teams_path("countries"))).json())["value"]
    assert {c["isoCountryCode"] for c in countries} >= {"US", "CA", "GB", "DE", "AU"}

    resp = await sim.teams("GET", teams_path("number_types", "US"))
    types = {t["numberType"]: t for t in (await resp.json())["value"]}
    assert set(types) == {
        "AutoAttendantToll",
        "AutoAttendantTollFree",
        "CallQueueToll",
        "CallQueueTollFree",
    }
    toll = {a["areaCode"]: a for a in types["AutoAttendantToll"]["areaCodes"]}
    assert toll["425"] == {"areaCode": "425", "city": "Redmond", "availableQuantity": 12}
    assert toll["212"]["availableQuantity"] == 0
    assert types["AutoAttendantTollFree"]["isTollFree"] is True
    assert {a["areaCode"] for a in types["AutoAttendantTollFree"]["areaCodes"]} == {"800", "888"}


async def test_a_country_that_is_not_offered_is_not_found(sim: Sim) -> None:
    resp = await sim.teams("GET", teams_path("number_types", "FR"))
    assert (await error_of(resp))[:2] == (404, "Request_ResourceNotFound")


async def test_an_order_is_reserved_after_the_search_then_completed_into_the_inventory(
    sim: Sim,
) -> None:
    order_id = await place(sim, quantity=2)
    pending = await read(sim, order_id)
    assert (pending["status"], pending["telephoneNumbers"]) == ("Pending", [])

    sim.advance(sim.config.search_delay_s)
    reserved = await read(sim, order_id)
    assert (reserved["status"], reserved["errorCode"]) == ("Reserved", "NoError")
    numbers = [n["telephoneNumber"] for n in reserved["telephoneNumbers"]]
    assert len(numbers) == 2
    assert all(n.startswith("+1425") for n in numbers)
    assert {n["location"] for n in reserved["telephoneNumbers"]} == {"Redmond"}
    created = datetime.fromisoformat(reserved["createdAt"])
    expires = datetime.fromisoformat(reserved["reservationExpiryDate"])
    assert (expires - created).total_seconds() == 16 * 60

    resp = await sim.teams("GET", teams_path("number_types", "US"))
    stock = next(t for t in (await resp.json())["value"] if t["numberType"] == "AutoAttendantToll")
    assert {a["areaCode"]: a["availableQuantity"] for a in stock["areaCodes"]}["425"] == 10

    assert (await sim.teams("POST", teams_path("complete_order", order_id))).status == 204
    assert (await read(sim, order_id))["status"] == "Completed"
    for tel in numbers:
        resp = await sim.graph("GET", f"{NUMBERS}/numberAssignments/{tel[1:]}")
        item = await resp.json()
        assert item["assignmentStatus"] == "unassigned"
        assert item["numberType"] == "callingPlan"
        assert "voiceApplicationAssignment" in item["capabilities"]


async def test_completing_twice_is_idempotent(sim: Sim) -> None:
    order_id = await place(sim)
    sim.advance(sim.config.search_delay_s)
    for _ in range(2):
        assert (await sim.teams("POST", teams_path("complete_order", order_id))).status == 204
    counters = await sim.counters()
    assert (counters["ordersCreated"], counters["ordersCompleted"]) == (1, 1)


async def test_completing_before_the_reservation_is_refused(sim: Sim) -> None:
    order_id = await place(sim)
    resp = await sim.teams("POST", teams_path("complete_order", order_id))
    assert (await error_of(resp))[:2] == (400, "Request_BadRequest")


async def test_an_area_code_without_stock_ends_in_error_out_of_stock(sim: Sim) -> None:
    order_id = await place(sim, areaCode="212")
    sim.advance(sim.config.search_delay_s)
    body = await read(sim, order_id)
    assert (body["status"], body["errorCode"], body["telephoneNumbers"]) == (
        "Error",
        "OutOfStock",
        [],
    )
    resp = await sim.teams("POST", teams_path("complete_order", order_id))
    assert (await error_of(resp))[:2] == (400, "Request_BadRequest")


async def test_asking_for_more_than_the_stock_is_out_of_stock(sim: Sim) -> None:
    order_id = await place(sim, areaCode="888", numberType="CallQueueTollFree", quantity=4)
    sim.advance(sim.config.search_delay_s)
    assert (await read(sim, order_id))["errorCode"] == "OutOfStock"


async def test_an_uncompleted_reservation_expires_and_cannot_be_completed(sim: Sim) -> None:
    order_id = await place(sim)
    sim.advance(sim.config.reservation_expiry_s)
    assert (await read(sim, order_id))["status"] == "Expired"
    resp = await sim.teams("POST", teams_path("complete_order", order_id))
    status, code, message = await error_of(resp)
    assert (status, code) == (400, "Request_BadRequest")
    assert "expired" in message
    assert (await sim.counters())["ordersCompleted"] == 0


async def test_cancelling_releases_the_reservation(sim: Sim) -> None:
    order_id = await place(sim, quantity=12)
    sim.advance(sim.config.search_delay_s)
    assert (await sim.teams("POST", teams_path("cancel_order", order_id))).status == 204
    assert (await read(sim, order_id))["status"] == "Cancelled"
    again = await place(sim, quantity=12)
    sim.advance(sim.config.search_delay_s)
    assert (await read(sim, again))["status"] == "Reserved"
    assert (await sim.counters())["ordersCancelled"] == 1


async def test_orders_are_found_by_their_deterministic_name(sim: Sim) -> None:
    wanted = await place(sim, name="phonedesk-req-7")
    await place(sim, name="phonedesk-req-8")
    resp = await sim.teams("GET", teams_path("search_orders"), params={"name": "phonedesk-req-7"})
    found = (await resp.json())["value"]
    assert [o["id"] for o in found] == [wanted]
    resp = await sim.teams("GET", teams_path("search_orders"), params={"name": "nope"})
    assert (await resp.json())["value"] == []


async def test_an_order_without_area_code_lets_the_service_choose(sim: Sim) -> None:
    order_id = await place(sim, areaCode=None, countryCode="GB", numberType="CallQueueToll")
    sim.advance(sim.config.search_delay_s)
    body = await read(sim, order_id)
    assert body["status"] == "Reserved"
    assert body["areaCode"] == "20"
    assert body["telephoneNumbers"][0]["telephoneNumber"].startswith("+4420")


@pytest.mark.parametrize(
    "changes",
    [
        {"countryCode": "FR"},
        {"countryCode": "us"},
        {"numberType": "UserToll"},
        {"quantity": 0},
        {"quantity": "1"},
        {"areaCode": "999"},
        {"areaCode": "425", "numberPrefix": "425555"},
        {"name": ""},
        {"name": None},
        {"colour": "blue"},
    ],
)
async def test_bad_orders_are_refused(sim: Sim, changes: dict[str, Any]) -> None:
    resp = await sim.teams("POST", teams_path("search_orders"), json=order(**changes))
    assert (await error_of(resp))[:2] == (400, "Request_BadRequest")
    assert (await sim.counters())["ordersCreated"] == 0


async def test_stock_can_be_changed_at_run_time(make_sim: SimFactory) -> None:
    sim = await make_sim()
    resp = await sim.admin(
        "POST",
        "/stock",
        json={
            "countryCode": "US",
            "numberType": "AutoAttendantToll",
            "areaCode": "425",
            "quantity": 0,
        },
    )
    assert resp.status == 200
    order_id = await place(sim)
    sim.advance(sim.config.search_delay_s)
    assert (await read(sim, order_id))["errorCode"] == "OutOfStock"

    resp = await sim.admin(
        "POST",
        "/stock",
        json={
            "countryCode": "US",
            "numberType": "AutoAttendantToll",
            "areaCode": "212",
            "quantity": 5,
        },
    )
    assert resp.status == 200
    order_id = await place(sim, areaCode="212")
    sim.advance(sim.config.search_delay_s)
    assert (await read(sim, order_id))["status"] == "Reserved"


async def test_unknown_orders_are_not_found(sim: Sim) -> None:
    resp = await sim.teams(
        "GET", teams_path("search_order", "7a1f5a43-0000-4000-8000-000000000000")
    )
    assert (await error_of(resp))[:2] == (404, "Request_ResourceNotFound")
