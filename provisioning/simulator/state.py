"""The simulated Microsoft 365 tenant: directory, licenses, number inventory, orders, operations.

Pure logic on a `ScaledClock`: nothing here knows about HTTP. Time-driven changes (an order
getting reserved or expiring, an operation finishing) are timers that run, in due order,
before any call reads or changes the tenant, and each runs as of its own due time. That
makes the outcome depend only on the clock, never on when somebody happened to look.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Final, Literal

from provisioning.simulator.catalogue import (
    COUNTRIES_BY_CODE,
    NUMBER_TYPES,
    CatalogueNumberType,
    CountryOffer,
    new_number,
)
from provisioning.simulator.clock import ScaledClock
from provisioning.simulator.config import Knobs, SimulatorConfig, StockOverride
from provisioning.simulator.entra_limits import (
    check_display_name,
    check_mail_nickname,
    check_usage_location,
    check_user_principal_name,
)
from provisioning.simulator.errors import SimError
from provisioning.simulator.wire import (
    CODE_ACCOUNT_NOT_READY,
    CODE_BAD_REQUEST,
    CODE_INSUFFICIENT_LICENSES,
    CODE_INVALID_USAGE_LOCATION,
    CODE_NOT_FOUND,
    CODE_OBJECT_CONFLICT,
)

logger = logging.getLogger(__name__)

UNASSIGNED: Final = "unassigned"
USER_ASSIGNED: Final = "userAssigned"
VOICE_APP_ASSIGNED: Final = "voiceApplicationAssigned"
VOICE_APP_CAPABILITY: Final = "voiceApplicationAssignment"
SERVICE_CAPABILITIES: Final = (VOICE_APP_CAPABILITY, "conferenceAssignment")

OperationStatus = Literal["notStarted", "running", "succeeded", "failed"]
OrderStatus = Literal["Pending", "Reserved", "Completed", "Cancelled", "Expired", "Error"]


@dataclass
class Sku:
    sku_id: str
    part_number: str
    enabled: int
    phone_system_plan_id: str | None
    """The service plan that makes an account voice-capable; None if the SKU has none."""


PHONE_RESOURCE_SKU: Final = "PHONESYSTEM_VIRTUALUSER"
E5_SKU: Final = "ENTERPRISEPREMIUM"
FLOW_FREE_SKU: Final = "FLOW_FREE"


@dataclass
class AssignedLicense:
    sku_id: str
    disabled_plans: list[str]


@dataclass
class DirectoryUser:
    """A Graph user; with an application_id it is also a Teams application instance."""

    id: str
    user_principal_name: str
    display_name: str
    mail_nickname: str
    account_enabled: bool
    usage_location: str | None
    created_at: datetime
    visible_at: float
    propagated_at: float
    licenses: list[AssignedLicense] = field(default_factory=list)
    application_id: str | None = None
    synced_at: float | None = None

    @property
    def is_resource_account(self) -> bool:
        return self.application_id is not None

    def is_synced(self, instant: float) -> bool:
        return self.synced_at is not None and self.synced_at <= instant


@dataclass
class ServiceNumber:
    telephone_number: str
    number_type: str
    capabilities: tuple[str, ...]
    iso_country_code: str
    city: str
    assignment_status: str = UNASSIGNED
    assignment_target_id: str | None = None
    assignment_category: str | None = None
    activation_state: str = "activated"
    operator_id: str | None = None
    port_in_status: str | None = None

    @property
    def id(self) -> str:
        return self.telephone_number.removeprefix("+")


@dataclass
class OrderedNumber:
    telephone_number: str
    location: str


@dataclass
class SearchOrder:
    id: str
    name: str
    description: str
    country_code: str
    number_type: CatalogueNumberType
    area_code: str | None
    number_prefix: str | None
    quantity: int
    created_at: datetime
    reservation_expiry_date: datetime
    ready_at: float
    expires_at: float
    status: OrderStatus = "Pending"
    error_code: str = "NoError"
    telephone_numbers: list[OrderedNumber] = field(default_factory=list)


@dataclass
class NumberOperation:
    id: str
    action: Literal["assign", "unassign"]
    telephone_number: str
    number_type: str
    target_id: str | None
    category: str | None
    created_at: datetime
    started_at: float
    done_at: float
    outcome: Literal["succeeded", "failed"] | None = None
    status_detail: str | None = None

    def status(self, instant: float) -> OperationStatus:
        if self.outcome is not None:
            return self.outcome
        return "notStarted" if instant < self.started_at else "running"


@dataclass
class Counters:
    orders_created: int = 0
    orders_completed: int = 0
    orders_cancelled: int = 0
    accounts_created: int = 0
    accounts_deleted: int = 0
    licenses_assigned: int = 0
    licenses_removed: int = 0
    numbers_bound: int = 0
    numbers_unbound: int = 0
    throttled: int = 0
    faults_injected: int = 0

    def to_json(self) -> dict[str, int]:
        def camel(name: str) -> str:
            head, *rest = name.split("_")
            return head + "".join(part.title() for part in rest)

        return {camel(f.name): getattr(self, f.name) for f in fields(self)}


@dataclass
class AreaCode:
    area_code: str
    city: str
    national_length: int


StockKey = tuple[str, CatalogueNumberType, str]
_NUMBER_ATTEMPTS: Final = 1000


def _not_found(message: str) -> SimError:
    return SimError(404, CODE_NOT_FOUND, message)


def _bad_request(message: str) -> SimError:
    return SimError(400, CODE_BAD_REQUEST, message)


class TenantState:
    """One tenant. Every public method first lets due timers run."""

    def __init__(self, config: SimulatorConfig, clock: ScaledClock) -> None:
        self.config = config
        self.clock = clock
        self.knobs: Knobs = config.knobs()
        self.counters = Counters()
        self.verified_domains = frozenset({config.tenant_domain.lower()})
        self._ids = random.Random(f"{config.seed}:ids")
        self._numbers_rng = random.Random(f"{config.seed}:numbers")
        self._delays = random.Random(f"{config.seed}:delays")
        self._timers: list[tuple[float, int, Callable[[float], None]]] = []
        self._timer_seq = itertools.count()
        self.skus: dict[str, Sku] = {}
        self.users: dict[str, DirectoryUser] = {}
        self._upn_index: dict[str, str] = {}
        self.numbers: dict[str, ServiceNumber] = {}
        self.orders: dict[str, SearchOrder] = {}
        self.operations: dict[str, NumberOperation] = {}
        self.areas: dict[tuple[str, CatalogueNumberType], dict[str, AreaCode]] = {}
        self.stock: dict[StockKey, int] = {}
        self._seed_catalogue()
        self._seed_licenses()
        self._seed_directory_and_inventory()

    # -- seeding ------------------------------------------------------------------------

    def _seed_catalogue(self) -> None:
        for country in COUNTRIES_BY_CODE.values():
            for number_type in NUMBER_TYPES:
                areas = self.areas.setdefault((country.iso_code, number_type), {})
                for offer in country.areas(number_type):
                    areas[offer.area_code] = AreaCode(
                        offer.area_code, offer.city, offer.national_length
                    )
                    self.stock[(country.iso_code, number_type, offer.area_code)] = offer.stock
        for override in self.config.stock_overrides:
            self._apply_stock(override)

    def _seed_licenses(self) -> None:
        # Real skuIds and Phone System service plan ids, so that client code written against
        # a real tenant's subscribedSkus works unchanged.
        for sku in (
            Sku(
                "440eaaa8-b3e0-484b-a8be-62870b9ba70a",
                PHONE_RESOURCE_SKU,
                self.config.phone_resource_units,
                "f47330e9-c134-43b3-9993-e7f004506889",
            ),
            Sku(
                "c7df2760-2c81-4ef7-b578-5b5392b571df",
                E5_SKU,
                self.config.e5_units,
                "4828c8ec-dc2e-4779-b502-87ac9ce28ab7",
            ),
            Sku("f30db892-07e9-47e9-837c-80727f46fd3d", FLOW_FREE_SKU, 10000, None),
        ):
            self.skus[sku.sku_id] = sku

    def _seed_directory_and_inventory(self) -> None:
        long_ago = float("-inf")
        created = self.clock.now() - timedelta(days=400)
        e5 = self._sku_by_part(E5_SKU)
        people = [("Adele Vance", "AdeleV"), ("Alex Wilber", "AlexW")]
        person_ids = []
        for display_name, alias in people:
            person = DirectoryUser(
                id=self._new_id(),
                user_principal_name=f"{alias}@{self.config.tenant_domain}",
                display_name=display_name,
                mail_nickname=alias,
                account_enabled=True,
                usage_location="US",
                created_at=created,
                visible_at=long_ago,
                propagated_at=long_ago,
            )
            if self._free_units(e5) > 0:
                person.licenses.append(AssignedLicense(e5.sku_id, []))
            self._add_user(person)
            person_ids.append(person.id)

        us = COUNTRIES_BY_CODE["US"]
        for _ in range(3):
            self._add_number(
                ServiceNumber(
                    self._seed_number(us, "425"),
                    "callingPlan",
                    SERVICE_CAPABILITIES,
                    "US",
                    "Redmond",
                )
            )
        for person_id in person_ids:
            self._add_number(
                ServiceNumber(
                    self._seed_number(us, "206"),
                    "callingPlan",
                    ("userAssignment",),
                    "US",
                    "Seattle",
                    assignment_status=USER_ASSIGNED,
                    assignment_target_id=person_id,
                    assignment_category="primary",
                )
            )
        # Unassigned numbers that cannot take a voice application, to prove that callers
        # filter on capabilities and not only on assignmentStatus.
        self._add_number(
            ServiceNumber(
                self._seed_number(us, "425"),
                "directRouting",
                ("userAssignment",),
                "US",
                "Redmond",
            )
        )
        self._add_number(
            ServiceNumber(
                self._seed_number(us, "425"),
                "callingPlan",
                ("userAssignment",),
                "US",
                "Redmond",
            )
        )

    # -- time ---------------------------------------------------------------------------

    def _at(self, due: float, action: Callable[[float], None]) -> None:
        heapq.heappush(self._timers, (due, next(self._timer_seq), action))

    def _advance(self) -> float:
        now = self.clock.monotonic()
        while self._timers and self._timers[0][0] <= now:
            due, _, action = heapq.heappop(self._timers)
            action(due)
        return now

    def set_knobs(self, knobs: Knobs) -> None:
        self._advance()
        self.knobs = knobs
        logger.debug("knobs changed: %s", knobs.model_dump())

    # -- helpers --------------------------------------------------------------------------

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def _add_user(self, user: DirectoryUser) -> None:
        self.users[user.id] = user
        self._upn_index[user.user_principal_name.lower()] = user.id

    def _add_number(self, number: ServiceNumber) -> None:
        self.numbers[number.id] = number

    def _taken_numbers(self) -> set[str]:
        taken = {n.telephone_number for n in self.numbers.values()}
        for order in self.orders.values():
            if order.status == "Reserved":
                taken.update(n.telephone_number for n in order.telephone_numbers)
        return taken

    def _fresh_number(
        self,
        country: CountryOffer,
        prefix: str,
        national_length: int,
        drawn: Iterable[str] = (),
    ) -> str | None:
        """A number nobody holds, has reserved or was ``drawn`` already; None if the prefix
        leaves no room."""
        taken = self._taken_numbers().union(drawn)
        for _ in range(_NUMBER_ATTEMPTS):
            candidate = new_number(country, prefix, national_length, self._numbers_rng)
            if candidate not in taken:
                return candidate
        return None

    def _seed_number(self, country: CountryOffer, prefix: str) -> str:
        number = self._fresh_number(country, prefix, country.national_length)
        assert number is not None, "the seed inventory fits in any area code"
        return number

    def _sku_by_part(self, part_number: str) -> Sku:
        for sku in self.skus.values():
            if sku.part_number == part_number:
                return sku
        raise KeyError(part_number)

    def consumed_units(self, sku: Sku) -> int:
        return sum(
            1 for user in self.users.values() for lic in user.licenses if lic.sku_id == sku.sku_id
        )

    def _free_units(self, sku: Sku) -> int:
        return sku.enabled - self.consumed_units(sku)

    def _find_user(self, key: str) -> DirectoryUser | None:
        user = self.users.get(key)
        if user is None:
            user_id = self._upn_index.get(key.lower())
            user = self.users.get(user_id) if user_id else None
        return user

    def _visible_user(self, key: str, now: float) -> DirectoryUser:
        user = self._find_user(key)
        if user is None or now < user.visible_at:
            raise _not_found(
                f"Resource '{key}' does not exist or one of its queried reference-property "
                "objects are not present."
            )
        return user

    def _writable_user(self, key: str, now: float) -> DirectoryUser:
        user = self._find_user(key)
        if user is None:
            raise _not_found(f"Resource '{key}' does not exist.")
        if now < user.propagated_at:
            raise SimError(
                400,
                CODE_ACCOUNT_NOT_READY,
                f"We can't save changes to {user.user_principal_name}. The account is still "
                "being set up across Microsoft 365; retry after a few minutes.",
            )
        return user

    def _is_voice_licensed(self, user: DirectoryUser) -> bool:
        for lic in user.licenses:
            plan = self.skus[lic.sku_id].phone_system_plan_id
            if plan is not None and plan not in lic.disabled_plans:
                return True
        return False

    def phone_number_of(self, user_id: str) -> str | None:
        for number in self.numbers.values():
            if number.assignment_target_id == user_id:
                return number.telephone_number
        return None

    # -- users ----------------------------------------------------------------------------

    def create_user(
        self,
        *,
        user_principal_name: str,
        display_name: str,
        mail_nickname: str,
        account_enabled: bool,
        usage_location: str | None = None,
        application_id: str | None = None,
    ) -> DirectoryUser:
        self._advance()
        check_display_name(display_name)
        check_mail_nickname(mail_nickname)
        check_user_principal_name(user_principal_name, self.verified_domains)
        if usage_location is not None:
            check_usage_location(usage_location)
        if user_principal_name.lower() in self._upn_index:
            raise SimError(
                409,
                CODE_OBJECT_CONFLICT,
                "Another object with the same value for property userPrincipalName already exists.",
            )
        propagation = self._delays.uniform(
            self.knobs.propagation_min_s, self.knobs.propagation_max_s
        )
        user = DirectoryUser(
            id=self._new_id(),
            user_principal_name=user_principal_name,
            display_name=display_name,
            mail_nickname=mail_nickname,
            account_enabled=account_enabled,
            usage_location=usage_location,
            created_at=self.clock.now(),
            visible_at=self.clock.deadline(self.knobs.consistency_window_s),
            propagated_at=self.clock.deadline(propagation),
            application_id=application_id,
        )
        self._add_user(user)
        self.counters.accounts_created += 1
        logger.debug(
            "created %s %s (%s), propagates in %.0f simulated s",
            "resource account" if application_id else "user",
            user.user_principal_name,
            user.id,
            propagation,
        )
        return user

    def get_user(self, key: str) -> DirectoryUser:
        return self._visible_user(key, self._advance())

    def update_user(
        self,
        key: str,
        *,
        display_name: str | None = None,
        mail_nickname: str | None = None,
        account_enabled: bool | None = None,
        usage_location: str | None = None,
        clear_usage_location: bool = False,
    ) -> DirectoryUser:
        user = self._writable_user(key, self._advance())
        if display_name is not None:
            check_display_name(display_name)
        if mail_nickname is not None:
            check_mail_nickname(mail_nickname)
        if usage_location is not None:
            check_usage_location(usage_location)
        if clear_usage_location and user.licenses:
            raise _bad_request(
                "Invalid value specified for property 'usageLocation' of resource 'User': "
                "it cannot be removed while the user has licenses."
            )
        if display_name is not None:
            user.display_name = display_name
        if mail_nickname is not None:
            user.mail_nickname = mail_nickname
        if account_enabled is not None:
            user.account_enabled = account_enabled
        if usage_location is not None:
            user.usage_location = usage_location
        if clear_usage_location:
            user.usage_location = None
        logger.debug("updated user %s", user.user_principal_name)
        return user

    def delete_user(self, key: str) -> None:
        self._advance()
        user = self._find_user(key)
        if user is None:
            raise _not_found(f"Resource '{key}' does not exist.")
        for number in self.numbers.values():
            if number.assignment_target_id == user.id:
                self._release(number)
        del self.users[user.id]
        del self._upn_index[user.user_principal_name.lower()]
        self.counters.accounts_deleted += 1
        logger.debug("deleted %s (%s)", user.user_principal_name, user.id)

    # -- licenses ---------------------------------------------------------------------------

    def list_skus(self) -> list[Sku]:
        self._advance()
        return list(self.skus.values())

    def assign_license(
        self, key: str, add: Sequence[AssignedLicense], remove: Sequence[str]
    ) -> DirectoryUser:
        user = self._writable_user(key, self._advance())
        for sku_id in [lic.sku_id for lic in add] + list(remove):
            if sku_id not in self.skus:
                raise _bad_request(
                    f"License {sku_id} does not correspond to a valid company License."
                )
        if {lic.sku_id for lic in add} & set(remove):
            raise _bad_request("The same license cannot be both added and removed.")
        held = {lic.sku_id for lic in user.licenses}
        for sku_id in remove:
            if sku_id not in held:
                raise _bad_request(f"User does not have a corresponding license {sku_id}.")
        if add and user.usage_location is None:
            raise SimError(
                400,
                CODE_INVALID_USAGE_LOCATION,
                "License assignment cannot be done for user with invalid usage location.",
            )
        new = [lic for lic in add if lic.sku_id not in held]
        for lic in new:
            sku = self.skus[lic.sku_id]
            if self._free_units(sku) < 1:
                raise SimError(
                    400,
                    CODE_INSUFFICIENT_LICENSES,
                    f"Subscription {sku.sku_id} ({sku.part_number}) does not have any "
                    "available licenses.",
                )
        user.licenses = [lic for lic in user.licenses if lic.sku_id not in remove]
        user.licenses.extend(AssignedLicense(lic.sku_id, list(lic.disabled_plans)) for lic in new)
        self.counters.licenses_assigned += len(new)
        self.counters.licenses_removed += len(remove)
        logger.debug(
            "licenses of %s: +%s -%s",
            user.user_principal_name,
            [self.skus[lic.sku_id].part_number for lic in new],
            [self.skus[sku_id].part_number for sku_id in remove],
        )
        return user

    def add_license_units(self, part_number: str, add_units: int) -> Sku:
        self._advance()
        try:
            sku = self._sku_by_part(part_number)
        except KeyError:
            known = ", ".join(s.part_number for s in self.skus.values())
            raise _bad_request(f"Unknown skuPartNumber '{part_number}'; known: {known}.") from None
        if sku.enabled + add_units < 0:
            raise _bad_request(
                f"{part_number} has {sku.enabled} units; cannot remove {-add_units}."
            )
        sku.enabled += add_units
        logger.debug("%s now has %d units", part_number, sku.enabled)
        return sku

    # -- number inventory ---------------------------------------------------------------------

    def list_numbers(self, filters: Mapping[str, str]) -> list[ServiceNumber]:
        self._advance()

        def matches(number: ServiceNumber) -> bool:
            values = {
                "assignmentStatus": number.assignment_status,
                "isoCountryCode": number.iso_country_code,
                "numberType": number.number_type,
                "assignmentTargetId": number.assignment_target_id or "",
                "telephoneNumber": number.telephone_number,
            }
            return all(values[name].lower() == value.lower() for name, value in filters.items())

        return sorted(
            (n for n in self.numbers.values() if matches(n)), key=lambda n: n.telephone_number
        )

    def get_number(self, number_id: str) -> ServiceNumber:
        self._advance()
        number = self.numbers.get(number_id)
        if number is None:
            raise _not_found(f"The telephone number with id '{number_id}' was not found.")
        return number

    def _release(self, number: ServiceNumber) -> None:
        number.assignment_status = UNASSIGNED
        number.assignment_target_id = None
        number.assignment_category = None

    def start_assign_number(
        self,
        telephone_number: str,
        target_id: str,
        number_type: str,
        category: str | None,
    ) -> NumberOperation:
        return self._start_operation("assign", telephone_number, number_type, target_id, category)

    def start_unassign_number(self, telephone_number: str, number_type: str) -> NumberOperation:
        return self._start_operation("unassign", telephone_number, number_type, None, None)

    def _start_operation(
        self,
        action: Literal["assign", "unassign"],
        telephone_number: str,
        number_type: str,
        target_id: str | None,
        category: str | None,
    ) -> NumberOperation:
        self._advance()
        delay = self.knobs.operation_delay_s
        operation = NumberOperation(
            id=self._new_id(),
            action=action,
            telephone_number=telephone_number,
            number_type=number_type,
            target_id=target_id,
            category=category,
            created_at=self.clock.now(),
            started_at=self.clock.deadline(delay / 5),
            done_at=self.clock.deadline(delay),
        )
        self.operations[operation.id] = operation
        self._at(operation.done_at, lambda due: self._finish(operation, due))
        logger.debug("operation %s: %s %s %s", operation.id, action, telephone_number, target_id)
        return operation

    def get_operation(self, operation_id: str) -> tuple[NumberOperation, OperationStatus]:
        now = self._advance()
        operation = self.operations.get(operation_id)
        if operation is None:
            raise _not_found(f"The operation '{operation_id}' was not found.")
        return operation, operation.status(now)

    def _finish(self, operation: NumberOperation, due: float) -> None:
        if operation.action == "assign":
            detail = self._assign(operation, due)
        else:
            detail = self._unassign(operation)
        operation.outcome = "failed" if detail else "succeeded"
        operation.status_detail = detail
        logger.debug(
            "operation %s %s%s", operation.id, operation.outcome, f": {detail}" if detail else ""
        )

    def _operation_number(
        self, operation: NumberOperation
    ) -> tuple[ServiceNumber | None, str | None]:
        tel = operation.telephone_number
        number = self.numbers.get(tel.removeprefix("+"))
        if number is None:
            return None, f"The telephone number {tel} is not in the tenant's number inventory."
        if number.number_type != operation.number_type:
            return None, (
                f"The telephone number {tel} is a {number.number_type} number, "
                f"not {operation.number_type}."
            )
        return number, None

    def _assign(self, operation: NumberOperation, due: float) -> str | None:
        """None on success, else the statusDetail of the failure."""
        number, problem = self._operation_number(operation)
        if number is None:
            return problem
        tel = number.telephone_number
        if VOICE_APP_CAPABILITY not in number.capabilities:
            return (
                f"The telephone number {tel} cannot be assigned to a resource account: it lacks "
                f"the {VOICE_APP_CAPABILITY} capability."
            )
        target = self.users.get(operation.target_id or "")
        if target is None:
            return f"The assignment target {operation.target_id} was not found."
        upn = target.user_principal_name
        if not target.is_resource_account:
            return f"The assignment target {upn} is not a resource account."
        if (
            number.assignment_status == VOICE_APP_ASSIGNED
            and number.assignment_target_id == target.id
        ):
            return None
        if number.assignment_status != UNASSIGNED:
            return (
                f"The telephone number {tel} is already assigned ({number.assignment_status}) "
                f"to {number.assignment_target_id}."
            )
        current = self.phone_number_of(target.id)
        if current is not None:
            return f"The resource account {upn} already has the telephone number {current}."
        if not self._is_voice_licensed(target):
            return (
                f"The resource account {upn} is not licensed: it has no license with Phone "
                f"System ({PHONE_RESOURCE_SKU} or {E5_SKU}). Assign one, then retry after a "
                "few minutes."
            )
        if target.usage_location != number.iso_country_code:
            return (
                f"The usage location of {upn} ({target.usage_location}) does not match the "
                f"country of {tel} ({number.iso_country_code})."
            )
        if not target.is_synced(due):
            return (
                f"The resource account {upn} is not synced with Teams yet. Sync the "
                "application instance, then retry after a few minutes."
            )
        number.assignment_status = VOICE_APP_ASSIGNED
        number.assignment_target_id = target.id
        number.assignment_category = operation.category or "primary"
        self.counters.numbers_bound += 1
        return None

    def _unassign(self, operation: NumberOperation) -> str | None:
        number, problem = self._operation_number(operation)
        if number is None:
            return problem
        if number.assignment_status != UNASSIGNED:
            self._release(number)
            self.counters.numbers_unbound += 1
        return None

    # -- number offers and search orders ----------------------------------------------------

    def countries(self) -> list[CountryOffer]:
        return list(COUNTRIES_BY_CODE.values())

    def _offered_country(self, country_code: str) -> CountryOffer:
        country = COUNTRIES_BY_CODE.get(country_code.upper())
        if country is None:
            offered = ", ".join(COUNTRIES_BY_CODE)
            raise _not_found(
                f"Country '{country_code}' is not offered for new numbers; offered: {offered}."
            )
        return country

    def number_types(
        self, country_code: str
    ) -> list[tuple[CatalogueNumberType, list[tuple[AreaCode, int]]]]:
        self._advance()
        country = self._offered_country(country_code)
        return [
            (
                number_type,
                [
                    (area, self.stock[(country.iso_code, number_type, area.area_code)])
                    for area in self.areas[(country.iso_code, number_type)].values()
                ],
            )
            for number_type in NUMBER_TYPES
        ]

    def create_order(
        self,
        *,
        name: str,
        description: str,
        country_code: str,
        number_type: CatalogueNumberType,
        quantity: int,
        area_code: str | None = None,
        number_prefix: str | None = None,
        civic_address_id: str | None = None,
    ) -> SearchOrder:
        self._advance()
        if sum(x is not None for x in (area_code, number_prefix, civic_address_id)) > 1:
            raise _bad_request("Give at most one of areaCode, numberPrefix and civicAddressId.")
        if COUNTRIES_BY_CODE.get(country_code) is None:
            offered = ", ".join(COUNTRIES_BY_CODE)
            raise _bad_request(
                f"Country '{country_code}' is not offered for new numbers; offered: {offered}."
            )
        areas = self.areas[(country_code, number_type)]
        if area_code is not None and area_code not in areas:
            raise _bad_request(
                f"Area code '{area_code}' is not offered for {number_type} numbers in "
                f"{country_code}; offered: {', '.join(areas)}."
            )
        if number_prefix is not None:
            matching = [a for a in areas if number_prefix.startswith(a)]
            if not matching:
                raise _bad_request(
                    f"Number prefix '{number_prefix}' does not start with an area code offered "
                    f"for {number_type} numbers in {country_code}."
                )
            area_code = matching[0]
        now_wall = self.clock.now()
        expiry = self.knobs.reservation_expiry_s
        order = SearchOrder(
            id=self._new_id(),
            name=name,
            description=description,
            country_code=country_code,
            number_type=number_type,
            area_code=area_code,
            number_prefix=number_prefix,
            quantity=quantity,
            created_at=now_wall,
            reservation_expiry_date=now_wall + timedelta(seconds=self.clock.real_seconds(expiry)),
            ready_at=self.clock.deadline(self.knobs.search_delay_s),
            expires_at=self.clock.deadline(expiry),
        )
        self.orders[order.id] = order
        self._at(order.ready_at, lambda due: self._reserve(order))
        self._at(order.expires_at, lambda due: self._expire(order))
        self.counters.orders_created += 1
        logger.debug(
            "order %s (%s): %d %s in %s/%s",
            order.id,
            name,
            quantity,
            number_type,
            country_code,
            area_code or "any",
        )
        return order

    def _reserve(self, order: SearchOrder) -> None:
        if order.status != "Pending":
            return
        areas = self.areas[(order.country_code, order.number_type)]
        candidates = [order.area_code] if order.area_code else list(areas)
        chosen = next(
            (
                code
                for code in candidates
                if self.stock[(order.country_code, order.number_type, code)] >= order.quantity
            ),
            None,
        )
        if chosen is None:
            order.status = "Error"
            order.error_code = "OutOfStock"
            logger.debug("order %s: out of stock", order.id)
            return
        area = areas[chosen]
        country = COUNTRIES_BY_CODE[order.country_code]
        prefix = order.number_prefix or chosen
        numbers: list[OrderedNumber] = []
        for _ in range(order.quantity):
            tel = self._fresh_number(
                country, prefix, area.national_length, (n.telephone_number for n in numbers)
            )
            if tel is None:
                order.status = "Error"
                order.error_code = "OutOfStock"
                logger.debug("order %s: no free numbers start with %s", order.id, prefix)
                return
            numbers.append(OrderedNumber(tel, area.city))
        self.stock[(order.country_code, order.number_type, chosen)] -= order.quantity
        order.area_code = chosen
        order.status = "Reserved"
        order.telephone_numbers = numbers
        logger.debug(
            "order %s reserved %s", order.id, [n.telephone_number for n in order.telephone_numbers]
        )

    def _return_stock(self, order: SearchOrder) -> None:
        if order.area_code is not None:
            key = (order.country_code, order.number_type, order.area_code)
            self.stock[key] += len(order.telephone_numbers)

    def _expire(self, order: SearchOrder) -> None:
        if order.status == "Reserved":
            order.status = "Expired"
            self._return_stock(order)
            logger.debug("order %s expired", order.id)

    def find_orders(self, name: str | None) -> list[SearchOrder]:
        self._advance()
        return [o for o in self.orders.values() if name is None or o.name == name]

    def get_order(self, order_id: str) -> SearchOrder:
        self._advance()
        order = self.orders.get(order_id)
        if order is None:
            raise _not_found(f"The search order '{order_id}' was not found.")
        return order

    def complete_order(self, order_id: str) -> SearchOrder:
        order = self.get_order(order_id)
        if order.status == "Completed":
            return order
        if order.status != "Reserved":
            reasons = {
                "Pending": "it is still searching for numbers; complete it once it is Reserved",
                "Expired": f"its reservation expired at {order.reservation_expiry_date:%H:%M:%S}"
                " UTC; place a new order",
                "Cancelled": "it was cancelled",
                "Error": f"it failed with {order.error_code}",
            }
            raise _bad_request(
                f"The search order {order.id} cannot be completed: {reasons[order.status]}."
            )
        for ordered in order.telephone_numbers:
            self._add_number(
                ServiceNumber(
                    ordered.telephone_number,
                    "callingPlan",
                    SERVICE_CAPABILITIES,
                    order.country_code,
                    ordered.location,
                )
            )
        order.status = "Completed"
        self.counters.orders_completed += 1
        logger.debug("order %s completed", order.id)
        return order

    def cancel_order(self, order_id: str) -> SearchOrder:
        order = self.get_order(order_id)
        if order.status == "Completed":
            raise _bad_request(
                f"The search order {order.id} is completed and cannot be cancelled; its numbers "
                "are in the inventory."
            )
        if order.status in ("Pending", "Reserved"):
            if order.status == "Reserved":
                self._return_stock(order)
            order.status = "Cancelled"
            self.counters.orders_cancelled += 1
            logger.debug("order %s cancelled", order.id)
        return order

    def set_stock(self, override: StockOverride) -> None:
        self._advance()
        self._apply_stock(override)
        logger.debug("stock set: %s", override.model_dump())

    def _apply_stock(self, override: StockOverride) -> None:
        country = COUNTRIES_BY_CODE[override.country_code]
        areas = self.areas[(country.iso_code, override.number_type)]
        if override.area_code not in areas:
            areas[override.area_code] = AreaCode(
                override.area_code, override.city or "", country.national_length
            )
        elif override.city is not None:
            areas[override.area_code].city = override.city
        self.stock[(country.iso_code, override.number_type, override.area_code)] = override.quantity

    # -- application instances ------------------------------------------------------------

    def create_application_instance(
        self, *, user_principal_name: str, display_name: str, application_id: str
    ) -> DirectoryUser:
        alias = user_principal_name.rpartition("@")[0] or user_principal_name
        return self.create_user(
            user_principal_name=user_principal_name,
            display_name=display_name,
            mail_nickname=alias[:64],
            account_enabled=False,
            application_id=application_id,
        )

    def _resource_account(self, user: DirectoryUser, key: str) -> DirectoryUser:
        if not user.is_resource_account:
            raise _not_found(f"Application instance '{key}' was not found.")
        return user

    def get_application_instance(self, key: str) -> DirectoryUser:
        return self._resource_account(self.get_user(key), key)

    def set_application_id(self, key: str, application_id: str) -> DirectoryUser:
        user = self._resource_account(self._writable_user(key, self._advance()), key)
        if user.application_id != application_id:
            user.application_id = application_id
            # A new association has to reach Teams again before a number can be bound.
            user.synced_at = None
            logger.debug(
                "%s now belongs to application %s", user.user_principal_name, application_id
            )
        return user

    def sync_application_instance(self, key: str) -> DirectoryUser:
        user = self._resource_account(self._writable_user(key, self._advance()), key)
        if user.synced_at is None:
            user.synced_at = self.clock.deadline(self.knobs.sync_delay_s)
            logger.debug("sync of %s started", user.user_principal_name)
        return user

    # -- inspection -----------------------------------------------------------------------

    def settle(self) -> None:
        """Let due timers run, for callers that read the public attributes directly."""
        self._advance()
