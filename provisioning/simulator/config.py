"""Simulator settings: the knobs a test may change at run time, and the rest fixed at start.

Every duration is in real Microsoft seconds; ``time_scale`` decides how long it lasts here.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from provisioning.simulator.catalogue import COUNTRIES_BY_CODE, CatalogueNumberType

# Every knob that makes the tenant take time, at zero: a tenant where no wait means no
# poll, to count the calls a request needs at the least.
NO_TENANT_DELAYS: Mapping[str, float] = MappingProxyType(
    dict.fromkeys(
        (
            "propagation_min_s",
            "propagation_max_s",
            "consistency_window_s",
            "search_delay_s",
            "sync_delay_s",
            "operation_delay_s",
        ),
        0.0,
    )
)


class Knobs(BaseModel):
    """What `PATCH /_sim/knobs` may change while the simulator runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    propagation_min_s: float = Field(15 * 60, ge=0)
    propagation_max_s: float = Field(20 * 60, ge=0)
    consistency_window_s: float = Field(30, ge=0)
    reservation_expiry_s: float = Field(16 * 60, gt=0)
    search_delay_s: float = Field(10, ge=0)
    sync_delay_s: float = Field(60, ge=0)
    operation_delay_s: float = Field(20, ge=0)
    rate_limit_rps: float | None = Field(None, gt=0)
    """Real requests per second per API (Graph, Teams admin); None turns throttling off."""
    fault_rate_5xx: float = Field(0.0, ge=0, le=1)
    fault_rate_timeout: float = Field(0.0, ge=0, le=1)
    timeout_stall_s: float = Field(30, ge=0)
    """Real seconds an injected timeout holds the answer back; not time-scaled."""
    fault_retry_after_s: float = Field(2, ge=0)
    """The Retry-After of an injected 503, in simulated seconds."""

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.propagation_min_s > self.propagation_max_s:
            raise ValueError(
                f"propagation_min_s ({self.propagation_min_s}) must not exceed "
                f"propagation_max_s ({self.propagation_max_s})"
            )
        if self.fault_rate_5xx + self.fault_rate_timeout > 1:
            raise ValueError("fault_rate_5xx + fault_rate_timeout must not exceed 1")
        if self.search_delay_s >= self.reservation_expiry_s:
            raise ValueError(
                "search_delay_s must be shorter than reservation_expiry_s, "
                "or every order would expire before it is reserved"
            )
        return self


class StockOverride(BaseModel):
    """Sets the stock of one area code; an area code the catalogue lacks is added."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    country_code: str = Field(alias="countryCode")
    number_type: CatalogueNumberType = Field(alias="numberType")
    area_code: str = Field(alias="areaCode", pattern=r"^[0-9]{1,5}$")
    quantity: int = Field(ge=0)
    city: str | None = None

    @model_validator(mode="after")
    def _known_country(self) -> Self:
        if self.country_code not in COUNTRIES_BY_CODE:
            offered = ", ".join(sorted(COUNTRIES_BY_CODE))
            raise ValueError(f"country {self.country_code!r} is not offered; offered: {offered}")
        return self


class SimulatorConfig(Knobs):
    """Everything the simulator needs; nested in the app's settings."""

    seed: int = 1
    time_scale: float = Field(1.0, gt=0)
    tenant_id: str = "3f6c2a9e-8b41-4d7a-9c5e-1a2b3c4d5e6f"
    tenant_domain: str = "contoso.onmicrosoft.com"
    client_id: str = "7d8e9f01-2a3b-4c5d-8e9f-0a1b2c3d4e5f"
    client_secret: SecretStr = SecretStr("simulator-secret")
    phone_resource_units: int = Field(10, ge=0)
    e5_units: int = Field(5, ge=0)
    stock_overrides: tuple[StockOverride, ...] = ()

    def knobs(self) -> Knobs:
        return Knobs.model_validate(self.model_dump(include=set(Knobs.model_fields)))


class KnobError(ValueError):
    """A knob change that was refused; the message says why."""


def patch_knobs(current: Knobs, changes: Mapping[str, Any]) -> Knobs:
    """The knobs after ``changes``, validated as a whole."""
    for name in changes:
        if name in SimulatorConfig.model_fields and name not in Knobs.model_fields:
            raise KnobError(f"{name!r} is fixed when the simulator starts, not a runtime knob")
        if name not in Knobs.model_fields:
            known = ", ".join(Knobs.model_fields)
            raise KnobError(f"unknown knob {name!r}; the knobs are: {known}")
    try:
        return Knobs.model_validate({**current.model_dump(), **changes})
    except ValidationError as exc:
        raise KnobError(describe_validation_error(exc)) from exc


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
