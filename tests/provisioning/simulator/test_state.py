"""The tenant logic on a manual clock: time passes only when a test says so."""

from __future__ import annotations

from typing import Any

import pytest

from provisioning.simulator.clock import ManualClock, ScaledClock
from provisioning.simulator.config import SimulatorConfig, StockOverride
from provisioning.simulator.errors import SimError
from provisioning.simulator.state import AssignedLicense, DirectoryUser, TenantState

PHONE_RESOURCE = "440eaaa8-b3e0-484b-a8be-62870b9ba70a"
E5 = "c7df2760-2c81-4ef7-b578-5b5392b571df"
FLOW_FREE = "f30db892-07e9-47e9-837c-80727f46fd3d"
AA_APP = "ce933385-9390-45d1-9512-c8d228074e07"


def make_tenant(time_scale: float = 1.0, **overrides: Any) -> tuple[TenantState, ManualClock]:
    clock = ManualClock()
    config = SimulatorConfig(time_scale=time_scale, **overrides)
    return TenantState(config, ScaledClock(time_scale, clock)), clock


def new_account(tenant: TenantState, alias: str = "support") -> DirectoryUser:
    return tenant.create_application_instance(
        user_principal_name=f"{alias}@contoso.onmicrosoft.com",
        display_name="Contoso Support",
        application_id=AA_APP,
    )


def ready_account(tenant: TenantState, clock: ManualClock, alias: str = "support") -> DirectoryUser:
    account = new_account(tenant, alias)
    clock.advance(20 * 60)
    tenant.update_user(account.id, usage_location="US")
    tenant.assign_license(account.id, [AssignedLicense(PHONE_RESOURCE, [])], [])
    tenant.sync_application_instance(account.id)
    clock.advance(60)
    return account


def free_service_number(tenant: TenantState) -> str:
    return next(
        n.telephone_number
        for n in tenant.list_numbers({"assignmentStatus": "unassigned"})
        if "voiceApplicationAssignment" in n.capabilities
    )


def code_of(exc: pytest.ExceptionInfo[SimError]) -> tuple[int, str]:
    return exc.value.status, exc.value.code


# -- eventual consistency and propagation -----------------------------------------------------


def test_a_new_account_is_invisible_during_the_consistency_window() -> None:
    tenant, clock = make_tenant(consistency_window_s=30)
    account = new_account(tenant)
    with pytest.raises(SimError) as exc:
        tenant.get_user(account.id)
    assert code_of(exc) == (404, "Request_ResourceNotFound")
    clock.advance(30)
    assert tenant.get_user(account.user_principal_name).id == account.id


def test_changes_fail_with_account_not_ready_until_the_account_has_propagated() -> None:
    tenant, clock = make_tenant()
    account = new_account(tenant)
    clock.advance(15 * 60 - 1)
    with pytest.raises(SimError) as exc:
        tenant.update_user(account.id, usage_location="US")
    assert code_of(exc) == (400, "Request_AccountNotReady")
    assert exc.value.message.startswith(f"We can't save changes to {account.user_principal_name}.")
    clock.advance(5 * 60 + 1)
    tenant.update_user(account.id, usage_location="US")
    assert tenant.get_user(account.id).usage_location == "US"


def test_propagation_delays_are_drawn_between_15_and_20_minutes_at_scale_one() -> None:
    tenant, _ = make_tenant()
    delays = [new_account(tenant, f"a{i}").propagated_at for i in range(50)]
    assert all(15 * 60 <= d <= 20 * 60 for d in delays)
    assert len(set(delays)) > 40


def test_time_scale_shrinks_every_simulated_duration() -> None:
    tenant, _ = make_tenant(time_scale=0.005)
    account = new_account(tenant)
    assert 15 * 60 * 0.005 <= account.propagated_at <= 20 * 60 * 0.005
    order = tenant.create_order(
        name="o", description="", country_code="US", number_type="AutoAttendantToll", quantity=1
    )
    assert order.expires_at == pytest.approx(16 * 60 * 0.005)


def test_the_same_seed_builds_the_same_tenant() -> None:
    def fingerprint(seed: int) -> tuple[object, ...]:
        tenant, clock = make_tenant(seed=seed)
        account = new_account(tenant)
        order = tenant.create_order(
            name="o", description="", country_code="GB", number_type="CallQueueToll", quantity=2
        )
        clock.advance(10)
        return (
            sorted(tenant.numbers),
            account.id,
            account.propagated_at,
            [n.telephone_number for n in tenant.get_order(order.id).telephone_numbers],
        )

    assert fingerprint(7) == fingerprint(7)
    assert fingerprint(7) != fingerprint(8)


# -- licenses --------------------------------------------------------------------------------


def test_a_license_needs_a_usage_location() -> None:
    tenant, clock = make_tenant()
    account = new_account(tenant)
    clock.advance(20 * 60)
    with pytest.raises(SimError) as exc:
        tenant.assign_license(account.id, [AssignedLicense(PHONE_RESOURCE, [])], [])
    assert code_of(exc) == (400, "Request_InvalidUsageLocation")
    assert exc.value.message == (
        "License assignment cannot be done for user with invalid usage location."
    )


def test_the_license_pool_is_finite_and_removal_frees_a_unit() -> None:
    tenant, clock = make_tenant(phone_resource_units=1)
    first, second = new_account(tenant, "first"), new_account(tenant, "second")
    clock.advance(20 * 60)
    for account in (first, second):
        tenant.update_user(account.id, usage_location="US")
    tenant.assign_license(first.id, [AssignedLicense(PHONE_RESOURCE, [])], [])
    with pytest.raises(SimError) as exc:
        tenant.assign_license(second.id, [AssignedLicense(PHONE_RESOURCE, [])], [])
    assert code_of(exc) == (400, "Request_InsufficientLicenses")

    tenant.assign_license(first.id, [], [PHONE_RESOURCE])
    tenant.assign_license(second.id, [AssignedLicense(PHONE_RESOURCE, [])], [])
    assert tenant.counters.licenses_assigned == 2
    assert tenant.counters.licenses_removed == 1


def test_assigning_a_license_the_user_already_has_changes_nothing() -> None:
    tenant, clock = make_tenant()
    account = ready_account(tenant, clock)
    sku = tenant.skus[PHONE_RESOURCE]
    before = tenant.consumed_units(sku)
    tenant.assign_license(account.id, [AssignedLicense(PHONE_RESOURCE, [])], [])
    assert tenant.consumed_units(sku) == before
    assert tenant.counters.licenses_assigned == 1


def test_seeded_people_already_consume_e5_units() -> None:
    tenant, _ = make_tenant(e5_units=5)
    assert tenant.consumed_units(tenant.skus[E5]) == 2


# -- number orders ---------------------------------------------------------------------------


def test_an_order_is_pending_then_reserved_from_stock() -> None:
    tenant, clock = make_tenant(search_delay_s=10)
    order = tenant.create_order(
        name="o",
        description="",
        country_code="US",
        number_type="AutoAttendantToll",
        quantity=2,
        area_code="425",
    )
    assert tenant.get_order(order.id).status == "Pending"
    clock.advance(10)
    assert tenant.get_order(order.id).status == "Reserved"
    assert all(n.telephone_number.startswith("+1425") for n in order.telephone_numbers)
    assert tenant.stock[("US", "AutoAttendantToll", "425")] == 12 - 2


def test_an_area_code_without_enough_stock_ends_in_out_of_stock() -> None:
    tenant, clock = make_tenant()
    order = tenant.create_order(
        name="o",
        description="",
        country_code="US",
        number_type="AutoAttendantToll",
        quantity=1,
        area_code="212",
    )
    clock.advance(10)
    order = tenant.get_order(order.id)
    assert (order.status, order.error_code) == ("Error", "OutOfStock")


def test_an_unreserved_reservation_expires_after_16_minutes_and_returns_its_stock() -> None:
    tenant, clock = make_tenant()
    order = tenant.create_order(
        name="o",
        description="",
        country_code="US",
        number_type="CallQueueToll",
        quantity=3,
        area_code="206",
    )
    clock.advance(16 * 60 - 1)
    assert tenant.get_order(order.id).status == "Reserved"
    clock.advance(1)
    assert tenant.get_order(order.id).status == "Expired"
    assert tenant.stock[("US", "CallQueueToll", "206")] == 8
    with pytest.raises(SimError) as exc:
        tenant.complete_order(order.id)
    assert code_of(exc) == (400, "Request_BadRequest")


def test_reservation_expiry_date_is_about_16_minutes_after_creation_at_scale_one() -> None:
    tenant, _ = make_tenant()
    order = tenant.create_order(
        name="o", description="", country_code="US", number_type="CallQueueToll", quantity=1
    )
    assert (order.reservation_expiry_date - order.created_at).total_seconds() == 16 * 60


def test_completing_puts_the_numbers_in_the_inventory_exactly_once() -> None:
    tenant, clock = make_tenant()
    order = tenant.create_order(
        name="o",
        description="",
        country_code="DE",
        number_type="AutoAttendantToll",
        quantity=1,
        area_code="30",
    )
    clock.advance(10)
    tenant.complete_order(order.id)
    tenant.complete_order(order.id)
    number = tenant.get_number(order.telephone_numbers[0].telephone_number.removeprefix("+"))
    assert (number.assignment_status, number.number_type, number.iso_country_code) == (
        "unassigned",
        "callingPlan",
        "DE",
    )
    assert "voiceApplicationAssignment" in number.capabilities
    assert number.telephone_number.startswith("+4930")
    assert tenant.counters.orders_completed == 1
    clock.advance(60 * 60)
    assert tenant.get_order(order.id).status == "Completed"


def test_cancelling_a_reservation_returns_the_numbers_to_stock() -> None:
    tenant, clock = make_tenant()
    order = tenant.create_order(
        name="o",
        description="",
        country_code="AU",
        number_type="AutoAttendantTollFree",
        quantity=2,
        area_code="1800",
    )
    clock.advance(10)
    tenant.settle()
    assert tenant.stock[("AU", "AutoAttendantTollFree", "1800")] == 1
    tenant.cancel_order(order.id)
    tenant.cancel_order(order.id)
    assert tenant.get_order(order.id).status == "Cancelled"
    assert tenant.stock[("AU", "AutoAttendantTollFree", "1800")] == 3
    assert tenant.counters.orders_cancelled == 1


def test_an_order_without_area_code_takes_the_first_area_with_enough_stock() -> None:
    tenant, clock = make_tenant()
    order = tenant.create_order(
        name="o", description="", country_code="US", number_type="AutoAttendantToll", quantity=10
    )
    clock.advance(10)
    order = tenant.get_order(order.id)
    assert (order.status, order.area_code) == ("Reserved", "425")


def test_stock_overrides_apply_at_start() -> None:
    override = StockOverride(
        country_code="US", number_type="AutoAttendantToll", area_code="425", quantity=0
    )
    tenant, clock = make_tenant(stock_overrides=(override,))
    order = tenant.create_order(
        name="o",
        description="",
        country_code="US",
        number_type="AutoAttendantToll",
        quantity=1,
        area_code="425",
    )
    clock.advance(10)
    assert tenant.get_order(order.id).error_code == "OutOfStock"


# -- binding ----------------------------------------------------------------------------------


def finish(tenant: TenantState, clock: ManualClock, operation_id: str) -> tuple[str, str | None]:
    clock.advance(20)
    operation, status = tenant.get_operation(operation_id)
    return status, operation.status_detail


def test_an_assignment_runs_for_a_while_before_it_succeeds() -> None:
    tenant, clock = make_tenant(operation_delay_s=20)
    account = ready_account(tenant, clock)
    tel = free_service_number(tenant)
    operation = tenant.start_assign_number(tel, account.id, "callingPlan", None)
    assert tenant.get_operation(operation.id)[1] == "notStarted"
    clock.advance(10)
    assert tenant.get_operation(operation.id)[1] == "running"
    clock.advance(10)
    assert tenant.get_operation(operation.id)[1] == "succeeded"
    number = tenant.get_number(tel.removeprefix("+"))
    assert (number.assignment_status, number.assignment_target_id) == (
        "voiceApplicationAssigned",
        account.id,
    )
    assert tenant.phone_number_of(account.id) == tel
    assert tenant.counters.numbers_bound == 1


def test_assigning_again_to_the_same_account_succeeds_without_binding_twice() -> None:
    tenant, clock = make_tenant()
    account = ready_account(tenant, clock)
    tel = free_service_number(tenant)
    for _ in range(2):
        operation = tenant.start_assign_number(tel, account.id, "callingPlan", None)
        assert finish(tenant, clock, operation.id) == ("succeeded", None)
    assert tenant.counters.numbers_bound == 1


def test_an_unlicensed_account_cannot_get_a_number() -> None:
    tenant, clock = make_tenant()
    account = new_account(tenant)
    clock.advance(20 * 60)
    tenant.update_user(account.id, usage_location="US")
    tenant.sync_application_instance(account.id)
    clock.advance(60)
    operation = tenant.start_assign_number(
        free_service_number(tenant), account.id, "callingPlan", None
    )
    status, detail = finish(tenant, clock, operation.id)
    assert status == "failed"
    assert "not licensed" in (detail or "")


def test_a_license_without_phone_system_does_not_count() -> None:
    tenant, clock = make_tenant()
    account = new_account(tenant)
    clock.advance(20 * 60)
    tenant.update_user(account.id, usage_location="US")
    tenant.assign_license(account.id, [AssignedLicense(FLOW_FREE, [])], [])
    tenant.sync_application_instance(account.id)
    clock.advance(60)
    operation = tenant.start_assign_number(
        free_service_number(tenant), account.id, "callingPlan", None
    )
    assert "not licensed" in (finish(tenant, clock, operation.id)[1] or "")


def test_an_unsynced_account_cannot_get_a_number_until_the_sync_lands() -> None:
    tenant, clock = make_tenant(sync_delay_s=60, operation_delay_s=20)
    account = new_account(tenant)
    clock.advance(20 * 60)
    tenant.update_user(account.id, usage_location="US")
    tenant.assign_license(account.id, [AssignedLicense(E5, [])], [])
    tel = free_service_number(tenant)
    operation = tenant.start_assign_number(tel, account.id, "callingPlan", None)
    status, detail = finish(tenant, clock, operation.id)
    assert status == "failed"
    assert "not synced" in (detail or "")

    tenant.sync_application_instance(account.id)
    retry = tenant.start_assign_number(tel, account.id, "callingPlan", None)
    assert finish(tenant, clock, retry.id)[0] == "failed"  # the sync lands 60 s later
    clock.advance(40)
    last = tenant.start_assign_number(tel, account.id, "callingPlan", None)
    assert finish(tenant, clock, last.id) == ("succeeded", None)


def test_the_outcome_is_decided_when_the_operation_ends_not_when_it_is_read() -> None:
    tenant, clock = make_tenant(sync_delay_s=60, operation_delay_s=20)
    account = new_account(tenant)
    clock.advance(20 * 60)
    tenant.update_user(account.id, usage_location="US")
    tenant.assign_license(account.id, [AssignedLicense(PHONE_RESOURCE, [])], [])
    tenant.sync_application_instance(account.id)
    operation = tenant.start_assign_number(
        free_service_number(tenant), account.id, "callingPlan", None
    )
    clock.advance(10 * 60)
    _, status = tenant.get_operation(operation.id)
    assert status == "failed"
    assert "not synced" in (operation.status_detail or "")


@pytest.mark.parametrize(
    ("pick", "expected"),
    [
        (lambda t: "+14255550100", "not in the tenant's number inventory"),
        (
            lambda t: next(
                n.telephone_number for n in t.numbers.values() if n.number_type == "directRouting"
            ),
            "is a directRouting number",
        ),
        (
            lambda t: next(
                n.telephone_number
                for n in t.numbers.values()
                if n.number_type == "callingPlan"
                and n.capabilities == ("userAssignment",)
                and n.assignment_status == "unassigned"
            ),
            "lacks the voiceApplicationAssignment capability",
        ),
        (
            lambda t: next(
                n.telephone_number
                for n in t.numbers.values()
                if n.assignment_status == "userAssigned"
            ),
            "lacks the voiceApplicationAssignment capability",
        ),
    ],
)
def test_a_number_that_cannot_be_bound_fails_the_operation(pick: Any, expected: str) -> None:
    tenant, clock = make_tenant()
    account = ready_account(tenant, clock)
    operation = tenant.start_assign_number(pick(tenant), account.id, "callingPlan", None)
    status, detail = finish(tenant, clock, operation.id)
    assert status == "failed"
    assert expected in (detail or "")
    assert tenant.counters.numbers_bound == 0


def test_a_number_bound_to_one_account_cannot_be_bound_to_another() -> None:
    tenant, clock = make_tenant()
    first, second = ready_account(tenant, clock, "first"), ready_account(tenant, clock, "second")
    tel = free_service_number(tenant)
    one = tenant.start_assign_number(tel, first.id, "callingPlan", None)
    two = tenant.start_assign_number(tel, second.id, "callingPlan", None)
    clock.advance(20)
    assert tenant.get_operation(one.id)[1] == "succeeded"
    assert tenant.get_operation(two.id)[1] == "failed"
    assert "already assigned" in (two.status_detail or "")


def test_the_usage_location_must_match_the_numbers_country() -> None:
    tenant, clock = make_tenant()
    account = new_account(tenant)
    clock.advance(20 * 60)
    tenant.update_user(account.id, usage_location="GB")
    tenant.assign_license(account.id, [AssignedLicense(PHONE_RESOURCE, [])], [])
    tenant.sync_application_instance(account.id)
    clock.advance(60)
    operation = tenant.start_assign_number(
        free_service_number(tenant), account.id, "callingPlan", None
    )
    assert "usage location" in (finish(tenant, clock, operation.id)[1] or "")


def test_unassigning_frees_the_number_once() -> None:
    tenant, clock = make_tenant()
    account = ready_account(tenant, clock)
    tel = free_service_number(tenant)
    finish(tenant, clock, tenant.start_assign_number(tel, account.id, "callingPlan", None).id)
    for _ in range(2):
        operation = tenant.start_unassign_number(tel, "callingPlan")
        assert finish(tenant, clock, operation.id) == ("succeeded", None)
    assert tenant.get_number(tel.removeprefix("+")).assignment_status == "unassigned"
    assert tenant.counters.numbers_unbound == 1


def test_a_new_application_id_needs_a_new_sync() -> None:
    tenant, clock = make_tenant()
    account = ready_account(tenant, clock)
    tenant.set_application_id(account.id, "11cd3e2e-fccb-42ad-ad00-878b93575e07")
    operation = tenant.start_assign_number(
        free_service_number(tenant), account.id, "callingPlan", None
    )
    assert "not synced" in (finish(tenant, clock, operation.id)[1] or "")


def test_deleting_an_account_releases_its_licenses_and_number() -> None:
    tenant, clock = make_tenant()
    account = ready_account(tenant, clock)
    tel = free_service_number(tenant)
    finish(tenant, clock, tenant.start_assign_number(tel, account.id, "callingPlan", None).id)
    tenant.delete_user(account.id)
    assert tenant.consumed_units(tenant.skus[PHONE_RESOURCE]) == 0
    assert tenant.get_number(tel.removeprefix("+")).assignment_status == "unassigned"
    assert tenant.counters.accounts_deleted == 1


def test_a_number_prefix_too_long_to_fill_ends_out_of_stock_instead_of_hanging() -> None:
    tenant, clock = make_tenant()
    order = tenant.create_order(
        name="o",
        description="",
        country_code="US",
        number_type="AutoAttendantToll",
        quantity=2,
        number_prefix="4255550100",
    )
    clock.advance(10)
    reserved = tenant.get_order(order.id)
    assert (reserved.status, reserved.error_code) == ("Error", "OutOfStock")
    assert tenant.stock[("US", "AutoAttendantToll", "425")] == 12


def test_a_number_prefix_shapes_the_reserved_numbers() -> None:
    tenant, clock = make_tenant()
    order = tenant.create_order(
        name="o",
        description="",
        country_code="US",
        number_type="AutoAttendantToll",
        quantity=3,
        number_prefix="42555",
    )
    clock.advance(10)
    numbers = [n.telephone_number for n in tenant.get_order(order.id).telephone_numbers]
    assert len(set(numbers)) == 3
    assert all(n.startswith("+142555") and len(n) == 12 for n in numbers)
