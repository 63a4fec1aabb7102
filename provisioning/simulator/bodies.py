"""The JSON bodies the simulated endpoints accept, validated as strictly as the real service."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

from provisioning.simulator.catalogue import CatalogueNumberType
from provisioning.simulator.errors import SimError
from provisioning.simulator.wire import CODE_BAD_REQUEST

Guid = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
]
InventoryNumberType = Literal["callingPlan", "directRouting", "operatorConnect"]


class Body(BaseModel):
    model_config = ConfigDict(
        strict=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )
    resource: ClassVar[str] = "request"


class PasswordProfile(Body):
    resource: ClassVar[str] = "passwordProfile"
    password: str
    force_change_password_next_sign_in: bool = True
    force_change_password_next_sign_in_with_mfa: bool = False


class NewUser(Body):
    resource: ClassVar[str] = "microsoft.graph.user"
    account_enabled: bool
    display_name: str
    mail_nickname: str
    user_principal_name: str
    usage_location: str | None = None
    password_profile: PasswordProfile | None = None


class UserPatch(Body):
    resource: ClassVar[str] = "microsoft.graph.user"
    account_enabled: bool | None = None
    display_name: str | None = None
    mail_nickname: str | None = None
    usage_location: str | None = None


class LicenseToAdd(Body):
    resource: ClassVar[str] = "microsoft.graph.assignedLicense"
    sku_id: Guid
    disabled_plans: list[Guid] = Field(default_factory=list)


class AssignLicense(Body):
    resource: ClassVar[str] = "assignLicense"
    add_licenses: list[LicenseToAdd]
    remove_licenses: list[Guid]


class AssignNumber(Body):
    resource: ClassVar[str] = "assignNumber"
    telephone_number: str
    assignment_target_id: Guid
    number_type: InventoryNumberType
    assignment_category: Literal["primary", "private", "alternate"] | None = None


class UnassignNumber(Body):
    resource: ClassVar[str] = "unassignNumber"
    telephone_number: str
    number_type: InventoryNumberType


class NewSearchOrder(Body):
    resource: ClassVar[str] = "searchOrder"
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    description: Annotated[str, StringConstraints(max_length=256)] = ""
    country_code: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
    number_type: CatalogueNumberType
    quantity: int = Field(ge=1, le=500)
    area_code: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,5}$")] | None = None
    number_prefix: Annotated[str, StringConstraints(pattern=r"^[0-9]{1,12}$")] | None = None
    civic_address_id: str | None = None


class NewApplicationInstance(Body):
    resource: ClassVar[str] = "applicationInstance"
    user_principal_name: str
    display_name: str
    application_id: Guid


class ApplicationInstancePatch(Body):
    resource: ClassVar[str] = "applicationInstance"
    application_id: Guid


class LicenseTopUp(Body):
    resource: ClassVar[str] = "licenses"
    sku_part_number: str
    add_units: int


_M = TypeVar("_M", bound=BaseModel)


def parse_body(model: type[_M], data: Any) -> _M:
    """The validated body, or a 400 `Request_BadRequest` whose message names the field."""
    if not isinstance(data, dict):
        raise SimError(400, CODE_BAD_REQUEST, "The request body must be a JSON object.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise SimError(400, CODE_BAD_REQUEST, describe(exc, model)) from exc


def describe(exc: ValidationError, model: type[BaseModel]) -> str:
    resource = getattr(model, "resource", model.__name__)
    messages = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"])
        if error["type"] == "missing":
            messages.append(f"Required property '{path}' is missing.")
        elif error["type"] == "extra_forbidden":
            messages.append(f"Property '{path}' does not exist on type '{resource}'.")
        else:
            reason = error["msg"].removeprefix("Value error, ")
            messages.append(f"Invalid value specified for property '{path}': {reason}.")
    return " ".join(messages)
