"""Graph users and licenses: every call, and the directory's failure modes."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from provisioning.microsoft.errors import (
    CODE_ACCOUNT_NOT_READY,
    CODE_BAD_REQUEST,
    CODE_INSUFFICIENT_LICENSES,
    CODE_INVALID_USAGE_LOCATION,
    CODE_NOT_FOUND,
    CODE_OBJECT_CONFLICT,
    BadRequest,
    Conflict,
    NotFound,
)
from provisioning.microsoft.graph import User
from tests.contract.conftest import Contract, OpenContract
from tests.provisioning.simulator.conftest import E5_SKU_ID, PHONE_RESOURCE_SKU_ID


async def create_visible_user(
    contract: Contract, alias: str, *, usage_location: str | None = None
) -> User:
    user = await contract.graph.create_user(
        display_name=f"{alias} Test",
        mail_nickname=alias,
        user_principal_name=contract.upn(alias),
        usage_location=usage_location,
    )
    contract.advance(contract.config.consistency_window_s)
    return user


async def test_create_user_answers_the_new_user(contract: Contract) -> None:
    user = await contract.graph.create_user(
        display_name="Ivy Ops",
        mail_nickname="ivy",
        user_principal_name=contract.upn("ivy"),
        usage_location="GB",
        password=SecretStr("Correct-Horse-7"),
    )

    assert user.id
    assert user.user_principal_name == contract.upn("ivy")
    assert user.display_name == "Ivy Ops"
    assert user.usage_location == "GB"
    assert user.account_enabled is True
    assert user.assigned_licenses == []
    assert (await contract.counters())["accountsCreated"] == 1


async def test_get_user_by_id_and_by_upn(contract: Contract) -> None:
    created = await create_visible_user(contract, "jo")

    by_id = await contract.graph.get_user(created.id)
    by_upn = await contract.graph.get_user(contract.upn("jo"))

    assert by_id == by_upn
    assert (by_id.id, by_id.user_principal_name) == (created.id, contract.upn("jo"))


async def test_find_user_is_none_for_an_unknown_user(contract: Contract) -> None:
    assert await contract.graph.find_user(contract.upn("nobody")) is None
    assert await contract.graph.find_user("5b1c2d3e-0000-4000-8000-000000000000") is None


async def test_get_user_of_an_unknown_user_is_not_found(contract: Contract) -> None:
    with pytest.raises(NotFound) as caught:
        await contract.graph.get_user(contract.upn("nobody"))

    assert caught.value.code == CODE_NOT_FOUND
    assert len(contract.traffic.api_requests()) == 1, "a 404 is not retried by the client"


async def test_patch_user_changes_the_given_fields(contract: Contract) -> None:
    user = await create_visible_user(contract, "kim")
    contract.advance(contract.config.propagation_max_s)

    await contract.graph.update_user(user.id, display_name="Kim Renamed", usage_location="DE")

    again = await contract.graph.get_user(user.id)
    assert (again.display_name, again.usage_location) == ("Kim Renamed", "DE")


async def test_delete_user_removes_it(contract: Contract) -> None:
    user = await create_visible_user(contract, "lee")

    await contract.graph.delete_user(user.id)

    assert await contract.graph.find_user(user.id) is None
    assert (await contract.counters())["accountsDeleted"] == 1


async def test_subscribed_skus_list_units_of_the_tenant(contract: Contract) -> None:
    skus = {sku.sku_part_number: sku for sku in await contract.graph.list_subscribed_skus()}

    assert set(skus) >= {"PHONESYSTEM_VIRTUALUSER", "ENTERPRISEPREMIUM"}
    phone = skus["PHONESYSTEM_VIRTUALUSER"]
    assert phone.sku_id == PHONE_RESOURCE_SKU_ID
    assert phone.prepaid_units.enabled == contract.config.phone_resource_units
    assert phone.free_units == contract.config.phone_resource_units
    e5 = skus["ENTERPRISEPREMIUM"]
    assert e5.sku_id == E5_SKU_ID
    assert e5.consumed_units == 2
    assert e5.free_units == contract.config.e5_units - 2


async def test_assign_license_gives_the_user_the_sku_once(contract: Contract) -> None:
    user = await create_visible_user(contract, "max", usage_location="US")
    contract.advance(contract.config.propagation_max_s)

    licensed = await contract.graph.assign_license(user.id, PHONE_RESOURCE_SKU_ID)
    again = await contract.graph.assign_license(user.id, PHONE_RESOURCE_SKU_ID)

    assert licensed.has_license(PHONE_RESOURCE_SKU_ID)
    assert [lic.sku_id for lic in again.assigned_licenses] == [PHONE_RESOURCE_SKU_ID]
    assert (await contract.counters())["licensesAssigned"] == 1
    skus = {sku.sku_id: sku for sku in await contract.graph.list_subscribed_skus()}
    assert skus[PHONE_RESOURCE_SKU_ID].consumed_units == 1


async def test_remove_license_frees_the_unit(contract: Contract) -> None:
    user = await create_visible_user(contract, "ned", usage_location="US")
    contract.advance(contract.config.propagation_max_s)
    await contract.graph.assign_license(user.id, PHONE_RESOURCE_SKU_ID)

    unlicensed = await contract.graph.remove_license(user.id, PHONE_RESOURCE_SKU_ID)

    assert not unlicensed.has_license(PHONE_RESOURCE_SKU_ID)
    assert (await contract.counters())["licensesRemoved"] == 1
    skus = {sku.sku_id: sku for sku in await contract.graph.list_subscribed_skus()}
    assert skus[PHONE_RESOURCE_SKU_ID].consumed_units == 0


# -- failure modes -------------------------------------------------------------------------


async def test_a_new_user_is_not_found_until_the_directory_catches_up(
    contract: Contract,
) -> None:
    user = await contract.graph.create_user(
        display_name="Olu", mail_nickname="olu", user_principal_name=contract.upn("olu")
    )

    with pytest.raises(NotFound):
        await contract.graph.get_user(user.id)
    assert await contract.graph.find_user(contract.upn("olu")) is None

    contract.advance(contract.config.consistency_window_s)
    assert (await contract.graph.get_user(user.id)).id == user.id


async def test_writes_before_propagation_fail_with_account_not_ready_then_succeed(
    contract: Contract,
) -> None:
    user = await create_visible_user(contract, "pat")

    with pytest.raises(BadRequest) as caught:
        await contract.graph.set_usage_location(user.id, "US")

    assert caught.value.code == CODE_ACCOUNT_NOT_READY
    assert f"We can't save changes to {contract.upn('pat')}" in caught.value.message
    assert len(contract.traffic.api_requests()) == 2, "the client leaves it to the workflow"

    contract.advance(contract.config.propagation_max_s)
    await contract.graph.set_usage_location(user.id, "US")
    assert (await contract.graph.get_user(user.id)).usage_location == "US"


async def test_assign_license_before_propagation_is_account_not_ready(
    contract: Contract,
) -> None:
    user = await create_visible_user(contract, "quin", usage_location="US")

    with pytest.raises(BadRequest) as caught:
        await contract.graph.assign_license(user.id, PHONE_RESOURCE_SKU_ID)

    assert caught.value.code == CODE_ACCOUNT_NOT_READY
    assert (await contract.counters())["licensesAssigned"] == 0


async def test_assign_license_without_usage_location_is_invalid_usage_location(
    contract: Contract,
) -> None:
    user = await create_visible_user(contract, "rae")
    contract.advance(contract.config.propagation_max_s)

    with pytest.raises(BadRequest) as caught:
        await contract.graph.assign_license(user.id, PHONE_RESOURCE_SKU_ID)

    assert caught.value.code == CODE_INVALID_USAGE_LOCATION
    assert "invalid usage location" in caught.value.message
    assert not (await contract.graph.get_user(user.id)).assigned_licenses


async def test_assign_license_with_no_free_units_is_insufficient_licenses(
    open_contract: OpenContract,
) -> None:
    contract = await open_contract(phone_resource_units=1)
    first = await create_visible_user(contract, "sam", usage_location="US")
    second = await create_visible_user(contract, "sue", usage_location="US")
    contract.advance(contract.config.propagation_max_s)
    await contract.graph.assign_license(first.id, PHONE_RESOURCE_SKU_ID)

    with pytest.raises(BadRequest) as caught:
        await contract.graph.assign_license(second.id, PHONE_RESOURCE_SKU_ID)

    assert caught.value.code == CODE_INSUFFICIENT_LICENSES
    assert (await contract.counters())["licensesAssigned"] == 1

    await contract.add_license_units("PHONESYSTEM_VIRTUALUSER", 1)
    assert (await contract.graph.assign_license(second.id, PHONE_RESOURCE_SKU_ID)).has_license(
        PHONE_RESOURCE_SKU_ID
    )


async def test_an_existing_upn_is_a_conflict(contract: Contract) -> None:
    await contract.graph.create_user(
        display_name="Tia", mail_nickname="tia", user_principal_name=contract.upn("tia")
    )

    with pytest.raises(Conflict) as caught:
        await contract.graph.create_user(
            display_name="Tia Again", mail_nickname="tia2", user_principal_name=contract.upn("tia")
        )

    assert caught.value.code == CODE_OBJECT_CONFLICT
    assert len(contract.traffic.api_requests()) == 2, "an object conflict is not retried"
    assert (await contract.counters())["accountsCreated"] == 1


@pytest.mark.parametrize(
    ("field", "display_name", "mail_nickname", "alias"),
    [
        pytest.param("displayName", "x" * 257, "ok", "ok", id="long-display-name"),
        pytest.param("mailNickname", "Ok", "m" * 65, "ok", id="long-mail-nickname"),
        pytest.param("mailNickname", "Ok", "has space", "ok", id="space-in-mail-nickname"),
        pytest.param("userPrincipalName", "Ok", "ok", "u" * 65, id="long-upn-alias"),
        pytest.param("userPrincipalName", "Ok", "ok", "dot.", id="dot-before-at"),
        pytest.param("userPrincipalName", "Ok", "ok", "semi;colon", id="semicolon-in-upn"),
    ],
)
async def test_a_name_beyond_entra_limits_is_bad_request_naming_the_field(
    contract: Contract, field: str, display_name: str, mail_nickname: str, alias: str
) -> None:
    with pytest.raises(BadRequest) as caught:
        await contract.graph.create_user(
            display_name=display_name,
            mail_nickname=mail_nickname,
            user_principal_name=contract.upn(alias),
        )

    assert caught.value.code == CODE_BAD_REQUEST
    assert f"'{field}'" in caught.value.message
    assert (await contract.counters())["accountsCreated"] == 0


async def test_a_upn_outside_the_tenant_domain_is_bad_request(contract: Contract) -> None:
    with pytest.raises(BadRequest) as caught:
        await contract.graph.create_user(
            display_name="Out", mail_nickname="out", user_principal_name="out@fabrikam.com"
        )

    assert "'userPrincipalName'" in caught.value.message
