"""Throttling, injected 5xx and timeouts over HTTP: seeded, and changeable at run time."""

from __future__ import annotations

import asyncio

import pytest

from provisioning.simulator.wire import GRAPH_SCOPE
from tests.provisioning.simulator.conftest import Sim, SimFactory, error_of, teams_path

NEW_USER = {
    "accountEnabled": True,
    "displayName": "Lost Answer",
    "mailNickname": "lost",
    "userPrincipalName": "lost@contoso.onmicrosoft.com",
}


async def test_above_the_rate_graph_answers_429_with_retry_after(make_sim: SimFactory) -> None:
    sim = await make_sim(rate_limit_rps=0.01)
    assert (await sim.graph("GET", "/subscribedSkus")).status == 200
    resp = await sim.graph("GET", "/subscribedSkus")
    assert (await error_of(resp))[:2] == (429, "TooManyRequests")
    retry_after = float(resp.headers["Retry-After"])
    assert 50 < retry_after <= 100
    assert (await sim.counters())["throttled"] == 1


async def test_each_api_is_throttled_on_its_own(make_sim: SimFactory) -> None:
    sim = await make_sim(rate_limit_rps=0.01)
    assert (await sim.graph("GET", "/subscribedSkus")).status == 200
    assert (await sim.teams("GET", teams_path("countries"))).status == 200
    assert (await sim.teams("GET", teams_path("countries"))).status == 429


async def test_the_admin_and_token_endpoints_are_never_throttled_or_faulted(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim(rate_limit_rps=0.01, fault_rate_5xx=1.0)
    await sim.token(GRAPH_SCOPE)
    for _ in range(5):
        assert (await sim.admin("GET", "/counters")).status == 200
        assert (await sim.admin("GET", "/state")).status == 200


async def test_rate_limiting_can_be_switched_on_at_run_time(sim: Sim) -> None:
    for _ in range(5):
        assert (await sim.graph("GET", "/subscribedSkus")).status == 200
    resp = await sim.admin("PATCH", "/knobs", json={"rate_limit_rps": 0.01})
    assert (await resp.json())["rate_limit_rps"] == 0.01
    assert (await sim.graph("GET", "/subscribedSkus")).status == 200
    assert (await sim.graph("GET", "/subscribedSkus")).status == 429
    await sim.admin("PATCH", "/knobs", json={"rate_limit_rps": None})
    assert (await sim.graph("GET", "/subscribedSkus")).status == 200


async def test_injected_5xx_change_nothing_and_503_says_when_to_retry(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim(fault_rate_5xx=1.0, time_scale=0.005)
    statuses = set()
    for _ in range(20):
        resp = await sim.graph("POST", "/users", json=NEW_USER)
        status, code, _ = await error_of(resp)
        statuses.add((status, code))
        if status == 503:
            assert resp.headers["Retry-After"] == "0.01"
    assert statuses == {(500, "InternalServerError"), (503, "ServiceUnavailable")}
    counters = await sim.counters()
    assert (counters["faultsInjected"], counters["accountsCreated"]) == (20, 0)


async def status_sequence(sim: Sim, count: int) -> list[int]:
    return [(await sim.graph("GET", "/subscribedSkus")).status for _ in range(count)]


async def test_the_same_seed_and_requests_give_the_same_faults(make_sim: SimFactory) -> None:
    first = await status_sequence(await make_sim(seed=11, fault_rate_5xx=0.5), 30)
    again = await status_sequence(await make_sim(seed=11, fault_rate_5xx=0.5), 30)
    other = await status_sequence(await make_sim(seed=12, fault_rate_5xx=0.5), 30)
    assert first == again
    assert first != other
    assert {200, 500, 503} <= set(first)


async def test_an_injected_timeout_loses_the_answer_but_keeps_the_change(
    make_sim: SimFactory,
) -> None:
    sim = await make_sim(fault_rate_timeout=1.0, timeout_stall_s=30)
    stalled = asyncio.create_task(sim.graph("POST", "/users", json=NEW_USER))
    for _ in range(1000):
        if (await sim.counters())["accountsCreated"]:
            break
        await asyncio.sleep(0.01)
    assert (await sim.counters())["accountsCreated"] == 1
    assert not stalled.done()
    stalled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stalled
    assert (await sim.counters())["faultsInjected"] == 1

    await sim.admin("PATCH", "/knobs", json={"fault_rate_timeout": 0})
    sim.advance(sim.config.consistency_window_s)
    resp = await sim.graph("POST", "/users", json=NEW_USER)
    assert (await error_of(resp))[:2] == (409, "Request_ObjectConflict")


async def test_a_short_stall_still_answers(make_sim: SimFactory) -> None:
    sim = await make_sim(fault_rate_timeout=1.0, timeout_stall_s=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    resp = await sim.graph("GET", "/subscribedSkus")
    assert resp.status == 200
    assert loop.time() - started >= 0.05


async def test_knob_changes_are_validated(sim: Sim) -> None:
    resp = await sim.admin("PATCH", "/knobs", json={"fault_rate_5xx": 2})
    status, code, message = await error_of(resp)
    assert (status, code) == (400, "Request_BadRequest")
    assert "fault_rate_5xx" in message
    resp = await sim.admin("PATCH", "/knobs", json={"rate_limit": 3})
    assert "unknown knob 'rate_limit'" in (await error_of(resp))[2]
    resp = await sim.admin("PATCH", "/knobs", json={"time_scale": 1})
    assert "fixed when the simulator starts" in (await error_of(resp))[2]
    knobs = await (await sim.admin("GET", "/knobs")).json()
    assert knobs["fault_rate_5xx"] == 0


async def test_knob_changes_apply_to_what_happens_next(sim: Sim) -> None:
    await sim.admin("PATCH", "/knobs", json={"propagation_min_s": 0, "propagation_max_s": 0})
    object_id = await sim.create_instance("quick")
    resp = await sim.graph("PATCH", f"/users/{object_id}", json={"usageLocation": "US"})
    assert resp.status == 204
