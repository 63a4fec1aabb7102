from __future__ import annotations

import pickle
from typing import Any

import httpx
import pytest

from provisioning.errors import ProvisioningError
from provisioning.microsoft.errors import (
    CODE_ACCOUNT_NOT_READY,
    CODE_TOO_MANY_REQUESTS,
    ApiConnectionError,
    ApiStatusError,
    ApiTimeoutError,
    AuthenticationError,
    BadRequest,
    Conflict,
    Forbidden,
    MicrosoftApiError,
    NotFound,
    ServerError,
    Throttled,
    Unauthorized,
    error_from_response,
)


def graph_error(
    status: int, code: str, message: str = "it failed", **headers: str
) -> httpx.Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": "2026-11-26T07:00:00",
                "request-id": "req-body",
                "client-request-id": "client-body",
            },
        }
    }
    return httpx.Response(
        status,
        json=body,
        headers=headers,
        request=httpx.Request("POST", "https://graph.example/v1.0/users?$top=1"),
    )


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (429, Throttled),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (418, ApiStatusError),
    ],
)
def test_status_picks_the_error_class(status: int, cls: type[ApiStatusError]) -> None:
    error = error_from_response(graph_error(status, "Whatever"))
    assert type(error) is cls
    assert error.status == status


def test_graph_error_body_gives_code_message_and_ids() -> None:
    error = error_from_response(
        graph_error(400, CODE_ACCOUNT_NOT_READY, "We can't save changes to ivr@contoso.com.")
    )
    assert error.code == CODE_ACCOUNT_NOT_READY
    assert error.message == "We can't save changes to ivr@contoso.com."
    assert error.request_id == "req-body"
    assert error.client_request_id == "client-body"
    assert error.method == "POST"
    assert error.url == "https://graph.example/v1.0/users"
    assert CODE_ACCOUNT_NOT_READY in str(error)
    assert "req-body" in str(error)


def test_ids_fall_back_to_response_headers() -> None:
    response = httpx.Response(
        404,
        json={"error": {"code": "Request_ResourceNotFound", "message": "gone"}},
        headers={"request-id": "req-header", "client-request-id": "client-header"},
    )
    error = error_from_response(response)
    assert (error.request_id, error.client_request_id) == ("req-header", "client-header")


def test_throttled_carries_retry_after() -> None:
    error = error_from_response(graph_error(429, CODE_TOO_MANY_REQUESTS, **{"Retry-After": "0.25"}))
    assert isinstance(error, Throttled)
    assert error.retry_after == 0.25


def test_non_json_body_still_gives_a_status_error() -> None:
    response = httpx.Response(502, text="<html>Bad Gateway</html>")
    error = error_from_response(response)
    assert isinstance(error, ServerError)
    assert error.code is None
    assert "Bad Gateway" in error.message


def test_empty_body_uses_the_reason_phrase() -> None:
    error = error_from_response(httpx.Response(503))
    assert error.code is None
    assert error.message == "Service Unavailable"


@pytest.mark.parametrize("body", [[1, 2], {"error": 5}, {"unrelated": True}, "null"])
def test_unexpected_json_shapes_are_tolerated(body: Any) -> None:
    response = httpx.Response(500, json=body)
    error = error_from_response(response)
    assert isinstance(error, ServerError)
    assert error.code is None


def test_oauth_error_shape_is_read() -> None:
    response = httpx.Response(
        401, json={"error": "invalid_client", "error_description": "AADSTS7000215: bad secret"}
    )
    error = error_from_response(response)
    assert error.code == "invalid_client"
    assert error.message == "AADSTS7000215: bad secret"


def test_every_error_is_a_provisioning_error() -> None:
    assert issubclass(MicrosoftApiError, ProvisioningError)
    assert issubclass(ApiTimeoutError, ApiConnectionError)
    assert issubclass(Throttled, ApiStatusError)


@pytest.mark.parametrize(
    "error",
    [
        error_from_response(graph_error(429, CODE_TOO_MANY_REQUESTS, **{"Retry-After": "3"})),
        ApiTimeoutError(method="GET", url="https://graph.example/v1.0/users"),
        AuthenticationError("refused", tenant_id="t", client_id="c", error="invalid_client"),
    ],
)
def test_errors_survive_pickling_as_durable_step_results(error: MicrosoftApiError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.__dict__ == error.__dict__
