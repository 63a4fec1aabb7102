"""What a requester asks for, and the request as stored: who asked, and how far it got."""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import (
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from provisioning.domain.lifecycle import RequestStatus, Stage, StageStatus
from provisioning.domain.phone_numbers import national_area_code
from provisioning.domain.values import (
    Frozen,
    TelephoneNumber,
    UtcDatetime,
    check_visible,
    strip_invisible,
)

AUTO_ATTENDANT_APPLICATION_ID = "ce933385-9390-45d1-9512-c8d228074e07"
CALL_QUEUE_APPLICATION_ID = "11cd3e2e-fccb-42ad-ad00-878b93575e07"


class AccountType(StrEnum):
    """What the resource account fronts; decides the ApplicationId bound to it."""

    IVR_BOT = "ivr_bot"
    AUTO_ATTENDANT = "auto_attendant"
    CALL_QUEUE = "call_queue"

    @property
    def label(self) -> str:
        return {
            AccountType.IVR_BOT: "IVR bot",
            AccountType.AUTO_ATTENDANT: "Auto attendant",
            AccountType.CALL_QUEUE: "Call queue",
        }[self]

    def application_id(self, ivr_bot_application_id: str) -> str:
        """The ApplicationId for this type; the IVR bot's id is deployment configuration."""
        if self is AccountType.AUTO_ATTENDANT:
            return AUTO_ATTENDANT_APPLICATION_ID
        if self is AccountType.CALL_QUEUE:
            return CALL_QUEUE_APPLICATION_ID
        return ivr_bot_application_id


class NumberType(StrEnum):
    """Teams service number types, as named by the number-offer API."""

    AUTO_ATTENDANT_TOLL = "AutoAttendantToll"
    AUTO_ATTENDANT_TOLL_FREE = "AutoAttendantTollFree"
    CALL_QUEUE_TOLL = "CallQueueToll"
    CALL_QUEUE_TOLL_FREE = "CallQueueTollFree"

    @property
    def is_toll_free(self) -> bool:
        return self.value.endswith("TollFree")


# ISO 3166-1 alpha-2, officially assigned codes, plus XK (Kosovo), which Microsoft 365
# accepts as a usage location.
_ISO_COUNTRY_CODES_TEXT = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ
    BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ
    CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ
    DE DJ DK DM DO DZ
    EC EE EG EH ER ES ET
    FI FJ FK FM FO FR
    GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY
    HK HM HN HR HT HU
    ID IE IL IM IN IO IQ IR IS IT
    JE JM JO JP
    KE KG KH KI KM KN KP KR KW KY KZ
    LA LB LC LI LK LR LS LT LU LV LY
    MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ
    NA NC NE NF NG NI NL NO NP NR NU NZ
    OM
    PA PE PF PG PH PK PL PM PN PR PS PT PW PY
    QA
    RE RO RS RU RW
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ
    TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ
    UA UG UM US UY UZ
    VA VC VE VG VI VN VU
    WF WS
    XK
    YE YT
    ZA ZM ZW
"""
ISO_COUNTRY_CODES: frozenset[str] = frozenset(_ISO_COUNTRY_CODES_TEXT.split())

MAX_DISPLAY_NAME_LENGTH = 256


class NumberRequest(Frozen):
    """What a requester asks for; the dialog and the Adaptive Card form both build one."""

    country: str
    area_code: str | None = None
    display_name: str
    number_type: NumberType = NumberType.AUTO_ATTENDANT_TOLL
    account_type: AccountType = AccountType.IVR_BOT

    @field_validator("country")
    @classmethod
    def _country_is_iso(cls, value: str) -> str:
        code = value.strip().upper()
        if code not in ISO_COUNTRY_CODES:
            raise ValueError(f"'{value}' is not an ISO 3166 two-letter country code, e.g. US")
        return code

    @field_validator("area_code", mode="before")
    @classmethod
    def _area_code_is_digits(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        code = value.strip()
        if code.casefold() in ("", "any"):
            return None
        if not re.fullmatch(r"\d{1,8}", code):
            raise ValueError(f"area code '{value}' must be digits, e.g. 425, or 'any'")
        return code

    @field_validator("area_code")
    @classmethod
    def _area_code_as_numbers_carry_it(cls, value: str | None, info: ValidationInfo) -> str | None:
        # Stored as the tenant lists it ("3" for Tokyo), however the requester wrote it ("03").
        country = info.data.get("country")
        if value is None or not isinstance(country, str):
            return value
        return national_area_code(country, value)

    @field_validator("display_name")
    @classmethod
    def _display_name_fits_entra(cls, value: str) -> str:
        name = value.strip()
        if not name:
            raise ValueError("display name must not be blank")
        if len(name) > MAX_DISPLAY_NAME_LENGTH:
            raise ValueError(
                f"display name is {len(name)} characters; "
                f"Microsoft 365 allows at most {MAX_DISPLAY_NAME_LENGTH}"
            )
        check_visible(name)
        return name


# --- the stored request ------------------------------------------------------------------

REQUEST_ID_PREFIX = "PD-"
# No 0/O, 1/I/L or U: ids are read aloud and typed from screenshots.
REQUEST_ID_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
REQUEST_ID_LENGTH = 4
_REQUEST_ID = re.compile(rf"{REQUEST_ID_PREFIX}[{REQUEST_ID_ALPHABET}]{{{REQUEST_ID_LENGTH}}}")

RequestId = Annotated[str, StringConstraints(pattern=rf"^{_REQUEST_ID.pattern}$")]


def new_request_id() -> str:
    """A random id such as ``PD-7K3Q``; not unique by itself, the store checks collisions."""
    body = "".join(secrets.choice(REQUEST_ID_ALPHABET) for _ in range(REQUEST_ID_LENGTH))
    return f"{REQUEST_ID_PREFIX}{body}"


def parse_request_id(text: str) -> str:
    """Read a request id as a person types it: any case, with or without the ``PD-``."""
    candidate = text.strip().upper()
    if not candidate.startswith(REQUEST_ID_PREFIX):
        candidate = REQUEST_ID_PREFIX + candidate
    if not _REQUEST_ID.fullmatch(candidate):
        raise ValueError(f"'{text}' is not a request id such as PD-7K3Q")
    return candidate


class Person(Frozen):
    """Someone acting in Teams, identified by their Entra object id from the activity."""

    aad_object_id: Annotated[str, StringConstraints(min_length=1)]
    display_name: str = ""

    @field_validator("display_name")
    @classmethod
    def _no_disguise(cls, value: str) -> str:
        return strip_invisible(value)


class Decision(Frozen):
    approved: bool
    by: Person
    at: UtcDatetime
    reason: str | None = None

    @model_validator(mode="after")
    def _rejection_has_reason(self) -> Self:
        if not self.approved and not (self.reason and self.reason.strip()):
            raise ValueError("a rejection needs a reason")
        return self


class ProvisioningResult(Frozen):
    """What the stages produced so far; filled in stage by stage."""

    telephone_number: TelephoneNumber | None = None
    order_id: str | None = None
    account_id: str | None = None
    upn: str | None = None
    sku_id: str | None = None
    sku_part_number: str | None = None
    operation_id: str | None = None


class Failure(Frozen):
    stage: Stage
    reason: str
    retryable: bool
    code: str | None = None
    """The Microsoft error code behind the failure, when there was one."""


class StageState(Frozen):
    stage: Stage
    status: StageStatus = StageStatus.WAITING
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    detail: str | None = None
    error: str | None = None


def _initial_stages() -> tuple[StageState, ...]:
    return tuple(StageState(stage=stage) for stage in Stage)


class Request(NumberRequest):
    """A submitted request as stored: what was asked, by whom, and how far it got."""

    id: RequestId
    tenant_id: str
    requester: Person
    status: RequestStatus = RequestStatus.PENDING_APPROVAL
    created_at: UtcDatetime
    updated_at: UtcDatetime
    decision: Decision | None = None
    result: ProvisioningResult = Field(default_factory=ProvisioningResult)
    failure: Failure | None = None
    stages: tuple[StageState, ...] = Field(default_factory=_initial_stages)

    @field_validator("stages")
    @classmethod
    def _one_state_per_stage_in_order(cls, value: tuple[StageState, ...]) -> tuple[StageState, ...]:
        by_stage = {state.stage: state for state in value}
        if len(by_stage) != len(value):
            raise ValueError("each stage may appear only once")
        return tuple(by_stage.get(stage, StageState(stage=stage)) for stage in Stage)

    def stage(self, stage: Stage) -> StageState:
        return self.stages[stage.number - 1]

    def with_stage(self, state: StageState) -> Request:
        stages = tuple(state if s.stage is state.stage else s for s in self.stages)
        return self.model_copy(update={"stages": stages})


class StageEvent(Frozen):
    """One stage changing state: published by the workflow, rendered by the bot."""

    request_id: RequestId
    stage: Stage
    status: StageStatus
    detail: str | None = None
    error: str | None = None
    at: UtcDatetime

    @classmethod
    def from_state(cls, request_id: str, state: StageState, at: datetime) -> StageEvent:
        return cls(
            request_id=request_id,
            stage=state.stage,
            status=state.status,
            detail=state.detail,
            error=state.error,
            at=at,
        )
