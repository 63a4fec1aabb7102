"""PhoneDesk's domain: what a requester asks for, the stored request and its lifecycle.

These models are shared by the bot, the dialogs, the workflow and the store, so they hold
no I/O. Every model is frozen: a change is a new value, which is what the store's
compare-and-set and the workflow's replayed steps expect.

Timestamps are always timezone-aware UTC. A naive datetime is refused rather than guessed,
because a guess made in one process is wrong in another.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Final, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from provisioning.domain.phone_numbers import check_e164, national_area_code

__all__ = [
    "ALLOWED_TRANSITIONS",
    "AUTO_ATTENDANT_APPLICATION_ID",
    "CALL_QUEUE_APPLICATION_ID",
    "ISO_COUNTRY_CODES",
    "MAX_DISPLAY_NAME_LENGTH",
    "MAX_UPN_LENGTH",
    "MAX_UPN_LOCAL_LENGTH",
    "OPEN_STATUSES",
    "REQUEST_ID_ALPHABET",
    "REQUEST_ID_LENGTH",
    "REQUEST_ID_PREFIX",
    "TERMINAL_STATUSES",
    "AccountType",
    "AuditEntry",
    "AuditResult",
    "Decision",
    "Failure",
    "NumberRequest",
    "NumberType",
    "Person",
    "ProvisioningResult",
    "Request",
    "RequestId",
    "RequestStatus",
    "Stage",
    "StageEvent",
    "StageState",
    "StageStatus",
    "TelephoneNumber",
    "UtcDatetime",
    "can_transition",
    "derive_upn",
    "mail_nickname",
    "new_request_id",
    "parse_request_id",
    "upn_alternatives",
    "utc_now",
    "validate_upn",
]


def utc_now() -> datetime:
    return datetime.now(UTC)


# Categories that render as nothing or reorder what follows: controls (Cc), format characters
# such as bidi overrides and zero-width joiners (Cf), line and paragraph separators (Zl, Zp),
# and unassigned or private-use code points whose look nobody can predict.
_INVISIBLE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _invisible(ch: str) -> bool:
    return unicodedata.category(ch) in _INVISIBLE_CATEGORIES


def check_visible(name: str) -> None:
    """Refuse a display name that could look like something else, saying which character."""
    for position, ch in enumerate(name, start=1):
        if _invisible(ch):
            label = unicodedata.name(ch, "(a control character)")
            raise ValueError(
                "display name must not contain invisible or control characters, which can "
                f"make it look like another name; found U+{ord(ch):04X} {label} at position "
                f"{position}"
            )


def strip_invisible(name: str) -> str:
    """A name from Teams, with anything that could disguise it removed."""
    return "".join(ch for ch in name if not _invisible(ch)).strip()


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""An aware datetime, normalised to UTC; naive input is a validation error."""


TelephoneNumber = Annotated[str, AfterValidator(check_e164)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- lifecycle -------------------------------------------------------------------------


class RequestStatus(StrEnum):
    """Where a submitted request is. Drafts are not here: they live in dialog state."""

    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    PROVISIONING = "provisioning"
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    RELEASED = "released"

    @property
    def label(self) -> str:
        return self.value.replace("_", " ").capitalize()

    @property
    def is_terminal(self) -> bool:
        """Nothing can happen to the request any more."""
        return self in TERMINAL_STATUSES

    @property
    def is_open(self) -> bool:
        """The request is still in flight: it holds work or reservations and can be cancelled.

        A completed request is neither open nor terminal: it owns a live number that can
        later be released.
        """
        return self in OPEN_STATUSES


_S = RequestStatus

ALLOWED_TRANSITIONS: Mapping[RequestStatus, frozenset[RequestStatus]] = MappingProxyType(
    {
        _S.PENDING_APPROVAL: frozenset({_S.APPROVED, _S.REJECTED, _S.EXPIRED, _S.CANCELLED}),
        _S.APPROVED: frozenset({_S.PROVISIONING, _S.CANCELLED}),
        _S.PROVISIONING: frozenset({_S.COMPLETED, _S.FAILED, _S.CANCELLED}),
        _S.FAILED: frozenset({_S.PROVISIONING, _S.CANCELLED}),
        _S.COMPLETED: frozenset({_S.RELEASED}),
        _S.REJECTED: frozenset(),
        _S.EXPIRED: frozenset(),
        _S.CANCELLED: frozenset(),
        _S.RELEASED: frozenset(),
    }
)

TERMINAL_STATUSES: frozenset[RequestStatus] = frozenset(
    status for status, targets in ALLOWED_TRANSITIONS.items() if not targets
)
OPEN_STATUSES: frozenset[RequestStatus] = frozenset(
    status for status, targets in ALLOWED_TRANSITIONS.items() if _S.CANCELLED in targets
)

# Requests whose UPN is spoken for: no other request may be given it. A failed request
# keeps its account for the retry; a completed one owns it until it is released.
UPN_HOLDING_STATUSES: frozenset[RequestStatus] = OPEN_STATUSES | {_S.FAILED, _S.COMPLETED}


def can_transition(current: RequestStatus, new: RequestStatus) -> bool:
    return new in ALLOWED_TRANSITIONS[current]


class Stage(StrEnum):
    """The four provisioning stages, declared in the order they run."""

    ACQUIRE_NUMBER = "acquire_number"
    CREATE_ACCOUNT = "create_account"
    ASSIGN_LICENSE = "assign_license"
    BIND_NUMBER = "bind_number"

    @property
    def label(self) -> str:
        return _STAGE_LABELS[self]

    @property
    def number(self) -> int:
        """1-based position, as shown to people ("stage 2 of 4")."""
        return list(Stage).index(self) + 1


_STAGE_LABELS: Mapping[Stage, str] = {
    Stage.ACQUIRE_NUMBER: "Acquire number",
    Stage.CREATE_ACCOUNT: "Create resource account",
    Stage.ASSIGN_LICENSE: "Assign license",
    Stage.BIND_NUMBER: "Bind number",
}


class StageStatus(StrEnum):
    """State of one stage.

    ``cancelled`` marks stages that will not run because the request was cancelled, so a
    card can tell them apart from stages still waiting. There is no ``skipped``: a stage
    with nothing to do (a free number already in inventory, a license already assigned)
    still ends ``done``, with the reason in its detail.
    """

    WAITING = "waiting"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def label(self) -> str:
        return self.value.capitalize()


# --- what a requester asks for -----------------------------------------------------------

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


class NumberRequest(_Frozen):
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


# --- user principal names ----------------------------------------------------------------

MAX_UPN_LENGTH = 113
MAX_UPN_LOCAL_LENGTH = 64

_UPN_LOCAL_CHARS = re.compile(r"[A-Za-z0-9'.\-_!#^~]+")
_DOMAIN = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)
_MAX_ALTERNATIVES = 99

# Letters NFKD does not decompose into ASCII; typographic apostrophes fold to "'" so the
# apostrophe rule below catches them too.
_TRANSLITERATIONS = str.maketrans(
    {
        "ß": "ss",
        "ẞ": "SS",
        "Æ": "AE",
        "æ": "ae",
        "Ø": "O",
        "ø": "o",
        "Œ": "OE",
        "œ": "oe",
        "Ł": "L",
        "ł": "l",
        "Đ": "D",
        "đ": "d",
        "Ð": "D",
        "ð": "d",
        "Þ": "TH",
        "þ": "th",
        "\N{LATIN SMALL LETTER DOTLESS I}": "i",
        "\N{RIGHT SINGLE QUOTATION MARK}": "'",
        "\N{LEFT SINGLE QUOTATION MARK}": "'",
        "`": "'",
    }
)


def _normalize_domain(domain: str) -> str:
    cleaned = domain.strip().removeprefix("@").lower()
    if not _DOMAIN.fullmatch(cleaned):
        raise ValueError(f"'{domain}' is not a domain name such as contoso.onmicrosoft.com")
    return cleaned


def validate_upn(upn: str) -> str:
    """Check a UPN against Entra's rules; return it unchanged or raise ValueError saying why."""
    local, at, domain = upn.rpartition("@")
    if not at or not local:
        raise ValueError(f"'{upn}' is not of the form name@domain")
    _normalize_domain(domain)
    if len(upn) > MAX_UPN_LENGTH:
        raise ValueError(f"'{upn}' is {len(upn)} characters; at most {MAX_UPN_LENGTH} allowed")
    if len(local) > MAX_UPN_LOCAL_LENGTH:
        raise ValueError(
            f"the name before '@' is {len(local)} characters; "
            f"at most {MAX_UPN_LOCAL_LENGTH} allowed"
        )
    if not _UPN_LOCAL_CHARS.fullmatch(local):
        raise ValueError(f"'{local}' may only contain letters A-Z, digits and ' . - _ ! # ^ ~")
    if local.startswith("."):
        raise ValueError(f"'{local}' must not start with '.'")
    if local.endswith("."):
        raise ValueError(f"'{local}' must not end with '.' right before '@'")
    if ".." in local:
        raise ValueError(f"'{local}' must not contain '..'")
    return upn


def mail_nickname(upn: str) -> str:
    """Graph's mailNickname for an account: its UPN's local part (≤ 64 by the UPN rules)."""
    return upn.rpartition("@")[0]


def _local_part_from(display_name: str) -> str:
    """Reduce a display name to a tidy, lower-case UPN local part.

    Accents are dropped (é -> e), apostrophes vanish (O'Brien -> obrien) and every run of
    anything else that is not a letter, digit, '-' or '_' becomes a single '.'. The other
    characters Entra allows (' ! # ^ ~) are never produced: they are legal but trip up mail
    clients and scripts, and nobody expects them in a generated name.
    """
    text = display_name.translate(_TRANSLITERATIONS)
    text = "".join(
        ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch)
    )
    text = text.lower().replace("'", "")
    text = re.sub(r"[^a-z0-9_-]+", ".", text)
    return text.strip(".-_")


def _local_limit(domain: str) -> int:
    return min(MAX_UPN_LOCAL_LENGTH, MAX_UPN_LENGTH - 1 - len(domain))


def _fit(local: str, limit: int) -> str:
    return local[:limit].rstrip(".-_")


def _taken_predicate(taken: Callable[[str], bool] | Iterable[str]) -> Callable[[str], bool]:
    if callable(taken):
        return taken
    folded = {upn.casefold() for upn in taken}
    return lambda upn: upn.casefold() in folded


def upn_alternatives(upn: str, *, count: int = 5) -> list[str]:
    """Propose ``name2@domain``, ``name3@domain``, … for a UPN that is already taken.

    The name is shortened when needed so every proposal still fits Entra's limits.
    """
    local, _, domain = validate_upn(upn).rpartition("@")
    limit = _local_limit(domain)
    proposals = []
    for n in range(2, count + 2):
        suffix = str(n)
        stem = _fit(local, limit - len(suffix))
        if not stem:
            break
        proposals.append(f"{stem}{suffix}@{domain}")
    return proposals


def derive_upn(
    display_name: str,
    domain: str,
    *,
    taken: Callable[[str], bool] | Iterable[str] = (),
    prefix: str = "",
) -> str:
    """Derive a valid, unused UPN for a resource account from its display name.

    "Contoso Support (Émilie)" at contoso.onmicrosoft.com gives
    ``contoso.support.emilie@contoso.onmicrosoft.com``. ``prefix`` (e.g. ``"ivr."``) is put
    in front verbatim so an organisation can make resource accounts easy to spot. When the
    name is taken (``taken`` is a set of UPNs or a predicate, compared case-insensitively)
    the first free of ``name2``, ``name3``, … is returned. The result depends only on the
    arguments.

    Raises ValueError when the display name has nothing usable in a user name (e.g. only
    non-Latin script), the domain is invalid, or every alternative is taken.
    """
    domain = _normalize_domain(domain)
    limit = _local_limit(domain)
    if limit < 1:
        raise ValueError(f"domain '{domain}' is too long to leave room for a user name")
    if prefix and not _UPN_LOCAL_CHARS.fullmatch(prefix):
        raise ValueError(f"UPN prefix '{prefix}' contains characters Entra does not allow")
    stem = _local_part_from(display_name)
    if not stem:
        raise ValueError(
            f"display name '{display_name}' has no letters or digits usable in a user name; "
            "include some Latin letters or digits"
        )
    local = _fit(f"{prefix}{stem}", limit).lstrip(".")
    if not local:
        raise ValueError(
            f"cannot build a user name from '{display_name}' within {limit} characters"
        )
    upn = validate_upn(f"{local}@{domain}")
    is_taken = _taken_predicate(taken)
    if not is_taken(upn):
        return upn
    for candidate in upn_alternatives(upn, count=_MAX_ALTERNATIVES):
        if not is_taken(candidate):
            return candidate
    raise ValueError(f"{upn} and its numbered alternatives are all taken; choose another name")


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


class Person(_Frozen):
    """Someone acting in Teams, identified by their Entra object id from the activity."""

    aad_object_id: Annotated[str, StringConstraints(min_length=1)]
    display_name: str = ""

    @field_validator("display_name")
    @classmethod
    def _no_disguise(cls, value: str) -> str:
        return strip_invisible(value)


class Decision(_Frozen):
    approved: bool
    by: Person
    at: UtcDatetime
    reason: str | None = None

    @model_validator(mode="after")
    def _rejection_has_reason(self) -> Self:
        if not self.approved and not (self.reason and self.reason.strip()):
            raise ValueError("a rejection needs a reason")
        return self


class ProvisioningResult(_Frozen):
    """What the stages produced so far; filled in stage by stage."""

    telephone_number: TelephoneNumber | None = None
    order_id: str | None = None
    account_id: str | None = None
    upn: str | None = None
    sku_id: str | None = None
    sku_part_number: str | None = None
    operation_id: str | None = None


class Failure(_Frozen):
    stage: Stage
    reason: str
    retryable: bool
    code: str | None = None
    """The Microsoft error code behind the failure, when there was one."""


class StageState(_Frozen):
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


class StageEvent(_Frozen):
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


class AuditResult(StrEnum):
    OK = "ok"
    REFUSED = "refused"
    """The actor was not allowed, or the request was in the wrong state; nothing changed."""
    FAILED = "failed"
    """It was attempted and did not work."""


class AuditAction(StrEnum):
    """Every action the audit log records. The log is a record for people: nothing reads
    these back to decide what to do (the stages keep a ``StageJournal`` for that)."""

    REQUEST_SUBMITTED = "request.submitted"
    REQUEST_APPROVED = "request.approved"
    REQUEST_REJECTED = "request.rejected"
    REQUEST_EXPIRED = "request.expired"
    REQUEST_CANCELLED = "request.cancelled"
    REQUEST_RETRIED = "request.retried"
    REQUEST_RELEASED = "request.released"
    APPROVALS_CHANNEL_REGISTERED = "approvals_channel.registered"
    PROVISIONING_STARTED = "provisioning.started"
    PROVISIONING_COMPLETED = "provisioning.completed"
    PROVISIONING_FAILED = "provisioning.failed"
    CANCELLATION_COMPENSATED = "cancellation.compensated"
    RELEASE_COMPLETED = "release.completed"
    ORDER_REQUESTED = "order.requested"
    ORDER_PLACED = "order.placed"
    ORDER_COMPLETED = "order.completed"
    ORDER_LOST = "order.lost"
    ORDER_FAILED = "order.failed"
    ORDER_CANCELLED = "order.cancelled"
    NUMBER_CLAIMED = "number.claimed"
    NUMBER_RELEASED = "number.released"
    ACCOUNT_CREATE_REQUESTED = "account.create.requested"
    ACCOUNT_CREATE_REFUSED = "account.create.refused"
    ACCOUNT_CREATED = "account.created"
    ACCOUNT_SYNCED = "account.synced"
    ACCOUNT_DELETED = "account.deleted"
    USAGE_LOCATION_SET = "usage_location.set"
    LICENSE_ASSIGNED = "license.assigned"
    LICENSE_UNAVAILABLE = "license.unavailable"
    LICENSE_REMOVED = "license.removed"
    NUMBER_ASSIGN_REQUESTED = "number.assign.requested"
    NUMBER_ASSIGN_FAILED = "number.assign.failed"
    NUMBER_BOUND = "number.bound"
    NUMBER_UNBIND_FAILED = "number.unbind"
    NUMBER_UNBOUND = "number.unbound"


AUDITED_ONCE: Final[Mapping[AuditAction, str]] = MappingProxyType(
    {
        # Effects a pass that crashed may have caused without auditing: the next pass
        # audits them, once per subject (the detail named here).
        AuditAction.ORDER_PLACED: "order",
        AuditAction.ORDER_COMPLETED: "order",
        AuditAction.NUMBER_CLAIMED: "number",
        AuditAction.ACCOUNT_CREATED: "account_id",
        AuditAction.ACCOUNT_SYNCED: "account_id",
        AuditAction.USAGE_LOCATION_SET: "account_id",
        AuditAction.LICENSE_ASSIGNED: "sku",
        AuditAction.NUMBER_BOUND: "number",
    }
)


def once_key(action: AuditAction, details: Mapping[str, JsonValue]) -> str:
    """What makes an ``AUDITED_ONCE`` entry the same effect as an earlier one."""
    return f"{action.value}:{details[AUDITED_ONCE[action]]}"


class StageJournal(_Frozen):
    """What the stages remember between passes, beyond the result they produced.

    Written before the call it is about, so a pass after a crash that lost the answer
    still knows what it asked Microsoft for.
    """

    orders_asked: int = 0
    """How many number orders the request has asked for (their names end in 1..n)."""
    account_asked_upn: str | None = None
    """The UPN whose account creation was asked for, until that UPN was refused."""
    synced_account_id: str | None = None
    deleted_account_id: str | None = None
    audited: frozenset[str] = frozenset()
    """``once_key``s of the effects audited so far."""


class AuditEntry(_Frozen):
    id: int
    request_id: str | None
    actor: str
    """An Entra object id, or a system actor such as ``workflow``."""
    action: str
    at: UtcDatetime
    result: AuditResult
    details: dict[str, JsonValue] = Field(default_factory=dict)
