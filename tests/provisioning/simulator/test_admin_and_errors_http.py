"""The `/_sim` endpoint, request ids, and errors that always come in the Graph shape."""

from __future__ import annotations

from tests.provisioning.simulator.conftest import NUMBERS, Sim, error_of, teams_path

COUNTER_NAMES = {
    "ordersCreated",
    "ordersCompleted",
    "ordersCancelled",
    "accountsCreated",
    "accountsDeleted",
    "licensesAssigned",
    "licensesRemoved",
    "numbersBound",
    "numbersUnbound",
    "throttled",
    "faultsInjected",
}


async def test_counters_start_at_zero_and_name_every_side_effect(sim: Sim) -> None:
    assert await sim.counters() == dict.fromkeys(COUNTER_NAMES, 0)


async def test_state_shows_the_whole_tenant(sim: Sim) -> None:
    object_id = await sim.create_instance("visible")
    state = await (await sim.admin("GET", "/state")).json()
    assert {
        "accounts",
        "subscribedSkus",
        "numberAssignments",
        "searchOrders",
        "stock",
        "counters",
        "knobs",
        "operations",
    } <= set(state)
    account = next(a for a in state["accounts"] if a["id"] == object_id)
    assert account["isResourceAccount"] is True
    assert account["propagatedAt"] > state["now"]
    assert len(state["numberAssignments"]) >= 7


async def test_client_request_id_is_echoed_and_request_id_added(sim: Sim) -> None:
    client_request_id = "6c1d4f9e-2b7a-4e8d-9f3c-5a0b1c2d3e4f"
    resp = await sim.graph(
        "GET", "/subscribedSkus", headers={"client-request-id": client_request_id}
    )
    assert resp.headers["client-request-id"] == client_request_id
    assert resp.headers["request-id"]

    resp = await sim.graph(
        "GET",
        "/users/nobody@contoso.onmicrosoft.com",
        headers={"client-request-id": client_request_id},
    )
    inner = (await resp.json())["error"]["innerError"]
    assert inner["client-request-id"] == client_request_id
    assert inner["request-id"] == resp.headers["request-id"]
    assert inner["date"].startswith("2026-11-26T07:00:00")


async def test_unknown_routes_answer_json_not_html(sim: Sim) -> None:
    for resp in (
        await sim.graph("GET", "/groups"),
        await sim.teams("GET", "/Teams.Nothing/v1/here"),
        await sim.client.get("/favicon.ico"),
    ):
        assert resp.content_type == "application/json"
        assert (await error_of(resp))[:2] == (404, "Request_ResourceNotFound")


async def test_a_wrong_method_answers_405_in_the_graph_shape(sim: Sim) -> None:
    resp = await sim.graph("PUT", "/subscribedSkus")
    assert (await error_of(resp))[:2] == (405, "Request_BadRequest")


async def test_bad_json_is_a_bad_request(sim: Sim) -> None:
    for body in (b"{not json", b"[1, 2]", b""):
        resp = await sim.graph(
            "POST", "/users", data=body, headers={"Content-Type": "application/json"}
        )
        assert (await error_of(resp))[:2] == (400, "Request_BadRequest")
    resp = await sim.teams("POST", teams_path("search_orders"), data=b"\xff\xfe")
    assert (await error_of(resp))[:2] == (400, "Request_BadRequest")


async def test_admin_validates_its_own_bodies(sim: Sim) -> None:
    resp = await sim.admin("POST", "/licenses", json={"skuPartNumber": "NOPE", "addUnits": 1})
    status, code, message = await error_of(resp)
    assert (status, code) == (400, "Request_BadRequest")
    assert "PHONESYSTEM_VIRTUALUSER" in message
    resp = await sim.admin(
        "POST",
        "/stock",
        json={
            "countryCode": "FR",
            "numberType": "AutoAttendantToll",
            "areaCode": "1",
            "quantity": 1,
        },
    )
    assert "'FR' is not offered" in (await error_of(resp))[2]
    resp = await sim.admin(
        "POST", "/licenses", json={"skuPartNumber": "ENTERPRISEPREMIUM", "addUnits": -99}
    )
    assert (await error_of(resp))[0] == 400


async def test_a_new_area_code_can_be_stocked(sim: Sim) -> None:
    resp = await sim.admin(
        "POST",
        "/stock",
        json={
            "countryCode": "US",
            "numberType": "CallQueueToll",
            "areaCode": "312",
            "quantity": 3,
            "city": "Chicago",
        },
    )
    assert resp.status == 200
    types = (await (await sim.teams("GET", teams_path("number_types", "US"))).json())["value"]
    queue = next(t for t in types if t["numberType"] == "CallQueueToll")
    assert {"areaCode": "312", "city": "Chicago", "availableQuantity": 3} in queue["areaCodes"]


async def test_operations_location_uses_the_host_the_client_called(sim: Sim) -> None:
    object_id = await sim.ready_instance("loc")
    tel = await sim.unassigned_service_number()
    resp = await sim.graph(
        "POST",
        f"{NUMBERS}/numberAssignments/assignNumber",
        json={"telephoneNumber": tel, "assignmentTargetId": object_id, "numberType": "callingPlan"},
    )
    assert resp.headers["Location"].startswith(f"http://{sim.client.host}:{sim.client.port}/")
