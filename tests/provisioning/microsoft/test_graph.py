from __future__ import annotations

import json

import httpx
import pytest

from provisioning.microsoft.errors import (
    CODE_NOT_FOUND,
    ApiTimeoutError,
    UnexpectedResponse,
)
from provisioning.microsoft.graph import (
    AssignmentStatus,
    GraphClient,
    number_filter,
    operation_id_from_location,
)
from tests.provisioning.microsoft.fakes import BASE_URL, Script, graph_error, make_api

NUMBERS = f"{BASE_URL}/admin/teams/telephoneNumberManagement"
SKU_ID = "440eaaa8-b3e0-484b-a8be-62870b9ba70a"


def number(telephone_number: str, status: str = "unassigned") -> dict[str, object]:
    return {
        "id": telephone_number.removeprefix("+"),
        "telephoneNumber": telephone_number,
        "assignmentStatus": status,
        "numberType": "callingPlan",
        "capabilities": ["voiceApplicationAssignment"],
        "isoCountryCode": "US",
        "city": "Redmond",
        "activationState": "activated",
    }


def operation(status: str, *numbers: dict[str, str]) -> httpx.Response:
    return httpx.Response(
        200,
        json={
            "id": "op-1",
            "createdDateTime": "2026-11-26T07:00:00Z",
            "status": status,
            "numbers": list(numbers),
        },
    )


def test_number_filter_joins_clauses_with_and() -> None:
    assert (
        number_filter(assignment_status="unassigned", iso_country_code="US")
        == "assignmentStatus eq 'unassigned' and isoCountryCode eq 'US'"
    )


def test_number_filter_escapes_quotes_so_values_cannot_break_out() -> None:
    assert (
        number_filter(assignment_target_id="x' or assignmentStatus eq 'y")
        == "assignmentTargetId eq 'x'' or assignmentStatus eq ''y'"
    )


def test_number_filter_without_clauses_is_none() -> None:
    assert number_filter() is None


async def test_number_assignments_follow_paging_with_filter_and_top() -> None:
    requests: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if "$skiptoken" not in request.url.params:
            return httpx.Response(
                200,
                json={
                    "value": [number("+14255550100"), number("+14255550101")],
                    "@odata.nextLink": f"{NUMBERS}/numberAssignments?$top=2&$skiptoken=2",
                },
            )
        return httpx.Response(200, json={"value": [number("+14255550102")]})

    graph = GraphClient(make_api(server))
    found = await graph.list_number_assignments(
        filter=number_filter(assignment_status="unassigned"), top=2
    )
    assert [n.telephone_number for n in found] == ["+14255550100", "+14255550101", "+14255550102"]
    assert found[0].assignment_status == AssignmentStatus.UNASSIGNED
    assert found[0].can_serve_voice_applications
    first = requests[0]
    assert first.url.path == "/v1.0/admin/teams/telephoneNumberManagement/numberAssignments"
    assert first.url.params["$filter"] == "assignmentStatus eq 'unassigned'"
    assert first.url.params["$top"] == "2"


@pytest.mark.parametrize("top", [0, 1001])
async def test_top_outside_1_to_1000_is_refused_before_any_request(top: int) -> None:
    script = Script(httpx.Response(200, json={"value": []}))
    with pytest.raises(ValueError, match="between 1 and 1000"):
        await GraphClient(make_api(script)).list_number_assignments(top=top)
    assert script.requests == []


async def test_number_assignment_is_read_by_its_digits() -> None:
    script = Script(httpx.Response(200, json=number("+14255550100")))
    found = await GraphClient(make_api(script)).get_number_assignment("+14255550100")
    assert found.telephone_number == "+14255550100"
    assert script.requests[0].url.path.endswith("/numberAssignments/14255550100")


async def test_assign_number_returns_the_operation_id_from_location() -> None:
    script = Script(httpx.Response(202, headers={"Location": f"{NUMBERS}/operations/op-42"}))
    op_id = await GraphClient(make_api(script)).assign_number(
        "+14255550100", "user-1", "callingPlan", category="primary"
    )
    assert op_id == "op-42"
    [request] = script.requests
    assert request.method == "POST"
    assert request.url.path.endswith("/numberAssignments/assignNumber")
    assert json.loads(request.content) == {
        "telephoneNumber": "+14255550100",
        "assignmentTargetId": "user-1",
        "numberType": "callingPlan",
        "assignmentCategory": "primary",
    }


async def test_assign_number_is_not_resent_after_a_read_timeout() -> None:
    script = Script(httpx.ReadTimeout("no answer"))
    with pytest.raises(ApiTimeoutError):
        await GraphClient(make_api(script)).assign_number("+14255550100", "u", "callingPlan")
    assert len(script.requests) == 1


async def test_unassign_number_without_location_is_unexpected() -> None:
    script = Script(httpx.Response(202))
    with pytest.raises(UnexpectedResponse, match="Location"):
        await GraphClient(make_api(script)).unassign_number("+14255550100", "callingPlan")


def test_location_that_is_not_an_operation_is_refused() -> None:
    with pytest.raises(UnexpectedResponse):
        operation_id_from_location(f"{NUMBERS}/numberAssignments/14255550100")


async def test_a_failed_operation_names_the_failed_numbers_status_detail() -> None:
    script = Script(
        operation(
            "failed",
            {"resourceLocation": "a", "status": "succeeded", "statusDetail": "fine"},
            {"resourceLocation": "b", "status": "failed", "statusDetail": "Account not licensed"},
        )
    )
    failed = await GraphClient(make_api(script)).get_operation("op-1")
    assert failed.finished
    assert failed.failure_detail == "Account not licensed"


async def test_find_user_answers_none_for_404() -> None:
    script = Script(graph_error(404, CODE_NOT_FOUND))
    assert await GraphClient(make_api(script)).find_user("ivr@contoso.com") is None


async def test_usage_location_is_patched_in_camel_case() -> None:
    script = Script(httpx.Response(204))
    await GraphClient(make_api(script)).set_usage_location("user-1", "US")
    [request] = script.requests
    assert request.method == "PATCH"
    assert request.url.path == "/v1.0/users/user-1"
    assert json.loads(request.content) == {"usageLocation": "US"}


async def test_subscribed_skus_report_free_units() -> None:
    body = {
        "value": [
            {
                "id": "x",
                "skuId": SKU_ID,
                "skuPartNumber": "PHONESYSTEM_VIRTUALUSER",
                "capabilityStatus": "Enabled",
                "consumedUnits": 3,
                "prepaidUnits": {"enabled": 5, "suspended": 0, "warning": 0},
            },
            {
                "skuId": "y",
                "skuPartNumber": "ENTERPRISEPREMIUM",
                "consumedUnits": 9,
                "prepaidUnits": {"enabled": 5},
            },
        ]
    }
    skus = await GraphClient(
        make_api(Script(httpx.Response(200, json=body)))
    ).list_subscribed_skus()
    assert [(sku.sku_part_number, sku.free_units) for sku in skus] == [
        ("PHONESYSTEM_VIRTUALUSER", 2),
        ("ENTERPRISEPREMIUM", 0),
    ]


async def test_assign_license_sends_the_graph_body_and_is_retried_on_server_error() -> None:
    user = {"id": "user-1", "assignedLicenses": [{"skuId": SKU_ID, "disabledPlans": []}]}
    script = Script(graph_error(500, "InternalServerError"), httpx.Response(200, json=user))
    result = await GraphClient(make_api(script)).assign_license("user-1", SKU_ID)
    assert result.has_license(SKU_ID.upper())
    assert len(script.requests) == 2
    assert json.loads(script.requests[0].content) == {
        "addLicenses": [{"skuId": SKU_ID, "disabledPlans": []}],
        "removeLicenses": [],
    }
