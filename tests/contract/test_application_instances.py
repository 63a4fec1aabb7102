"""Teams admin application instances (resource accounts)."""

from __future__ import annotations

import pytest

from provisioning.microsoft.errors import (
    CODE_ACCOUNT_NOT_READY,
    CODE_OBJECT_CONFLICT,
    BadRequest,
    Conflict,
    NotFound,
)
from provisioning.microsoft.graph import OperationStatus
from provisioning.microsoft.teams_admin import AUTO_ATTENDANT_APP_ID, CALL_QUEUE_APP_ID
from tests.contract.conftest import POLL_S, Contract, OperationFailed, wait_for_operation


async def test_create_answers_the_instance_which_is_also_a_disabled_graph_user(
    contract: Contract,
) -> None:
    created = await contract.teams.create_application_instance(
        upn=contract.upn("aa-main"), display_name="Main Line", application_id=AUTO_ATTENDANT_APP_ID
    )

    assert created.object_id
    assert created.user_principal_name == contract.upn("aa-main")
    assert created.display_name == "Main Line"
    assert created.application_id == AUTO_ATTENDANT_APP_ID
    assert created.phone_number is None
    contract.advance(contract.config.consistency_window_s)
    user = await contract.graph.get_user(created.object_id)
    assert user.account_enabled is False
    assert (await contract.counters())["accountsCreated"] == 1


async def test_get_by_object_id_and_by_upn(contract: Contract) -> None:
    object_id = await contract.new_account("aa-get")

    by_id = await contract.teams.get_application_instance(object_id)
    by_upn = await contract.teams.get_application_instance(contract.upn("aa-get"))

    assert by_id == by_upn
    assert by_id.object_id == object_id


async def test_find_is_none_for_an_unknown_instance(contract: Contract) -> None:
    assert await contract.teams.find_application_instance(contract.upn("aa-none")) is None


async def test_an_ordinary_user_is_not_an_application_instance(contract: Contract) -> None:
    assert await contract.teams.find_application_instance(contract.upn("AdeleV")) is None


async def test_set_application_id_changes_the_association(contract: Contract) -> None:
    object_id = await contract.new_account("aa-assoc")
    contract.advance(contract.config.propagation_max_s)

    await contract.teams.set_application_id(object_id, CALL_QUEUE_APP_ID)

    instance = await contract.teams.get_application_instance(object_id)
    assert instance.application_id == CALL_QUEUE_APP_ID


async def test_a_repeated_sync_keeps_the_account_synced(contract: Contract) -> None:
    account = await contract.ready_account("aa-sync")
    number = await contract.free_service_number()

    await contract.teams.sync_application_instance(account.object_id)

    operation_id = await contract.graph.assign_number(
        number.telephone_number, account.object_id, "callingPlan"
    )
    done = await wait_for_operation(contract, operation_id, poll_interval=POLL_S)
    assert done.status == OperationStatus.SUCCEEDED


async def test_a_changed_application_id_needs_a_new_sync_before_binding(
    contract: Contract,
) -> None:
    account = await contract.ready_account("aa-moved")
    number = await contract.free_service_number()
    await contract.teams.set_application_id(account.object_id, CALL_QUEUE_APP_ID)

    early = await contract.graph.assign_number(
        number.telephone_number, account.object_id, "callingPlan"
    )
    with pytest.raises(OperationFailed) as caught:
        await wait_for_operation(contract, early, poll_interval=POLL_S)
    assert caught.value.status_detail is not None
    assert "not synced" in caught.value.status_detail

    await contract.teams.sync_application_instance(account.object_id)
    contract.advance(contract.config.sync_delay_s)
    again = await contract.graph.assign_number(
        number.telephone_number, account.object_id, "callingPlan"
    )
    done = await wait_for_operation(contract, again, poll_interval=POLL_S)
    assert done.status == OperationStatus.SUCCEEDED


# -- failure modes -------------------------------------------------------------------------


async def test_a_new_instance_is_not_found_in_either_api_until_consistent(
    contract: Contract,
) -> None:
    created = await contract.teams.create_application_instance(
        upn=contract.upn("aa-new"), display_name="New Line", application_id=AUTO_ATTENDANT_APP_ID
    )

    with pytest.raises(NotFound):
        await contract.teams.get_application_instance(created.object_id)
    assert await contract.teams.find_application_instance(contract.upn("aa-new")) is None
    assert await contract.graph.find_user(created.object_id) is None

    contract.advance(contract.config.consistency_window_s)
    found = await contract.teams.find_application_instance(contract.upn("aa-new"))
    assert found is not None
    assert found.object_id == created.object_id
    assert await contract.graph.find_user(created.object_id) is not None


async def test_association_and_sync_before_propagation_are_account_not_ready(
    contract: Contract,
) -> None:
    object_id = await contract.new_account("aa-early")

    with pytest.raises(BadRequest) as on_patch:
        await contract.teams.set_application_id(object_id, CALL_QUEUE_APP_ID)
    with pytest.raises(BadRequest) as on_sync:
        await contract.teams.sync_application_instance(object_id)

    for caught in (on_patch, on_sync):
        assert caught.value.code == CODE_ACCOUNT_NOT_READY
        assert f"We can't save changes to {contract.upn('aa-early')}" in caught.value.message
    contract.advance(contract.config.propagation_max_s)
    await contract.teams.sync_application_instance(object_id)


async def test_an_existing_upn_is_an_object_conflict(contract: Contract) -> None:
    await contract.new_account("aa-taken")

    with pytest.raises(Conflict) as caught:
        await contract.teams.create_application_instance(
            upn=contract.upn("aa-taken"),
            display_name="Someone Else",
            application_id=AUTO_ATTENDANT_APP_ID,
        )

    assert caught.value.status == 409
    assert caught.value.code == CODE_OBJECT_CONFLICT
    assert len(contract.traffic.api_requests()) == 2, "an object conflict is not retried"
    assert (await contract.counters())["accountsCreated"] == 1


async def test_a_upn_beyond_entra_limits_is_bad_request_naming_the_field(
    contract: Contract,
) -> None:
    with pytest.raises(BadRequest) as caught:
        await contract.teams.create_application_instance(
            upn=contract.upn("a" * 65), display_name="Long", application_id=AUTO_ATTENDANT_APP_ID
        )

    assert "'userPrincipalName'" in caught.value.message
    assert (await contract.counters())["accountsCreated"] == 0


async def test_a_upn_with_every_allowed_punctuation_mark_is_found_by_upn(
    contract: Contract,
) -> None:
    upn = contract.upn("o'brien#1!^~_-x.y")
    created = await contract.teams.create_application_instance(
        upn=upn, display_name="O'Brien", application_id=AUTO_ATTENDANT_APP_ID
    )
    contract.advance(contract.config.consistency_window_s)

    by_upn = await contract.teams.get_application_instance(upn)
    user = await contract.graph.get_user(upn)

    assert by_upn.object_id == created.object_id
    assert user.user_principal_name == upn
