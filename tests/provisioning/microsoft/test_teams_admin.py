from __future__ import annotations

import json
from dataclasses import fields

import httpx
import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from provisioning.microsoft.base import expand_path
from provisioning.microsoft.errors import (
    CODE_NOT_FOUND,
    CODE_OBJECT_CONFLICT,
    ApiTimeoutError,
    Conflict,
)
from provisioning.microsoft.teams_admin import (
    AUTO_ATTENDANT_APP_ID,
    ROUTES,
    SearchOrderErrorCode,
    SearchOrderStatus,
    TeamsAdminClient,
)
from tests.provisioning.microsoft.fakes import BASE_URL, Script, graph_error, make_api


def order(order_id: str, name: str, created_at: str, status: str = "Reserved") -> dict[str, object]:
    return {
        "id": order_id,
        "name": name,
        "description": "PhoneDesk PD-7K3Q",
        "countryCode": "US",
        "numberType": "AutoAttendantToll",
        "areaCode": "425",
        "quantity": 1,
        "status": status,
        "errorCode": "NoError",
        "telephoneNumbers": [{"telephoneNumber": "+14255550100", "location": "Redmond"}],
        "createdAt": created_at,
        "reservationExpiryDate": "2026-11-26T07:16:00Z",
    }


async def test_routes_are_aiohttp_routes_whose_placeholders_round_trip(
    aiohttp_client: AiohttpClient,
) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.json_response(dict(request.match_info))

    app = web.Application()
    templates = [
        getattr(ROUTES, field.name) for field in fields(ROUTES) if not field.name.endswith("_param")
    ]
    for template in templates:
        app.router.add_get(template, echo)
    client = await aiohttp_client(app)

    values = {
        "country": "US",
        "order_id": "order 1/2",
        "instance": "o'brien#1@contoso.onmicrosoft.com",
        "instance_id": "6f0c1c1e-0000-4000-8000-000000000001",
    }
    for template in templates:
        names = {name for name in values if "{" + name + "}" in template}
        expected = {name: values[name] for name in names}
        response = await client.get(expand_path(template, **expected))
        assert response.status == 200, template
        assert await response.json() == expected


async def test_search_order_is_created_with_the_contract_field_names() -> None:
    script = Script(httpx.Response(201, json={"orderId": "order-1"}))
    order_id = await TeamsAdminClient(make_api(script)).create_search_order(
        name="phonedesk-PD-7K3Q",
        description="PhoneDesk PD-7K3Q",
        country_code="US",
        number_type="AutoAttendantToll",
        quantity=1,
        area_code="425",
    )
    assert order_id == "order-1"
    [request] = script.requests
    assert str(request.url) == f"{BASE_URL}/Teams.TelephoneNumberManagement/v1/searchOrders"
    assert json.loads(request.content) == {
        "name": "phonedesk-PD-7K3Q",
        "description": "PhoneDesk PD-7K3Q",
        "countryCode": "US",
        "numberType": "AutoAttendantToll",
        "quantity": 1,
        "areaCode": "425",
    }


async def test_search_order_takes_at_most_one_way_to_narrow_the_search() -> None:
    script = Script(httpx.Response(201, json={"orderId": "order-1"}))
    with pytest.raises(ValueError, match="at most one"):
        await TeamsAdminClient(make_api(script)).create_search_order(
            name="n",
            description="d",
            country_code="US",
            number_type="AutoAttendantToll",
            quantity=1,
            area_code="425",
            number_prefix="1425555",
        )
    assert script.requests == []


async def test_search_order_creation_is_not_resent_after_a_read_timeout() -> None:
    script = Script(httpx.ReadTimeout("no answer"))
    with pytest.raises(ApiTimeoutError):
        await TeamsAdminClient(make_api(script)).create_search_order(
            name="n",
            description="d",
            country_code="US",
            number_type="AutoAttendantToll",
            quantity=1,
        )
    assert len(script.requests) == 1


async def test_search_order_is_found_by_exact_name_newest_first() -> None:
    body = {
        "value": [
            order("old", "phonedesk-PD-1", "2026-11-26T06:00:00Z", status="Expired"),
            order("new", "phonedesk-PD-1", "2026-11-26T07:00:00Z"),
            order("other", "phonedesk-PD-10", "2026-11-26T08:00:00Z"),
        ]
    }
    script = Script(httpx.Response(200, json=body))
    found = await TeamsAdminClient(make_api(script)).find_search_order_by_name("phonedesk-PD-1")
    assert found is not None
    assert found.id == "new"
    assert found.status == SearchOrderStatus.RESERVED
    assert found.error_code == SearchOrderErrorCode.NO_ERROR
    assert found.telephone_numbers[0].telephone_number == "+14255550100"
    assert found.reservation_expiry_date is not None
    assert script.requests[0].url.params["name"] == "phonedesk-PD-1"


async def test_missing_search_order_name_is_none() -> None:
    script = Script(httpx.Response(200, json={"value": []}))
    assert await TeamsAdminClient(make_api(script)).find_search_order_by_name("nope") is None


async def test_completing_an_order_is_retried_because_it_is_idempotent() -> None:
    script = Script(graph_error(503, "ServiceUnavailable"), httpx.Response(204))
    await TeamsAdminClient(make_api(script)).complete_search_order("order-1")
    assert [r.url.path for r in script.requests] == [
        "/v1.0/Teams.TelephoneNumberManagement/v1/searchOrders/order-1/complete"
    ] * 2


async def test_number_types_come_with_their_area_codes() -> None:
    body = {
        "value": [
            {
                "numberType": "AutoAttendantToll",
                "displayName": "Auto attendant (toll)",
                "isTollFree": False,
                "areaCodes": [{"areaCode": "425", "city": "Redmond", "availableQuantity": 7}],
            }
        ]
    }
    script = Script(httpx.Response(200, json=body))
    [offer] = await TeamsAdminClient(make_api(script)).list_number_types("US")
    assert offer.area_codes[0].available_quantity == 7
    assert script.requests[0].url.path.endswith("/countries/US/numberTypes")


async def test_application_instance_is_created_with_the_contract_field_names() -> None:
    created = {
        "objectId": "obj-1",
        "userPrincipalName": "ivr@contoso.onmicrosoft.com",
        "displayName": "Contoso Support",
        "applicationId": AUTO_ATTENDANT_APP_ID,
        "phoneNumber": None,
    }
    script = Script(httpx.Response(201, json=created))
    instance = await TeamsAdminClient(make_api(script)).create_application_instance(
        upn="ivr@contoso.onmicrosoft.com",
        display_name="Contoso Support",
        application_id=AUTO_ATTENDANT_APP_ID,
    )
    assert instance.object_id == "obj-1"
    assert json.loads(script.requests[0].content) == {
        "userPrincipalName": "ivr@contoso.onmicrosoft.com",
        "displayName": "Contoso Support",
        "applicationId": AUTO_ATTENDANT_APP_ID,
    }


async def test_taken_upn_is_a_conflict() -> None:
    script = Script(graph_error(409, CODE_OBJECT_CONFLICT))
    with pytest.raises(Conflict):
        await TeamsAdminClient(make_api(script)).create_application_instance(
            upn="ivr@contoso.onmicrosoft.com", display_name="x", application_id="y"
        )
    assert len(script.requests) == 1


async def test_missing_application_instance_is_none() -> None:
    script = Script(graph_error(404, CODE_NOT_FOUND))
    assert await TeamsAdminClient(make_api(script)).find_application_instance("x@y.z") is None


async def test_application_id_is_patched_and_sync_is_posted() -> None:
    script = Script(httpx.Response(204))
    teams = TeamsAdminClient(make_api(script))
    await teams.set_application_id("obj-1", AUTO_ATTENDANT_APP_ID)
    await teams.sync_application_instance("obj-1")
    patch, sync = script.requests
    assert (patch.method, patch.url.path) == (
        "PATCH",
        "/v1.0/Teams.VoiceApps/v1/applicationInstances/obj-1",
    )
    assert json.loads(patch.content) == {"applicationId": AUTO_ATTENDANT_APP_ID}
    assert (sync.method, sync.url.path) == (
        "POST",
        "/v1.0/Teams.VoiceApps/v1/applicationInstances/obj-1/sync",
    )
