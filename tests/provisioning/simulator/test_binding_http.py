"""Resource accounts and number binding over HTTP, with the long-running operation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.provisioning.simulator.conftest import (
    AUTO_ATTENDANT_APP_ID,
    NUMBERS,
    Sim,
    error_of,
    teams_path,
)

CALL_QUEUE_APP_ID = "11cd3e2e-fccb-42ad-ad00-878b93575e07"


async def assign(sim: Sim, tel: str, target: str, **changes: Any) -> str:
    body = {"telephoneNumber": tel, "assignmentTargetId": target, "numberType": "callingPlan"}
    body.update(changes)
    resp = await sim.graph("POST", f"{NUMBERS}/numberAssignments/assignNumber", json=body)
    assert resp.status == 202, await resp.text()
    assert await resp.read() == b""
    location = resp.headers["Location"]
    assert location.startswith(
        f"http://{sim.client.host}:{sim.client.port}/graph/v1.0{NUMBERS}/operations/"
    )
    return location.split("/graph/v1.0", 1)[1]


async def operation(sim: Sim, path: str) -> dict[str, Any]:
    resp = await sim.graph("GET", path)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


async def test_an_instance_is_created_read_by_upn_and_given_an_application_id(sim: Sim) -> None:
    resp = await sim.teams(
        "POST",
        teams_path("application_instances"),
        json={
            "userPrincipalName": "ivr@contoso.onmicrosoft.com",
            "displayName": "Contoso IVR",
            "applicationId": AUTO_ATTENDANT_APP_ID,
        },
    )
    assert resp.status == 201
    created = await resp.json()
    assert created == {
        "objectId": created["objectId"],
        "userPrincipalName": "ivr@contoso.onmicrosoft.com",
        "displayName": "Contoso IVR",
        "applicationId": AUTO_ATTENDANT_APP_ID,
        "phoneNumber": None,
    }
    by_upn = teams_path("application_instance", "ivr@contoso.onmicrosoft.com")
    assert (await error_of(await sim.teams("GET", by_upn)))[:2] == (404, "Request_ResourceNotFound")

    sim.advance(sim.config.consistency_window_s)
    assert await (await sim.teams("GET", by_upn)).json() == created

    path = teams_path("application_instance", created["objectId"])
    resp = await sim.teams("PATCH", path, json={"applicationId": CALL_QUEUE_APP_ID})
    assert (await error_of(resp))[:2] == (400, "Request_AccountNotReady")
    resp = await sim.teams("POST", teams_path("application_instance_sync", created["objectId"]))
    assert (await error_of(resp))[:2] == (400, "Request_AccountNotReady")

    sim.advance(sim.config.propagation_max_s)
    assert (await sim.teams("PATCH", path, json={"applicationId": CALL_QUEUE_APP_ID})).status == 204
    assert (await (await sim.teams("GET", path)).json())["applicationId"] == CALL_QUEUE_APP_ID
    assert (await sim.counters())["accountsCreated"] == 1


async def test_an_existing_upn_is_a_conflict(sim: Sim) -> None:
    await sim.create_instance("dup")
    resp = await sim.teams(
        "POST",
        teams_path("application_instances"),
        json={
            "userPrincipalName": "dup@contoso.onmicrosoft.com",
            "displayName": "Again",
            "applicationId": AUTO_ATTENDANT_APP_ID,
        },
    )
    assert (await error_of(resp))[:2] == (409, "Request_ObjectConflict")


async def test_a_plain_user_is_not_an_application_instance(sim: Sim) -> None:
    resp = await sim.graph(
        "GET",
        f"{NUMBERS}/numberAssignments",
        params={"$filter": "assignmentStatus eq 'userAssigned'"},
    )
    person = (await resp.json())["value"][0]["assignmentTargetId"]
    resp = await sim.teams("GET", teams_path("application_instance", person))
    assert (await error_of(resp))[:2] == (404, "Request_ResourceNotFound")


async def test_a_ready_account_gets_its_number_after_the_operation_runs(sim: Sim) -> None:
    object_id = await sim.ready_instance("ready")
    tel = await sim.unassigned_service_number()
    path = await assign(sim, tel, object_id)

    first = await operation(sim, path)
    assert first["status"] == "notStarted"
    assert first["numbers"][0]["resourceLocation"].endswith(f"/numberAssignments/{tel[1:]}")
    sim.advance(sim.config.operation_delay_s / 2)
    assert (await operation(sim, path))["status"] == "running"
    sim.advance(sim.config.operation_delay_s / 2)
    done = await operation(sim, path)
    assert done["status"] == "succeeded"
    assert done["numbers"][0]["status"] == "succeeded"
    assert done["numbers"][0]["statusDetail"] is None

    item = await (await sim.graph("GET", f"{NUMBERS}/numberAssignments/{tel[1:]}")).json()
    assert (item["assignmentStatus"], item["assignmentTargetId"]) == (
        "voiceApplicationAssigned",
        object_id,
    )
    instance = await (await sim.teams("GET", teams_path("application_instance", object_id))).json()
    assert instance["phoneNumber"] == tel
    assert (await sim.counters())["numbersBound"] == 1


async def test_binding_the_same_number_again_is_not_counted_twice(sim: Sim) -> None:
    object_id = await sim.ready_instance("again")
    tel = await sim.unassigned_service_number()
    for _ in range(2):
        path = await assign(sim, tel, object_id)
        sim.advance(sim.config.operation_delay_s)
        assert (await operation(sim, path))["status"] == "succeeded"
    assert (await sim.counters())["numbersBound"] == 1


async def test_an_unlicensed_account_fails_the_operation_saying_so(sim: Sim) -> None:
    object_id = await sim.create_instance("nolicense")
    sim.advance(sim.config.propagation_max_s)
    await sim.graph("PATCH", f"/users/{object_id}", json={"usageLocation": "US"})
    await sim.teams("POST", teams_path("application_instance_sync", object_id))
    sim.advance(sim.config.sync_delay_s)
    path = await assign(sim, await sim.unassigned_service_number(), object_id)
    sim.advance(sim.config.operation_delay_s)
    done = await operation(sim, path)
    assert done["status"] == "failed"
    assert "not licensed" in done["numbers"][0]["statusDetail"]


async def test_an_unsynced_account_fails_the_operation_saying_so(sim: Sim) -> None:
    object_id = await sim.create_instance("nosync")
    sim.advance(sim.config.propagation_max_s)
    await sim.graph("PATCH", f"/users/{object_id}", json={"usageLocation": "US"})
    resp = await sim.graph(
        "POST",
        f"/users/{object_id}/assignLicense",
        json={
            "addLicenses": [{"skuId": "440eaaa8-b3e0-484b-a8be-62870b9ba70a"}],
            "removeLicenses": [],
        },
    )
    assert resp.status == 200
    path = await assign(sim, await sim.unassigned_service_number(), object_id)
    sim.advance(sim.config.operation_delay_s)
    done = await operation(sim, path)
    assert done["status"] == "failed"
    assert "not synced" in done["numbers"][0]["statusDetail"]
    assert (await sim.counters())["numbersBound"] == 0


async def test_a_direct_routing_number_cannot_be_bound_as_a_calling_plan_number(sim: Sim) -> None:
    object_id = await sim.ready_instance("dr")
    resp = await sim.graph(
        "GET", f"{NUMBERS}/numberAssignments", params={"$filter": "numberType eq 'directRouting'"}
    )
    tel = (await resp.json())["value"][0]["telephoneNumber"]
    for number_type in ("callingPlan", "directRouting"):
        path = await assign(sim, tel, object_id, numberType=number_type)
        sim.advance(sim.config.operation_delay_s)
        assert (await operation(sim, path))["status"] == "failed"


async def test_unassign_returns_the_number_to_the_pool(sim: Sim) -> None:
    object_id = await sim.ready_instance("unbind")
    tel = await sim.unassigned_service_number()
    await assign(sim, tel, object_id)
    sim.advance(sim.config.operation_delay_s)
    resp = await sim.graph(
        "POST",
        f"{NUMBERS}/numberAssignments/unassignNumber",
        json={"telephoneNumber": tel, "numberType": "callingPlan"},
    )
    assert resp.status == 202
    path = resp.headers["Location"].split("/graph/v1.0", 1)[1]
    sim.advance(sim.config.operation_delay_s)
    assert (await operation(sim, path))["status"] == "succeeded"
    item = await (await sim.graph("GET", f"{NUMBERS}/numberAssignments/{tel[1:]}")).json()
    assert (item["assignmentStatus"], item["assignmentTargetId"]) == ("unassigned", None)
    assert (await sim.counters())["numbersUnbound"] == 1


@pytest.mark.parametrize(
    "body",
    [
        {
            "telephoneNumber": "4255550100",
            "assignmentTargetId": AUTO_ATTENDANT_APP_ID,
            "numberType": "callingPlan",
        },
        {
            "telephoneNumber": "+14255550100",
            "assignmentTargetId": "support",
            "numberType": "callingPlan",
        },
        {
            "telephoneNumber": "+14255550100",
            "assignmentTargetId": AUTO_ATTENDANT_APP_ID,
            "numberType": "AutoAttendantToll",
        },
        {"telephoneNumber": "+14255550100", "numberType": "callingPlan"},
        {
            "telephoneNumber": "+14255550100",
            "assignmentTargetId": AUTO_ATTENDANT_APP_ID,
            "numberType": "callingPlan",
            "assignmentCategory": "main",
        },
    ],
)
async def test_a_malformed_assignment_is_refused_at_once(sim: Sim, body: dict[str, Any]) -> None:
    resp = await sim.graph("POST", f"{NUMBERS}/numberAssignments/assignNumber", json=body)
    assert (await error_of(resp))[:2] == (400, "Request_BadRequest")


async def test_an_unknown_operation_is_not_found(sim: Sim) -> None:
    resp = await sim.graph("GET", f"{NUMBERS}/operations/0d7e3b9a-0000-4000-8000-000000000000")
    assert (await error_of(resp))[:2] == (404, "Request_ResourceNotFound")
