"""The number offers the simulated tenant can order from: countries, number types, area codes.

Stock here is the starting stock; the tenant state owns the live counts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final, Literal, get_args

CatalogueNumberType = Literal[
    "AutoAttendantToll", "AutoAttendantTollFree", "CallQueueToll", "CallQueueTollFree"
]
NUMBER_TYPES: Final[tuple[CatalogueNumberType, ...]] = get_args(CatalogueNumberType)

NUMBER_TYPE_NAMES: Final[dict[CatalogueNumberType, str]] = {
    "AutoAttendantToll": "Auto attendant (toll)",
    "AutoAttendantTollFree": "Auto attendant (toll-free)",
    "CallQueueToll": "Call queue (toll)",
    "CallQueueTollFree": "Call queue (toll-free)",
}


def is_toll_free(number_type: CatalogueNumberType) -> bool:
    return number_type.endswith("TollFree")


@dataclass(frozen=True)
class AreaCodeOffer:
    area_code: str
    city: str
    stock: int
    national_length: int
    """Digits of the national significant number, area code included."""


@dataclass(frozen=True)
class CountryOffer:
    iso_code: str
    display_name: str
    calling_code: str
    national_length: int
    toll: tuple[AreaCodeOffer, ...]
    toll_free: tuple[AreaCodeOffer, ...]

    def areas(self, number_type: CatalogueNumberType) -> tuple[AreaCodeOffer, ...]:
        return self.toll_free if is_toll_free(number_type) else self.toll


def _area(code: str, city: str, stock: int, national_length: int = 10) -> AreaCodeOffer:
    return AreaCodeOffer(code, city, stock, national_length)


# New York (212) has no stock at all so that an order there reproduces OutOfStock.
COUNTRIES: Final[tuple[CountryOffer, ...]] = (
    CountryOffer(
        "US",
        "United States",
        "1",
        10,
        toll=(_area("206", "Seattle", 8), _area("425", "Redmond", 12), _area("212", "New York", 0)),
        toll_free=(_area("800", "", 5), _area("888", "", 3)),
    ),
    CountryOffer(
        "CA",
        "Canada",
        "1",
        10,
        toll=(
            _area("416", "Toronto", 6),
            _area("604", "Vancouver", 4),
            _area("514", "Montreal", 0),
        ),
        toll_free=(_area("833", "", 4),),
    ),
    CountryOffer(
        "GB",
        "United Kingdom",
        "44",
        10,
        toll=(
            _area("20", "London", 10),
            _area("161", "Manchester", 4),
            _area("121", "Birmingham", 2),
        ),
        toll_free=(_area("800", "", 3),),
    ),
    CountryOffer(
        "DE",
        "Germany",
        "49",
        10,
        toll=(_area("30", "Berlin", 6), _area("89", "Munich", 4), _area("40", "Hamburg", 2)),
        toll_free=(_area("800", "", 2),),
    ),
    CountryOffer(
        "AU",
        "Australia",
        "61",
        9,
        toll=(
            _area("2", "Sydney", 6, 9),
            _area("3", "Melbourne", 4, 9),
            _area("7", "Brisbane", 1, 9),
        ),
        toll_free=(_area("1800", "", 3, 10),),
    ),
    CountryOffer(
        "JP",
        "Japan",
        "81",
        9,
        toll=(_area("3", "Tokyo", 6, 9), _area("6", "Osaka", 4, 9)),
        toll_free=(_area("120", "", 2, 9),),
    ),
    CountryOffer(
        "BR",
        "Brazil",
        "55",
        10,
        toll=(_area("11", "São Paulo", 6), _area("21", "Rio de Janeiro", 4)),
        toll_free=(_area("800", "", 2),),
    ),
)

COUNTRIES_BY_CODE: Final[dict[str, CountryOffer]] = {c.iso_code: c for c in COUNTRIES}


def new_number(country: CountryOffer, prefix: str, national_length: int, rng: random.Random) -> str:
    """A random E.164 number whose national part starts with ``prefix``.

    The first digit after an area code is never 0 or 1, as in real numbering plans.
    """
    digits = [prefix]
    remaining = national_length - len(prefix)
    for position in range(remaining):
        low = 2 if position == 0 else 0
        digits.append(str(rng.randint(low, 9)))
    return f"+{country.calling_code}{''.join(digits)}"


def is_e164(value: str) -> bool:
    return (
        len(value) in range(8, 17) and value[0] == "+" and value[1:].isdigit() and value[1] != "0"
    )
