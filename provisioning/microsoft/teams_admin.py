"""The Teams admin API: number offers, search orders and application instances.

This is the REST service behind the MicrosoftTeams PowerShell module. It is not publicly
documented, so every path is in ``ROUTES`` and every field name is an explicit alias on
the models below: a capture from a real tenant corrects them here, in one place. The
simulator registers its handlers from the same ``ROUTES`` and may build its bodies from
the same models (``model_dump(by_alias=True, mode="json")``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from provisioning.microsoft.base import ApiClient, expand_path
from provisioning.microsoft.errors import NotFound

TEAMS_ADMIN_BASE_URL: Final = "https://api.interfaces.records.teams.microsoft.com"
TEAMS_ADMIN_SCOPE: Final = "48ac35b8-9aa8-4d74-927d-1f4a14a0b239/.default"

AUTO_ATTENDANT_APP_ID: Final = "ce933385-9390-45d1-9512-c8d228074e07"
CALL_QUEUE_APP_ID: Final = "11cd3e2e-fccb-42ad-ad00-878b93575e07"

_NUMBERS: Final = "/Teams.TelephoneNumberManagement/v1"
_VOICE_APPS: Final = "/Teams.VoiceApps/v1"


@dataclass(frozen=True, slots=True)
class TeamsAdminRoutes:
    """Paths relative to the API's base, as aiohttp-style ``{name}`` templates.

    Clients fill them with ``expand_path``; the simulator passes them to its router and
    reads the same names from ``request.match_info``.
    """

    countries: str = f"{_NUMBERS}/countries"
    number_types: str = f"{_NUMBERS}/countries/{{country}}/numberTypes"
    search_orders: str = f"{_NUMBERS}/searchOrders"
    search_order: str = f"{_NUMBERS}/searchOrders/{{order_id}}"
    complete_order: str = f"{_NUMBERS}/searchOrders/{{order_id}}/complete"
    cancel_order: str = f"{_NUMBERS}/searchOrders/{{order_id}}/cancel"
    search_order_name_param: str = "name"
    application_instances: str = f"{_VOICE_APPS}/applicationInstances"
    application_instance: str = f"{_VOICE_APPS}/applicationInstances/{{instance}}"
    application_instance_sync: str = f"{_VOICE_APPS}/applicationInstances/{{instance_id}}/sync"


ROUTES: Final = TeamsAdminRoutes()


class SearchOrderStatus(StrEnum):
    PENDING = "Pending"
    RESERVED = "Reserved"
    COMPLETED = "Completed"
    CANCELLED = "Cancelled"
    EXPIRED = "Expired"
    ERROR = "Error"


class SearchOrderErrorCode(StrEnum):
    """Known values of ``SearchOrder.error_code``; the field itself stays open-ended."""

    NO_ERROR = "NoError"
    OUT_OF_STOCK = "OutOfStock"


class TeamsModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class Country(TeamsModel):
    iso_country_code: str = Field(alias="isoCountryCode")
    display_name: str = Field(alias="displayName")


class AreaCode(TeamsModel):
    area_code: str = Field(alias="areaCode")
    city: str | None = Field(default=None, alias="city")
    available_quantity: int = Field(default=0, alias="availableQuantity")


class NumberTypeOffer(TeamsModel):
    number_type: str = Field(alias="numberType")
    display_name: str | None = Field(default=None, alias="displayName")
    is_toll_free: bool = Field(default=False, alias="isTollFree")
    area_codes: list[AreaCode] = Field(default_factory=list, alias="areaCodes")


class OrderNumber(TeamsModel):
    telephone_number: str = Field(alias="telephoneNumber")
    location: str | None = Field(default=None, alias="location")


class SearchOrderRequest(TeamsModel):
    name: str = Field(alias="name")
    description: str = Field(alias="description")
    country_code: str = Field(alias="countryCode")
    number_type: str = Field(alias="numberType")
    quantity: int = Field(alias="quantity", ge=1)
    area_code: str | None = Field(default=None, alias="areaCode")
    number_prefix: str | None = Field(default=None, alias="numberPrefix")
    civic_address_id: str | None = Field(default=None, alias="civicAddressId")


class CreatedSearchOrder(TeamsModel):
    order_id: str = Field(alias="orderId")


class SearchOrder(TeamsModel):
    id: str = Field(alias="id")
    name: str = Field(alias="name")
    description: str | None = Field(default=None, alias="description")
    country_code: str | None = Field(default=None, alias="countryCode")
    number_type: str | None = Field(default=None, alias="numberType")
    area_code: str | None = Field(default=None, alias="areaCode")
    quantity: int | None = Field(default=None, alias="quantity")
    status: SearchOrderStatus = Field(alias="status")
    error_code: str | None = Field(default=None, alias="errorCode")
    telephone_numbers: list[OrderNumber] = Field(default_factory=list, alias="telephoneNumbers")
    created_at: datetime | None = Field(default=None, alias="createdAt")
    reservation_expiry_date: datetime | None = Field(default=None, alias="reservationExpiryDate")


class ApplicationInstanceRequest(TeamsModel):
    user_principal_name: str = Field(alias="userPrincipalName")
    display_name: str = Field(alias="displayName")
    application_id: str = Field(alias="applicationId")


class ApplicationIdUpdate(TeamsModel):
    application_id: str = Field(alias="applicationId")


class ApplicationInstance(TeamsModel):
    object_id: str = Field(alias="objectId")
    user_principal_name: str = Field(alias="userPrincipalName")
    display_name: str | None = Field(default=None, alias="displayName")
    application_id: str | None = Field(default=None, alias="applicationId")
    phone_number: str | None = Field(default=None, alias="phoneNumber")


class _Countries(TeamsModel):
    value: list[Country] = Field(alias="value")


class _NumberTypes(TeamsModel):
    value: list[NumberTypeOffer] = Field(alias="value")


class _SearchOrders(TeamsModel):
    value: list[SearchOrder] = Field(alias="value")


def _body(model: BaseModel) -> dict[str, object]:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


class TeamsAdminClient:
    def __init__(self, api: ApiClient) -> None:
        self._api = api

    async def list_countries(self) -> list[Country]:
        return (await self._api.get(ROUTES.countries, _Countries)).value

    async def list_number_types(self, country: str) -> list[NumberTypeOffer]:
        path = expand_path(ROUTES.number_types, country=country)
        return (await self._api.get(path, _NumberTypes)).value

    async def create_search_order(
        self,
        *,
        name: str,
        description: str,
        country_code: str,
        number_type: str,
        quantity: int,
        area_code: str | None = None,
        number_prefix: str | None = None,
        civic_address_id: str | None = None,
    ) -> str:
        """Place a search order; returns its id. At most one way to narrow the search."""
        narrowing = [value for value in (area_code, number_prefix, civic_address_id) if value]
        if len(narrowing) > 1:
            raise ValueError("give at most one of area_code, number_prefix and civic_address_id")
        request = SearchOrderRequest(
            name=name,
            description=description,
            country_code=country_code,
            number_type=number_type,
            quantity=quantity,
            area_code=area_code,
            number_prefix=number_prefix,
            civic_address_id=civic_address_id,
        )
        # Not idempotent: a lost response may hide a placed order, which the workflow
        # finds again by its deterministic name.
        created = await self._api.post(
            ROUTES.search_orders, CreatedSearchOrder, json=_body(request), idempotent=False
        )
        return created.order_id

    async def find_search_order_by_name(self, name: str) -> SearchOrder | None:
        """The order with exactly this name, the newest if several; None if there is none."""
        matches: list[SearchOrder] = []
        async for page in self._api.iter_pages(
            ROUTES.search_orders, {ROUTES.search_order_name_param: name}
        ):
            orders = _SearchOrders.model_validate(page).value
            matches.extend(order for order in orders if order.name == name)
        if not matches:
            return None
        return max(
            matches,
            key=lambda order: order.created_at.timestamp() if order.created_at else float("-inf"),
        )

    async def get_search_order(self, order_id: str) -> SearchOrder:
        return await self._api.get(expand_path(ROUTES.search_order, order_id=order_id), SearchOrder)

    async def complete_search_order(self, order_id: str) -> None:
        # Completing a completed order is a no-op on the service, so a repeat is safe.
        await self._api.request(
            "POST", expand_path(ROUTES.complete_order, order_id=order_id), idempotent=True
        )

    async def cancel_search_order(self, order_id: str) -> None:
        await self._api.request(
            "POST", expand_path(ROUTES.cancel_order, order_id=order_id), idempotent=True
        )

    async def create_application_instance(
        self, *, upn: str, display_name: str, application_id: str
    ) -> ApplicationInstance:
        request = ApplicationInstanceRequest(
            user_principal_name=upn, display_name=display_name, application_id=application_id
        )
        return await self._api.post(
            ROUTES.application_instances,
            ApplicationInstance,
            json=_body(request),
            idempotent=False,
            expected={201},
        )

    async def get_application_instance(self, id_or_upn: str) -> ApplicationInstance:
        path = expand_path(ROUTES.application_instance, instance=id_or_upn)
        return await self._api.get(path, ApplicationInstance)

    async def find_application_instance(self, id_or_upn: str) -> ApplicationInstance | None:
        try:
            return await self.get_application_instance(id_or_upn)
        except NotFound:
            return None

    async def set_application_id(self, instance_id: str, application_id: str) -> None:
        await self._api.request(
            "PATCH",
            expand_path(ROUTES.application_instance, instance=instance_id),
            json=_body(ApplicationIdUpdate(application_id=application_id)),
        )

    async def sync_application_instance(self, instance_id: str) -> None:
        await self._api.request(
            "POST",
            expand_path(ROUTES.application_instance_sync, instance_id=instance_id),
            idempotent=True,
        )
