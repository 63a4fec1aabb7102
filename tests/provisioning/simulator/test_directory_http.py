"""Graph users and licenses over HTTP: Entra's limits, consistency, propagation, the pool."""

from __future__ import annotations

from typing import Any

import pytest

from tests.provisioning.simulator.conftest import (
    E5_SKU_ID,
    PHONE_RESOURCE_SKU_ID,
    Sim,
    SimFactory,
    error_of,
    teams_path,
)

DOMAIN = "contoso.onmicrosoft.com"


def new_user(**changes: Any) -> dict[str, Any]:
    body = {
        "accountEnabled": True,
        "displayName": "Contoso Support",
        "mailNickname": "support",
        "userPrincipalName": f"support@{DOMAIN}",
        "passwordProfile": {"password": "x!9Yz", "forceChangePasswordNextSignIn": True},
    }
    body.update(changes)
    return body


async def test_a_created_user_can_be_read_by_id_and_by_upn_after_the_consistency_window(
    sim: Sim,
) -> None:
    resp = await sim.graph("POST", "/users", json=new_user(usageLocation="US"))
    assert resp.status == 201
    created = await resp.json()
    assert created["userPrincipalName"] == f"support@{DOMAIN}"
    assert created["assignedLicenses"] == []

    resp = await sim.graph("GET", f"/users/{created['id']}")
    assert (await error_of(resp))[:2] == (404, "Request_ResourceNotFound")

    sim.advance(sim.config.consistency_window_s)
    by_id = await (await sim.graph("GET", f"/users/{created['id']}")).json()
    by_upn = await (await sim.graph("GET", f"/users/SUPPORT@{DOMAIN}")).json()
    assert by_id == by_upn
    assert set(by_id) == {
        "id",
        "displayName",
        "userPrincipalName",
        "usageLocation",
        "accountEnabled",
        "assignedLicenses",
    }
    assert by_id["usageLocation"] == "US"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"displayName": "x" * 257}, "displayName"),
        ({"displayName": "  "}, "displayName"),
        ({"mailNickname": "m" * 65}, "mailNickname"),
        ({"mailNickname": "has space"}, "mailNickname"),
        ({"userPrincipalName": f"{'a' * 65}@{DOMAIN}"}, "userPrincipalName"),
        ({"userPrincipalName": f"{'a' * 60}@{'b' * 50}.onmicrosoft.com"}, "userPrincipalName"),
        ({"userPrincipalName": f"support.@{DOMAIN}"}, "userPrincipalName"),
        ({"userPrincipalName": f"sup port@{DOMAIN}"}, "userPrincipalName"),
        ({"userPrincipalName": f"support*@{DOMAIN}"}, "userPrincipalName"),
        ({"userPrincipalName": "support"}, "userPrincipalName"),
        ({"userPrincipalName": "support@fabrikam.com"}, "userPrincipalName"),
        ({"usageLocation": "usa"}, "usageLocation"),
        ({"accountEnabled": "yes"}, "accountEnabled"),
        ({"jobTitle": "Bot"}, "jobTitle"),
    ],
)
async def test_entra_limits_are_enforced_naming_the_field(
    sim: Sim, changes: dict[str, Any], field: str
) -> None:
    resp = await sim.graph("POST", "/users", json=new_user(**changes))
    status, code, message = await error_of(resp)
    assert (status, code) == (400, "Request_BadRequest")
    assert f"'{field}'" in message


async def test_names_at_the_limits_are_accepted(sim: Sim) -> None:
    local = "a.b-c_d'e!f#g^h~" + "x" * (64 - 16)
    resp = await sim.graph(
        "POST",
        "/users",
        json=new_user(
            displayName="D" * 256, mailNickname="m" * 64, userPrincipalName=f"{local}@{DOMAIN}"
        ),
    )
    assert resp.status == 201, await resp.text()


async def test_a_duplicate_upn_is_an_object_conflict(sim: Sim) -> None:
    assert (await sim.graph("POST", "/users", json=new_user())).status == 201
    resp = await sim.graph("POST", "/users", json=new_user(userPrincipalName=f"Support@{DOMAIN}"))
    assert (await error_of(resp))[:2] == (409, "Request_ObjectConflict")
    assert (await sim.counters())["accountsCreated"] == 1


async def test_patch_waits_for_propagation_then_applies(sim: Sim) -> None:
    user = await (await sim.graph("POST", "/users", json=new_user())).json()
    resp = await sim.graph("PATCH", f"/users/{user['id']}", json={"usageLocation": "GB"})
    status, code, message = await error_of(resp)
    assert (status, code) == (400, "Request_AccountNotReady")
    assert message.startswith(f"We can't save changes to support@{DOMAIN}.")

    sim.advance(sim.config.propagation_max_s)
    resp = await sim.graph(
        "PATCH", f"/users/{user['id']}", json={"usageLocation": "GB", "displayName": "Renamed"}
    )
    assert resp.status == 204
    read = await (await sim.graph("GET", f"/users/{user['id']}")).json()
    assert (read["usageLocation"], read["displayName"]) == ("GB", "Renamed")


async def test_delete_removes_the_user(sim: Sim) -> None:
    user = await (await sim.graph("POST", "/users", json=new_user())).json()
    sim.advance(60)
    assert (await sim.graph("DELETE", f"/users/{user['id']}")).status == 204
    assert (await sim.graph("GET", f"/users/{user['id']}")).status == 404
    assert (await sim.graph("DELETE", f"/users/{user['id']}")).status == 404
    assert (await sim.counters())["accountsDeleted"] == 1


async def skus(sim: Sim) -> dict[str, dict[str, Any]]:
    body = await (await sim.graph("GET", "/subscribedSkus")).json()
    return {sku["skuPartNumber"]: sku for sku in body["value"]}


async def test_subscribed_skus_show_the_pool(make_sim: SimFactory) -> None:
    sim = await make_sim(phone_resource_units=3, e5_units=4)
    by_part = await skus(sim)
    phone = by_part["PHONESYSTEM_VIRTUALUSER"]
    assert phone["skuId"] == PHONE_RESOURCE_SKU_ID
    assert phone["prepaidUnits"]["enabled"] == 3
    assert phone["consumedUnits"] == 0
    assert phone["capabilityStatus"] == "Enabled"
    assert by_part["ENTERPRISEPREMIUM"]["skuId"] == E5_SKU_ID
    assert by_part["ENTERPRISEPREMIUM"]["prepaidUnits"]["enabled"] == 4


async def propagated_account(sim: Sim, alias: str, usage_location: str | None = "US") -> str:
    object_id = await sim.create_instance(alias)
    sim.advance(sim.config.propagation_max_s)
    if usage_location:
        resp = await sim.graph(
            "PATCH", f"/users/{object_id}", json={"usageLocation": usage_location}
        )
        assert resp.status == 204
    return object_id


def add(sku_id: str) -> dict[str, Any]:
    return {"addLicenses": [{"skuId": sku_id, "disabledPlans": []}], "removeLicenses": []}


async def test_assign_license_before_propagation_is_account_not_ready(sim: Sim) -> None:
    object_id = await sim.create_instance("early")
    resp = await sim.graph(
        "POST", f"/users/{object_id}/assignLicense", json=add(PHONE_RESOURCE_SKU_ID)
    )
    assert (await error_of(resp))[:2] == (400, "Request_AccountNotReady")


async def test_assign_license_without_usage_location_is_refused(sim: Sim) -> None:
    object_id = await propagated_account(sim, "nowhere", usage_location=None)
    resp = await sim.graph(
        "POST", f"/users/{object_id}/assignLicense", json=add(PHONE_RESOURCE_SKU_ID)
    )
    assert await error_of(resp) == (
        400,
        "Request_InvalidUsageLocation",
        "License assignment cannot be done for user with invalid usage location.",
    )


async def test_licenses_run_out_and_come_back(make_sim: SimFactory) -> None:
    sim = await make_sim(phone_resource_units=1)
    first = await propagated_account(sim, "first")
    second = await propagated_account(sim, "second")

    resp = await sim.graph("POST", f"/users/{first}/assignLicense", json=add(PHONE_RESOURCE_SKU_ID))
    assert resp.status == 200
    assert (await resp.json())["assignedLicenses"] == [
        {"skuId": PHONE_RESOURCE_SKU_ID, "disabledPlans": []}
    ]
    assert (await skus(sim))["PHONESYSTEM_VIRTUALUSER"]["consumedUnits"] == 1

    resp = await sim.graph(
        "POST", f"/users/{second}/assignLicense", json=add(PHONE_RESOURCE_SKU_ID)
    )
    assert (await error_of(resp))[:2] == (400, "Request_InsufficientLicenses")

    resp = await sim.graph(
        "POST",
        f"/users/{first}/assignLicense",
        json={"addLicenses": [], "removeLicenses": [PHONE_RESOURCE_SKU_ID]},
    )
    assert resp.status == 200
    resp = await sim.graph(
        "POST", f"/users/{second}/assignLicense", json=add(PHONE_RESOURCE_SKU_ID)
    )
    assert resp.status == 200
    counters = await sim.counters()
    assert (counters["licensesAssigned"], counters["licensesRemoved"]) == (2, 1)


async def test_assigning_a_held_license_again_is_a_no_op(sim: Sim) -> None:
    object_id = await propagated_account(sim, "twice")
    for _ in range(3):
        resp = await sim.graph(
            "POST", f"/users/{object_id}/assignLicense", json=add(PHONE_RESOURCE_SKU_ID)
        )
        assert resp.status == 200
    assert (await skus(sim))["PHONESYSTEM_VIRTUALUSER"]["consumedUnits"] == 1
    assert (await sim.counters())["licensesAssigned"] == 1


async def test_admin_can_add_license_units_at_run_time(make_sim: SimFactory) -> None:
    sim = await make_sim(phone_resource_units=0)
    object_id = await propagated_account(sim, "later")
    resp = await sim.graph(
        "POST", f"/users/{object_id}/assignLicense", json=add(PHONE_RESOURCE_SKU_ID)
    )
    assert (await error_of(resp))[:2] == (400, "Request_InsufficientLicenses")

    resp = await sim.admin(
        "POST", "/licenses", json={"skuPartNumber": "PHONESYSTEM_VIRTUALUSER", "addUnits": 2}
    )
    assert resp.status == 200
    assert (await resp.json())["prepaidUnits"]["enabled"] == 2
    resp = await sim.graph(
        "POST", f"/users/{object_id}/assignLicense", json=add(PHONE_RESOURCE_SKU_ID)
    )
    assert resp.status == 200


@pytest.mark.parametrize(
    "body",
    [
        {"addLicenses": [{"skuId": "not-a-guid"}], "removeLicenses": []},
        {"addLicenses": [{"skuId": "00000000-0000-0000-0000-000000000001"}], "removeLicenses": []},
        {"addLicenses": []},
        {"addLicenses": [], "removeLicenses": [E5_SKU_ID]},
    ],
)
async def test_malformed_or_impossible_license_changes_are_bad_requests(
    sim: Sim, body: dict[str, Any]
) -> None:
    object_id = await propagated_account(sim, "picky")
    resp = await sim.graph("POST", f"/users/{object_id}/assignLicense", json=body)
    assert (await error_of(resp))[:2] == (400, "Request_BadRequest")


async def test_an_application_instance_is_also_a_graph_user_with_the_same_id(sim: Sim) -> None:
    object_id = await sim.create_instance("ivr")
    sim.advance(sim.config.consistency_window_s)
    user = await (await sim.graph("GET", f"/users/{object_id}")).json()
    instance = await (await sim.teams("GET", teams_path("application_instance", object_id))).json()
    assert user["id"] == instance["objectId"] == object_id
    assert user["userPrincipalName"] == instance["userPrincipalName"] == f"ivr@{DOMAIN}"
