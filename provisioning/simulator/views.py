"""The JSON the simulated services answer with, built from the tenant state."""

from __future__ import annotations

import math
from typing import Any

from provisioning.simulator.catalogue import (
    NUMBER_TYPE_NAMES,
    CatalogueNumberType,
    CountryOffer,
    is_toll_free,
)
from provisioning.simulator.clock import iso_utc
from provisioning.simulator.state import (
    AreaCode,
    DirectoryUser,
    NumberOperation,
    OperationStatus,
    SearchOrder,
    ServiceNumber,
    Sku,
    TenantState,
)
from provisioning.simulator.wire import GRAPH_ROUTES, fill

Json = dict[str, Any]


def user_json(user: DirectoryUser) -> Json:
    return {
        "id": user.id,
        "displayName": user.display_name,
        "userPrincipalName": user.user_principal_name,
        "usageLocation": user.usage_location,
        "accountEnabled": user.account_enabled,
        "assignedLicenses": [
            {"skuId": lic.sku_id, "disabledPlans": list(lic.disabled_plans)}
            for lic in user.licenses
        ],
    }


def sku_json(state: TenantState, sku: Sku) -> Json:
    return {
        "id": f"{state.config.tenant_id}_{sku.sku_id}",
        "skuId": sku.sku_id,
        "skuPartNumber": sku.part_number,
        "capabilityStatus": "Enabled",
        "consumedUnits": state.consumed_units(sku),
        "prepaidUnits": {"enabled": sku.enabled, "suspended": 0, "warning": 0},
    }


def number_json(number: ServiceNumber) -> Json:
    return {
        "id": number.id,
        "telephoneNumber": number.telephone_number,
        "assignmentStatus": number.assignment_status,
        "assignmentTargetId": number.assignment_target_id,
        "assignmentCategory": number.assignment_category,
        "numberType": number.number_type,
        "capabilities": list(number.capabilities),
        "isoCountryCode": number.iso_country_code,
        "city": number.city,
        "activationState": number.activation_state,
        "operatorId": number.operator_id,
        "portInStatus": number.port_in_status,
    }


def operation_json(operation: NumberOperation, status: OperationStatus, graph_base: str) -> Json:
    number_id = operation.telephone_number.removeprefix("+")
    return {
        "id": operation.id,
        "createdDateTime": iso_utc(operation.created_at),
        "status": status,
        "numbers": [
            {
                "resourceLocation": graph_base + fill(GRAPH_ROUTES.number_assignment, number_id),
                "status": status,
                "statusDetail": operation.status_detail,
            }
        ],
    }


def order_json(order: SearchOrder) -> Json:
    return {
        "id": order.id,
        "name": order.name,
        "description": order.description,
        "countryCode": order.country_code,
        "numberType": order.number_type,
        "areaCode": order.area_code,
        "quantity": order.quantity,
        "status": order.status,
        "errorCode": order.error_code,
        "telephoneNumbers": [
            {"telephoneNumber": n.telephone_number, "location": n.location}
            for n in order.telephone_numbers
        ],
        "createdAt": iso_utc(order.created_at),
        "reservationExpiryDate": iso_utc(order.reservation_expiry_date),
    }


def country_json(country: CountryOffer) -> Json:
    return {"isoCountryCode": country.iso_code, "displayName": country.display_name}


def number_type_json(number_type: CatalogueNumberType, areas: list[tuple[AreaCode, int]]) -> Json:
    return {
        "numberType": number_type,
        "displayName": NUMBER_TYPE_NAMES[number_type],
        "isTollFree": is_toll_free(number_type),
        "areaCodes": [
            {"areaCode": area.area_code, "city": area.city, "availableQuantity": stock}
            for area, stock in areas
        ],
    }


def instance_json(state: TenantState, user: DirectoryUser) -> Json:
    return {
        "objectId": user.id,
        "userPrincipalName": user.user_principal_name,
        "displayName": user.display_name,
        "applicationId": user.application_id,
        "phoneNumber": state.phone_number_of(user.id),
    }


def _instant(state: TenantState, instant: float | None) -> str | None:
    if instant is None:
        return None
    if math.isinf(instant):
        return "always" if instant < 0 else "never"
    return iso_utc(state.clock.wall_time(instant))


def state_json(state: TenantState, graph_base: str) -> Json:
    """Everything, for a human or a test debugging a run."""
    state.settle()
    now = state.clock.monotonic()
    accounts = []
    for user in state.users.values():
        account = user_json(user)
        account.update(
            mailNickname=user.mail_nickname,
            createdDateTime=iso_utc(user.created_at),
            visibleAt=_instant(state, user.visible_at),
            propagatedAt=_instant(state, user.propagated_at),
            isResourceAccount=user.is_resource_account,
        )
        if user.is_resource_account:
            account.update(
                applicationId=user.application_id,
                syncedAt=_instant(state, user.synced_at),
                phoneNumber=state.phone_number_of(user.id),
            )
        accounts.append(account)
    return {
        "now": iso_utc(state.clock.now()),
        "timeScale": state.clock.time_scale,
        "tenantId": state.config.tenant_id,
        "tenantDomain": state.config.tenant_domain,
        "accounts": accounts,
        "subscribedSkus": [sku_json(state, sku) for sku in state.skus.values()],
        "numberAssignments": [
            number_json(n) for n in sorted(state.numbers.values(), key=lambda n: n.id)
        ],
        "searchOrders": [order_json(o) for o in state.orders.values()],
        "operations": [
            {
                **operation_json(op, op.status(now), graph_base),
                "action": op.action,
                "telephoneNumber": op.telephone_number,
                "assignmentTargetId": op.target_id,
            }
            for op in state.operations.values()
        ],
        "stock": [
            {
                "countryCode": country,
                "numberType": number_type,
                "areaCode": area_code,
                "city": state.areas[(country, number_type)][area_code].city,
                "quantity": quantity,
            }
            for (country, number_type, area_code), quantity in state.stock.items()
        ],
        "counters": state.counters.to_json(),
        "knobs": state.knobs.model_dump(),
    }
