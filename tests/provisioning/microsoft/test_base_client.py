from __future__ import annotations

import uuid

import httpx
import pytest
from pydantic import BaseModel

from provisioning.microsoft.base import expand_path, parse_model
from provisioning.microsoft.errors import (
    CODE_CONCURRENCY_VIOLATION,
    CODE_NOT_FOUND,
    CODE_OBJECT_CONFLICT,
    CODE_TOO_MANY_REQUESTS,
    ApiConnectionError,
    ApiTimeoutError,
    Conflict,
    NotFound,
    ServerError,
    Throttled,
    UnexpectedResponse,
)
from provisioning.microsoft.retry import RetryPolicy
from tests.provisioning.microsoft.fakes import (
    BASE_URL,
    SCOPE,
    FakeTime,
    Script,
    StaticTokens,
    graph_error,
    make_api,
)

OK = httpx.Response(200, json={"ok": True})


async def test_request_carries_bearer_token_for_the_api_scope_and_request_ids() -> None:
    script = Script(OK)
    tokens = StaticTokens("abc")
    await make_api(script, tokens=tokens).get_json("/users/1")
    [request] = script.requests
    assert str(request.url) == f"{BASE_URL}/users/1"
    assert request.headers["Authorization"] == "Bearer abc"
    assert request.headers["return-client-request-id"] == "true"
    uuid.UUID(request.headers["client-request-id"])
    assert tokens.scopes == [SCOPE]


async def test_one_client_request_id_is_reused_across_retries() -> None:
    script = Script(
        graph_error(503, "ServiceUnavailable"), graph_error(503, "ServiceUnavailable"), OK
    )
    await make_api(script).get_json("/users/1")
    ids = {request.headers["client-request-id"] for request in script.requests}
    assert len(script.requests) == 3
    assert len(ids) == 1


async def test_separate_calls_get_separate_client_request_ids() -> None:
    script = Script(OK)
    api = make_api(script)
    await api.get_json("/users/1")
    await api.get_json("/users/1")
    assert len({request.headers["client-request-id"] for request in script.requests}) == 2


async def test_retry_after_is_honoured() -> None:
    time = FakeTime()
    script = Script(graph_error(429, CODE_TOO_MANY_REQUESTS, **{"Retry-After": "2"}), OK)
    assert await make_api(script, time=time).get_json("/users/1") == {"ok": True}
    [delay] = time.sleeps
    assert delay >= 2.0


async def test_throttling_is_retried_until_the_throttle_budget_is_spent() -> None:
    time = FakeTime()
    script = Script(graph_error(429, CODE_TOO_MANY_REQUESTS, **{"Retry-After": "0.25"}))
    policy = RetryPolicy(max_attempts=2, max_throttle_wait_s=3.0)
    api = make_api(script, time=time, policy=policy)
    with pytest.raises(Throttled) as caught:
        await api.get_json("/users/1")
    assert caught.value.retry_after == 0.25
    # Far more attempts than max_attempts: each 429 said "not now", not "this failed".
    assert len(script.requests) > 2 * policy.max_attempts
    assert len(time.sleeps) == len(script.requests) - 1
    assert all(delay >= 0.25 for delay in time.sleeps)
    assert sum(time.sleeps) <= 3.0
    # It stops only when one more Retry-After would go past the budget.
    assert sum(time.sleeps) > 3.0 - 0.25 * (1 + policy.jitter)


async def test_a_long_throttled_spell_ends_in_success_when_the_service_lets_it_through() -> None:
    time = FakeTime()
    throttled = graph_error(429, CODE_TOO_MANY_REQUESTS, **{"Retry-After": "0.05"})
    script = Script(*[throttled] * 40, OK)
    api = make_api(script, time=time, policy=RetryPolicy(max_attempts=3))
    assert await api.get_json("/users/1") == {"ok": True}
    assert len(script.requests) == 41


async def test_throttling_does_not_use_up_the_attempts_left_for_other_failures() -> None:
    throttled = graph_error(429, CODE_TOO_MANY_REQUESTS, **{"Retry-After": "0.1"})
    server_error = graph_error(500, "InternalServerError")
    script = Script(throttled, throttled, throttled, server_error, OK)
    api = make_api(script, policy=RetryPolicy(max_attempts=2))
    assert await api.get_json("/users/1") == {"ok": True}

    script = Script(server_error, throttled, server_error, OK)
    with pytest.raises(ServerError):
        await make_api(script, policy=RetryPolicy(max_attempts=2)).get_json("/users/1")
    assert len(script.requests) == 3


async def test_a_failure_after_throttling_backs_off_as_a_first_failure() -> None:
    time = FakeTime()
    throttled = graph_error(429, CODE_TOO_MANY_REQUESTS, **{"Retry-After": "0.1"})
    script = Script(*[throttled] * 10, graph_error(500, "InternalServerError"), OK)
    policy = RetryPolicy(base_delay=1.0, jitter=0.0)
    assert await make_api(script, time=time, policy=policy).get_json("/users/1") == {"ok": True}
    assert time.sleeps == [0.1] * 10 + [1.0]


async def test_a_service_unavailable_without_retry_after_backs_off_within_the_budget() -> None:
    time = FakeTime()
    script = Script(graph_error(503, "ServiceUnavailable"))
    policy = RetryPolicy(base_delay=1.0, jitter=0.0, max_throttle_wait_s=15.0)
    with pytest.raises(ServerError):
        await make_api(script, time=time, policy=policy).get_json("/users/1")
    assert time.sleeps == [1.0, 2.0, 4.0, 8.0]


async def test_retry_after_beyond_the_limit_is_raised_at_once() -> None:
    time = FakeTime()
    script = Script(graph_error(429, CODE_TOO_MANY_REQUESTS, **{"Retry-After": "600"}))
    api = make_api(script, time=time, policy=RetryPolicy(max_retry_after=120))
    with pytest.raises(Throttled) as caught:
        await api.get_json("/users/1")
    assert caught.value.retry_after == 600
    assert len(script.requests) == 1
    assert time.sleeps == []


async def test_post_is_not_retried_on_server_error() -> None:
    script = Script(graph_error(500, "InternalServerError"), OK)
    with pytest.raises(ServerError):
        await make_api(script).post_json("/users", {"displayName": "x"})
    assert len(script.requests) == 1


async def test_get_is_retried_on_server_error() -> None:
    script = Script(graph_error(500, "InternalServerError"), OK)
    assert await make_api(script).get_json("/users/1") == {"ok": True}
    assert len(script.requests) == 2


async def test_post_marked_idempotent_is_retried_on_server_error() -> None:
    script = Script(graph_error(502, "BadGateway"), OK)
    await make_api(script).post_json("/users/1/assignLicense", {}, idempotent=True)
    assert len(script.requests) == 2


async def test_post_is_not_retried_on_read_timeout() -> None:
    script = Script(httpx.ReadTimeout("no answer"), OK)
    with pytest.raises(ApiTimeoutError) as caught:
        await make_api(script).post_json("/users", {"displayName": "x"})
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)
    assert len(script.requests) == 1


async def test_get_is_retried_on_read_timeout() -> None:
    script = Script(httpx.ReadTimeout("no answer"), OK)
    assert await make_api(script).get_json("/users/1") == {"ok": True}
    assert len(script.requests) == 2


async def test_post_is_retried_on_throttling() -> None:
    throttled = graph_error(429, CODE_TOO_MANY_REQUESTS, **{"Retry-After": "1"})
    script = Script(*[throttled] * 10, OK)
    await make_api(script, policy=RetryPolicy(max_attempts=2)).post_json(
        "/users", {"displayName": "x"}
    )
    assert len(script.requests) == 11


async def test_post_is_retried_on_concurrency_violation_but_not_object_conflict() -> None:
    script = Script(graph_error(409, CODE_CONCURRENCY_VIOLATION), OK)
    await make_api(script).post_json("/users", {})
    assert len(script.requests) == 2

    script = Script(graph_error(409, CODE_OBJECT_CONFLICT), OK)
    with pytest.raises(Conflict) as caught:
        await make_api(script).post_json("/users", {})
    assert caught.value.code == CODE_OBJECT_CONFLICT
    assert len(script.requests) == 1


async def test_connect_error_is_retried_then_raised_with_its_cause() -> None:
    time = FakeTime()
    script = Script(httpx.ConnectError("connection refused"))
    api = make_api(script, time=time, policy=RetryPolicy(max_attempts=3))
    with pytest.raises(ApiConnectionError) as caught:
        await api.post_json("/users", {})
    assert not isinstance(caught.value, ApiTimeoutError)
    assert isinstance(caught.value.__cause__, httpx.ConnectError)
    assert len(script.requests) == 3
    assert len(time.sleeps) == 2


async def test_backoff_grows_between_attempts() -> None:
    time = FakeTime()
    script = Script(graph_error(502, "BadGateway"))
    policy = RetryPolicy(max_attempts=5, base_delay=1.0, jitter=0.0)
    with pytest.raises(ServerError):
        await make_api(script, time=time, policy=policy).get_json("/users/1")
    assert time.sleeps == [1.0, 2.0, 4.0, 8.0]


async def test_not_found_is_raised_without_retrying() -> None:
    script = Script(graph_error(404, CODE_NOT_FOUND, **{"request-id": "r-1"}))
    with pytest.raises(NotFound) as caught:
        await make_api(script).get_json("/users/1")
    assert caught.value.request_id == "r-1"
    assert len(script.requests) == 1


async def test_token_fetch_failure_is_retried_before_anything_is_sent() -> None:
    class FlakyTokens(StaticTokens):
        def __init__(self) -> None:
            super().__init__()
            self.failures = 1

        async def get_token(self, scope: str) -> str:
            if self.failures:
                self.failures -= 1
                raise ApiConnectionError("token endpoint unreachable")
            return await super().get_token(scope)

    script = Script(OK)
    await make_api(script, tokens=FlakyTokens()).post_json("/users", {})
    assert len(script.requests) == 1


async def test_unexpected_success_status_is_reported() -> None:
    script = Script(httpx.Response(200, json={}))
    with pytest.raises(UnexpectedResponse, match="expected 202"):
        await make_api(script).request("POST", "/x", expected={202})


async def test_non_object_body_is_unexpected() -> None:
    script = Script(httpx.Response(200, text="<html>proxy login</html>"))
    with pytest.raises(UnexpectedResponse, match="not a JSON object"):
        await make_api(script).get_json("/users/1")


class Thing(BaseModel):
    id: str
    size: int


def test_body_not_matching_the_model_is_unexpected() -> None:
    response = httpx.Response(
        200, json={"id": "1", "size": "big"}, request=httpx.Request("GET", f"{BASE_URL}/things/1")
    )
    with pytest.raises(UnexpectedResponse, match=r"GET /v1.0/things/1 .* not a Thing: size"):
        parse_model(response, Thing)


async def test_paging_follows_next_links() -> None:
    requests: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        token = request.url.params.get("$skiptoken")
        if token is None:
            return httpx.Response(
                200,
                json={"value": [1, 2], "@odata.nextLink": f"{BASE_URL}/items?$top=2&$skiptoken=p2"},
            )
        if token == "p2":
            return httpx.Response(
                200,
                json={"value": [3, 4], "@odata.nextLink": f"{BASE_URL}/items?$top=2&$skiptoken=p3"},
            )
        return httpx.Response(200, json={"value": [5]})

    pages = [page async for page in make_api(server).iter_pages("/items", {"$top": 2})]
    assert [page["value"] for page in pages] == [[1, 2], [3, 4], [5]]
    assert [request.url.params.get("$top") for request in requests] == ["2", "2", "2"]
    assert all(r.headers["Authorization"] == "Bearer test-token" for r in requests)


async def test_next_link_to_another_host_is_not_followed() -> None:
    script = Script(
        httpx.Response(
            200, json={"value": [1], "@odata.nextLink": "https://evil.test/v1.0/items?x=1"}
        )
    )
    api = make_api(script)
    with pytest.raises(UnexpectedResponse, match="outside"):
        _ = [page async for page in api.iter_pages("/items")]
    assert len(script.requests) == 1


def test_expand_path_encodes_each_value_as_one_segment() -> None:
    path = expand_path("/users/{user_id}/assignLicense", user_id="a/b#c d@contoso.com")
    assert path == "/users/a%2Fb%23c%20d@contoso.com/assignLicense"
