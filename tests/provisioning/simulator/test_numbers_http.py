"""The tenant's number inventory over HTTP: filtering, `$top`, paging, lookup by id."""

from __future__ import annotations

from typing import Any

import pytest

from tests.provisioning.simulator.conftest import NUMBERS, Sim, error_of


async def list_numbers(sim: Sim, **params: str) -> dict[str, Any]:
    resp = await sim.graph("GET", f"{NUMBERS}/numberAssignments", params=params)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_unassigned_filter_includes_numbers_a_voice_app_cannot_take(sim: Sim) -> None:
    body = await list_numbers(
        sim, **{"$filter": "assignmentStatus eq 'unassigned' and isoCountryCode eq 'US'"}
    )
    numbers = body["value"]
    assert {n["assignmentStatus"] for n in numbers} == {"unassigned"}
    usable = [n for n in numbers if "voiceApplicationAssignment" in n["capabilities"]]
    assert len(usable) == 3
    assert all(n["numberType"] == "callingPlan" and n["city"] == "Redmond" for n in usable)
    assert any(n["numberType"] == "directRouting" for n in numbers)
    assert len(numbers) > len(usable)


async def test_items_carry_every_contract_field(sim: Sim) -> None:
    item = (await list_numbers(sim))["value"][0]
    assert set(item) == {
        "id",
        "telephoneNumber",
        "assignmentStatus",
        "assignmentTargetId",
        "assignmentCategory",
        "numberType",
        "capabilities",
        "isoCountryCode",
        "city",
        "activationState",
        "operatorId",
        "portInStatus",
    }
    assert item["telephoneNumber"] == "+" + item["id"]


async def test_a_telephone_number_filter_needs_the_plus_encoded(sim: Sim) -> None:
    tel = (await list_numbers(sim))["value"][0]["telephoneNumber"]
    found = await list_numbers(sim, **{"$filter": f"telephoneNumber eq '{tel}'"})
    assert [n["telephoneNumber"] for n in found["value"]] == [tel]


async def test_user_assigned_numbers_name_their_target(sim: Sim) -> None:
    body = await list_numbers(sim, **{"$filter": "assignmentStatus eq 'userAssigned'"})
    target = body["value"][0]["assignmentTargetId"]
    again = await list_numbers(sim, **{"$filter": f"assignmentTargetId eq '{target}'"})
    assert [n["assignmentTargetId"] for n in again["value"]] == [target]


async def test_pages_follow_the_next_link_until_every_number_is_seen(sim: Sim) -> None:
    everything = (await list_numbers(sim))["value"]
    seen: list[str] = []
    resp = await sim.graph("GET", f"{NUMBERS}/numberAssignments", params={"$top": "2"})
    while True:
        body = await resp.json()
        assert len(body["value"]) <= 2
        seen.extend(n["id"] for n in body["value"])
        link = body.get("@odata.nextLink")
        if link is None:
            break
        assert "$skiptoken=" in link
        assert link.startswith("http")
        resp = await sim.graph("GET", link.split("/graph/v1.0", 1)[1])
    assert seen == [n["id"] for n in everything]
    assert len(seen) > 2


@pytest.mark.parametrize(
    "params",
    [
        {"$top": "0"},
        {"$top": "1001"},
        {"$filter": "city eq 'Redmond'"},
        {"$filter": "assignmentStatus ne 'unassigned'"},
        {"$filter": "isoCountryCode eq 'US' or isoCountryCode eq 'CA'"},
        {"$orderby": "telephoneNumber"},
        {"$skiptoken": "###"},
    ],
)
async def test_unsupported_queries_are_bad_requests(sim: Sim, params: dict[str, str]) -> None:
    resp = await sim.graph("GET", f"{NUMBERS}/numberAssignments", params=params)
    assert (await error_of(resp))[:2] == (400, "Request_BadRequest")


async def test_a_number_is_read_by_its_digits(sim: Sim) -> None:
    item = (await list_numbers(sim))["value"][0]
    resp = await sim.graph("GET", f"{NUMBERS}/numberAssignments/{item['id']}")
    assert await resp.json() == item
    resp = await sim.graph("GET", f"{NUMBERS}/numberAssignments/19995550100")
    assert (await error_of(resp))[:2] == (404, "Request_ResourceNotFound")
