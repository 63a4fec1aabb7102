"""Microsoft Graph v1.0: users, licenses, telephone number assignments and their operations.

Thin on purpose: each method is a path, a body and a response model. Transport, tokens
and retries live in ``ApiClient``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic.alias_generators import to_camel

from provisioning.microsoft.base import ApiClient, expand_path
from provisioning.microsoft.errors import (
    NotFound,
    UnexpectedResponse,
)

GRAPH_BASE_URL: Final = "https://graph.microsoft.com/v1.0"
GRAPH_SCOPE: Final = "https://graph.microsoft.com/.default"
MAX_TOP: Final = 1000

_NUMBERS: Final = "/admin/teams/telephoneNumberManagement"


@dataclass(frozen=True, slots=True)
class GraphRoutes:
    """Graph paths relative to the v1.0 base, as ``{name}`` templates (see ``expand_path``)."""

    users: str = "/users"
    user: str = "/users/{user_id}"
    assign_license: str = "/users/{user_id}/assignLicense"
    subscribed_skus: str = "/subscribedSkus"
    number_assignments: str = f"{_NUMBERS}/numberAssignments"
    number_assignment: str = f"{_NUMBERS}/numberAssignments/{{assignment_id}}"
    assign_number: str = f"{_NUMBERS}/numberAssignments/assignNumber"
    unassign_number: str = f"{_NUMBERS}/numberAssignments/unassignNumber"
    operation: str = f"{_NUMBERS}/operations/{{operation_id}}"


GRAPH_ROUTES: Final = GraphRoutes()


class AssignmentStatus(StrEnum):
    UNASSIGNED = "unassigned"
    USER_ASSIGNED = "userAssigned"
    VOICE_APPLICATION_ASSIGNED = "voiceApplicationAssigned"
    CONFERENCE_ASSIGNED = "conferenceAssigned"


class InventoryNumberType(StrEnum):
    CALLING_PLAN = "callingPlan"
    DIRECT_ROUTING = "directRouting"
    OPERATOR_CONNECT = "operatorConnect"


class NumberCapability(StrEnum):
    USER_ASSIGNMENT = "userAssignment"
    VOICE_APPLICATION_ASSIGNMENT = "voiceApplicationAssignment"
    CONFERENCE_ASSIGNMENT = "conferenceAssignment"


class OperationStatus(StrEnum):
    NOT_STARTED = "notStarted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN_FUTURE_VALUE = "unknownFutureValue"


_FINISHED: Final = frozenset(
    {OperationStatus.SUCCEEDED, OperationStatus.FAILED, OperationStatus.SKIPPED}
)


class GraphModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


class AssignedLicense(GraphModel):
    sku_id: str
    disabled_plans: list[str] = Field(default_factory=list)


class User(GraphModel):
    id: str
    display_name: str | None = None
    user_principal_name: str | None = None
    mail_nickname: str | None = None
    usage_location: str | None = None
    account_enabled: bool | None = None
    assigned_licenses: list[AssignedLicense] = Field(default_factory=list)

    def has_license(self, sku_id: str) -> bool:
        return any(assigned.sku_id.lower() == sku_id.lower() for assigned in self.assigned_licenses)


class PrepaidUnits(GraphModel):
    enabled: int = 0
    suspended: int = 0
    warning: int = 0


class SubscribedSku(GraphModel):
    id: str | None = None
    sku_id: str
    sku_part_number: str
    capability_status: str | None = None
    consumed_units: int = 0
    prepaid_units: PrepaidUnits = Field(default_factory=PrepaidUnits)

    @property
    def free_units(self) -> int:
        return max(0, self.prepaid_units.enabled - self.consumed_units)


class NumberAssignment(GraphModel):
    id: str | None = None
    telephone_number: str
    # Open-ended in Graph (it adds values over time), so kept as text; compare against
    # the StrEnums above.
    assignment_status: str
    assignment_target_id: str | None = None
    assignment_category: str | None = None
    number_type: str | None = None
    capabilities: list[str] = Field(default_factory=list)
    iso_country_code: str | None = None
    city: str | None = None
    activation_state: str | None = None
    operator_id: str | None = None
    port_in_status: str | None = None

    @property
    def can_serve_voice_applications(self) -> bool:
        return NumberCapability.VOICE_APPLICATION_ASSIGNMENT in self.capabilities


class OperationNumber(GraphModel):
    resource_location: str | None = None
    status: str | None = None
    status_detail: str | None = None


class LongRunningOperation(GraphModel):
    id: str
    created_date_time: datetime | None = None
    status: OperationStatus
    numbers: list[OperationNumber] = Field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.status in _FINISHED

    @property
    def failure_detail(self) -> str | None:
        """The ``statusDetail`` of the first failed number (or of any number that has one)."""
        failed = [number for number in self.numbers if number.status == OperationStatus.FAILED]
        for number in failed or self.numbers:
            if number.status_detail:
                return number.status_detail
        return None


class _Page(GraphModel):
    value: list[dict[str, Any]]


def number_filter(
    *,
    assignment_status: str | None = None,
    iso_country_code: str | None = None,
    number_type: str | None = None,
    assignment_target_id: str | None = None,
    telephone_number: str | None = None,
) -> str | None:
    """An OData ``$filter`` for number assignments; None when no clause is given.

    Only the fields and the ``eq``/``and`` grammar the contract supports. A ``'`` in a value
    is doubled, OData's escape, so user text cannot break out of the literal.
    """
    clauses = {
        "assignmentStatus": assignment_status,
        "isoCountryCode": iso_country_code,
        "numberType": number_type,
        "assignmentTargetId": assignment_target_id,
        "telephoneNumber": telephone_number,
    }
    parts = [
        f"{field} eq {_odata_string(value)}"
        for field, value in clauses.items()
        if value is not None
    ]
    return " and ".join(parts) or None


def _odata_string(value: str) -> str:
    escaped = value.replace("'", "''")
    return f"'{escaped}'"


def number_assignment_id(telephone_number: str) -> str:
    """Graph's id of a number: its digits, without the leading ``+``."""
    digits = telephone_number.removeprefix("+")
    if not digits.isdigit():
        raise ValueError(f"not an E.164 telephone number: {telephone_number!r}")
    return digits


def operation_id_from_location(location: str) -> str:
    """The operation id at the end of a 202's ``Location`` (``…/operations/{id}``)."""
    segments = [segment for segment in urlsplit(location).path.split("/") if segment]
    if len(segments) < 2 or segments[-2] != "operations":
        raise UnexpectedResponse(f"Location does not name an operation: {location!r}")
    return unquote(segments[-1])


class GraphClient:
    def __init__(self, api: ApiClient) -> None:
        self._api = api

    async def create_user(
        self,
        *,
        display_name: str,
        mail_nickname: str,
        user_principal_name: str,
        account_enabled: bool = True,
        usage_location: str | None = None,
        password: SecretStr | None = None,
    ) -> User:
        body: dict[str, Any] = {
            "accountEnabled": account_enabled,
            "displayName": display_name,
            "mailNickname": mail_nickname,
            "userPrincipalName": user_principal_name,
        }
        if usage_location is not None:
            body["usageLocation"] = usage_location
        if password is not None:
            body["passwordProfile"] = {
                "password": password.get_secret_value(),
                "forceChangePasswordNextSignIn": False,
            }
        return await self._api.post(GRAPH_ROUTES.users, User, json=body, expected={201})

    async def get_user(self, id_or_upn: str) -> User:
        return await self._api.get(expand_path(GRAPH_ROUTES.user, user_id=id_or_upn), User)

    async def find_user(self, id_or_upn: str) -> User | None:
        try:
            return await self.get_user(id_or_upn)
        except NotFound:
            return None

    async def update_user(self, user_id: str, **fields: object) -> None:
        """PATCH the given fields, named in snake_case (``usage_location="US"``)."""
        if not fields:
            raise ValueError("update_user needs at least one field")
        body = {to_camel(name): value for name, value in fields.items()}
        await self._api.request("PATCH", expand_path(GRAPH_ROUTES.user, user_id=user_id), json=body)

    async def set_usage_location(self, user_id: str, country: str) -> None:
        await self.update_user(user_id, usage_location=country)

    async def delete_user(self, user_id: str) -> None:
        await self._api.request("DELETE", expand_path(GRAPH_ROUTES.user, user_id=user_id))

    async def list_subscribed_skus(self) -> list[SubscribedSku]:
        page = await self._api.get(GRAPH_ROUTES.subscribed_skus, _Page)
        return [SubscribedSku.model_validate(item) for item in page.value]

    async def assign_license(
        self, user_id: str, sku_id: str, *, disabled_plans: list[str] | None = None
    ) -> User:
        body = {
            "addLicenses": [{"skuId": sku_id, "disabledPlans": disabled_plans or []}],
            "removeLicenses": [],
        }
        # Assigning a license the user already has changes nothing, so a repeat is safe.
        return await self._api.post(
            expand_path(GRAPH_ROUTES.assign_license, user_id=user_id),
            User,
            json=body,
            idempotent=True,
        )

    async def remove_license(self, user_id: str, sku_id: str) -> User:
        body = {"addLicenses": [], "removeLicenses": [sku_id]}
        # Not idempotent: a repeat after a lost answer removes a license the user no longer
        # has, which Graph refuses with a 400 although the removal worked.
        return await self._api.post(
            expand_path(GRAPH_ROUTES.assign_license, user_id=user_id),
            User,
            json=body,
            idempotent=False,
        )

    async def list_number_assignments(
        self, *, filter: str | None = None, top: int | None = None
    ) -> list[NumberAssignment]:
        """Every matching number, across all pages; ``top`` is the page size (1..1000)."""
        params: dict[str, str | int] = {}
        if filter is not None:
            params["$filter"] = filter
        if top is not None:
            if not 1 <= top <= MAX_TOP:
                raise ValueError(f"top must be between 1 and {MAX_TOP}, got {top}")
            params["$top"] = top
        numbers: list[NumberAssignment] = []
        async for page in self._api.iter_pages(GRAPH_ROUTES.number_assignments, params):
            parsed = _Page.model_validate(page)
            numbers.extend(NumberAssignment.model_validate(item) for item in parsed.value)
        return numbers

    async def get_number_assignment(self, telephone_number: str) -> NumberAssignment:
        path = expand_path(
            GRAPH_ROUTES.number_assignment,
            assignment_id=number_assignment_id(telephone_number),
        )
        return await self._api.get(path, NumberAssignment)

    async def find_number_assignment(self, telephone_number: str) -> NumberAssignment | None:
        try:
            return await self.get_number_assignment(telephone_number)
        except NotFound:
            return None

    async def assign_number(
        self,
        telephone_number: str,
        target_id: str,
        number_type: str,
        category: str | None = None,
    ) -> str:
        """Start binding the number to the account; returns the operation id to poll."""
        body = {
            "telephoneNumber": telephone_number,
            "assignmentTargetId": target_id,
            "numberType": number_type,
        }
        if category is not None:
            body["assignmentCategory"] = category
        return await self._start_operation(GRAPH_ROUTES.assign_number, body)

    async def unassign_number(self, telephone_number: str, number_type: str) -> str:
        body = {"telephoneNumber": telephone_number, "numberType": number_type}
        return await self._start_operation(GRAPH_ROUTES.unassign_number, body)

    async def get_operation(self, operation_id: str) -> LongRunningOperation:
        path = expand_path(GRAPH_ROUTES.operation, operation_id=operation_id)
        return await self._api.get(path, LongRunningOperation)

    async def _start_operation(self, path: str, body: dict[str, str]) -> str:
        # Not idempotent: after a lost response the number may already be (un)assigned,
        # which the caller settles by reading the assignment, not by re-posting.
        response = await self._api.request(
            "POST", path, json=body, idempotent=False, expected={202}
        )
        location = response.headers.get("Location")
        if not location:
            raise UnexpectedResponse(f"POST {path} answered 202 without a Location", status=202)
        return operation_id_from_location(location)
