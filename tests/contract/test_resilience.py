"""Throttling, injected faults and timeouts: what the client repeats, how long it waits."""

from __future__ import annotations

import httpx
import pytest

from provisioning.microsoft.errors import (
    CODE_INTERNAL_SERVER_ERROR,
    CODE_OBJECT_CONFLICT,
    CODE_TOO_MANY_REQUESTS,
    ApiTimeoutError,
    Conflict,
    ServerError,
    Throttled,
    parse_retry_after,
)
from provisioning.microsoft.teams_admin import AUTO_ATTENDANT_APP_ID
from tests.contract.conftest import Contract, OpenContract
from tests.provisioning.simulator.conftest import PHONE_RESOURCE_SKU_ID

# Seeds whose fault draws give the sequence a test needs; each test checks it got it.
SEED_503_503_500 = 4
SEED_500_FIRST = 7


def client_request_ids(requests: list[httpx.Request]) -> set[str]:
    return {request.headers["client-request-id"] for request in requests}


def statuses(answers: list[httpx.Response]) -> list[int]:
    return [answer.status_code for answer in answers]


async def test_a_throttled_call_waits_at_least_its_retry_after_then_succeeds(
    contract: Contract,
) -> None:
    # The rate limiter refills in real seconds, so this test really waits.
    contract.waits.real = True
    await contract.knobs(rate_limit_rps=4)

    for _ in range(50):
        assert await contract.teams.list_countries()
        if contract.traffic.throttle_waits():
            break

    retry_afters = contract.traffic.throttle_waits()
    assert retry_afters, "the rate limit never answered 429"
    assert len(contract.waits.delays) == len(retry_afters)
    for waited, retry_after in zip(contract.waits.delays, retry_afters, strict=True):
        assert waited >= retry_after
    assert (await contract.counters())["throttled"] == len(retry_afters)


async def test_a_throttled_call_keeps_its_client_request_id_across_retries(
    contract: Contract,
) -> None:
    contract.waits.real = True
    await contract.knobs(rate_limit_rps=4)
    for _ in range(50):
        await contract.teams.list_countries()
        if contract.traffic.throttle_waits():
            break

    answers = contract.traffic.api_answers()
    throttled = next(i for i, answer in enumerate(answers) if answer.status_code == 429)
    retried = answers[throttled + 1]
    sent_id = answers[throttled].request.headers["client-request-id"]
    assert retried.status_code == 200
    assert retried.request.headers["client-request-id"] == sent_id
    assert answers[throttled].json()["error"]["innerError"]["client-request-id"] == sent_id
    assert retried.headers["client-request-id"] == sent_id
    assert answers[throttled - 1].request.headers["client-request-id"] != sent_id


async def test_throttling_beyond_the_time_budget_raises_throttled(contract: Contract) -> None:
    # About 50 s between tokens: every retry within the budget is throttled again.
    await contract.knobs(rate_limit_rps=0.02)
    await contract.graph.list_subscribed_skus()
    contract.traffic.clear()

    with pytest.raises(Throttled) as caught:
        await contract.graph.list_subscribed_skus()

    attempts = contract.traffic.api_requests()
    retry_afters = contract.traffic.throttle_waits()
    assert len(retry_afters) == len(attempts)
    assert len(contract.waits.delays) == len(attempts) - 1
    for waited, retry_after in zip(contract.waits.delays, retry_afters[:-1], strict=True):
        assert waited >= retry_after
    budget = contract.policy.max_throttle_wait_s
    assert sum(contract.waits.delays) <= budget
    assert sum(contract.waits.delays) + retry_afters[-1] > budget
    assert caught.value.code == CODE_TOO_MANY_REQUESTS
    assert caught.value.retry_after == retry_afters[-1]
    assert client_request_ids(attempts) == {caught.value.client_request_id}
    assert (await contract.counters())["throttled"] == len(attempts)


async def test_a_retry_after_beyond_the_policy_limit_is_not_waited_for(
    contract: Contract,
) -> None:
    await contract.knobs(rate_limit_rps=0.001)
    await contract.graph.list_subscribed_skus()
    contract.traffic.clear()

    with pytest.raises(Throttled) as caught:
        await contract.graph.list_subscribed_skus()

    assert caught.value.retry_after is not None
    assert caught.value.retry_after > contract.policy.max_retry_after
    assert len(contract.traffic.api_requests()) == 1
    assert contract.waits.delays == []


async def test_a_read_is_retried_after_a_500_until_it_succeeds(
    open_contract: OpenContract,
) -> None:
    contract = await open_contract(seed=SEED_500_FIRST, fault_rate_5xx=1.0)
    contract.waits.on_next_wait(lambda: contract.knobs(fault_rate_5xx=0.0))

    skus = await contract.graph.list_subscribed_skus()

    assert skus
    assert statuses(contract.traffic.api_answers()) == [500, 200]
    assert len(client_request_ids(contract.traffic.api_requests())) == 1
    assert len(contract.waits.delays) == 1
    assert (await contract.counters())["faultsInjected"] == 1


async def test_a_seeded_partial_fault_rate_is_ridden_out_by_reads(contract: Contract) -> None:
    await contract.knobs(fault_rate_5xx=0.3)

    for _ in range(5):
        assert await contract.graph.list_subscribed_skus()
        assert await contract.graph.list_number_assignments(top=3)
        assert await contract.teams.list_countries()

    faults = (await contract.counters())["faultsInjected"]
    assert faults > 0
    failed = [s for s in statuses(contract.traffic.api_answers()) if s >= 500]
    assert len(failed) == faults
    assert len(contract.waits.delays) == faults


async def test_a_create_is_not_resent_after_a_500(open_contract: OpenContract) -> None:
    contract = await open_contract(seed=SEED_500_FIRST, fault_rate_5xx=1.0)

    with pytest.raises(ServerError) as caught:
        await contract.graph.create_user(
            display_name="Una", mail_nickname="una", user_principal_name=contract.upn("una")
        )

    assert (caught.value.status, caught.value.code) == (500, CODE_INTERNAL_SERVER_ERROR)
    assert len(contract.traffic.api_requests()) == 1
    assert contract.waits.delays == []
    assert (await contract.counters())["accountsCreated"] == 0


async def test_a_create_is_resent_after_a_503_which_says_nothing_was_done(
    open_contract: OpenContract,
) -> None:
    contract = await open_contract(seed=SEED_503_503_500, fault_rate_5xx=1.0)

    with pytest.raises(ServerError) as caught:
        await contract.teams.create_application_instance(
            upn=contract.upn("vic"), display_name="Vic", application_id=AUTO_ATTENDANT_APP_ID
        )

    answers = contract.traffic.api_answers()
    assert statuses(answers) == [503, 503, 500], "the seed's fault sequence changed"
    assert caught.value.status == 500
    assert len(client_request_ids(contract.traffic.api_requests())) == 1
    for waited, answer in zip(contract.waits.delays, answers[:2], strict=True):
        retry_after = parse_retry_after(answer.headers)
        assert retry_after is not None
        assert waited >= retry_after
    assert (await contract.counters())["accountsCreated"] == 0


async def test_a_create_that_times_out_is_not_resent_and_its_effect_is_met_later(
    open_contract: OpenContract,
) -> None:
    contract = await open_contract(http_timeout_s=1.0, timeout_stall_s=10.0)
    await contract.knobs(fault_rate_timeout=1.0)

    with pytest.raises(ApiTimeoutError) as caught:
        await contract.teams.create_application_instance(
            upn=contract.upn("wes"), display_name="Wes", application_id=AUTO_ATTENDANT_APP_ID
        )

    assert caught.value.method == "POST"
    assert len(contract.traffic.api_requests()) == 1
    assert contract.waits.delays == []
    await contract.knobs(fault_rate_timeout=0.0)
    contract.advance(contract.config.consistency_window_s)
    found = await contract.teams.find_application_instance(contract.upn("wes"))
    assert found is not None
    with pytest.raises(Conflict) as again:
        await contract.teams.create_application_instance(
            upn=contract.upn("wes"), display_name="Wes", application_id=AUTO_ATTENDANT_APP_ID
        )
    assert again.value.code == CODE_OBJECT_CONFLICT
    assert (await contract.counters())["accountsCreated"] == 1


async def test_a_read_that_times_out_is_retried(open_contract: OpenContract) -> None:
    contract = await open_contract(http_timeout_s=1.0, timeout_stall_s=10.0)
    await contract.knobs(fault_rate_timeout=1.0)
    contract.waits.on_next_wait(lambda: contract.knobs(fault_rate_timeout=0.0))

    countries = await contract.teams.list_countries()

    assert countries
    attempts = contract.traffic.api_requests()
    assert len(attempts) == 2
    assert len(client_request_ids(attempts)) == 1
    assert statuses(contract.traffic.api_answers()) == [200]
    assert len(contract.waits.delays) == 1


async def test_a_license_removal_whose_answer_is_lost_is_not_resent(
    open_contract: OpenContract,
) -> None:
    # Re-sending it would meet its own effect: 400 "User does not have a corresponding
    # license", which reads as a final error although the removal worked.
    contract = await open_contract(http_timeout_s=1.0, timeout_stall_s=10.0)
    account = await contract.ready_account("lic-lost", synced=False)
    await contract.knobs(fault_rate_timeout=1.0)
    contract.waits.on_next_wait(lambda: contract.knobs(fault_rate_timeout=0.0))
    contract.traffic.clear()

    with pytest.raises(ApiTimeoutError):
        await contract.graph.remove_license(account.object_id, PHONE_RESOURCE_SKU_ID)

    assert len(contract.traffic.api_requests()) == 1
    await contract.knobs(fault_rate_timeout=0.0)
    user = await contract.graph.get_user(account.object_id)
    assert not user.has_license(PHONE_RESOURCE_SKU_ID)
    assert (await contract.counters())["licensesRemoved"] == 1
