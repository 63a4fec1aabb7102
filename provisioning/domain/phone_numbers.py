"""Telephone numbers: E.164 checks and the geography of area codes, in every country.

Both come from libphonenumber's metadata (``phonenumberslite``), which knows every
country's calling code, national prefix and number lengths; a hand-written table of
calling codes only ever covered the countries someone remembered to add.
"""

from __future__ import annotations

import phonenumbers

__all__ = ["check_e164", "national_area_code", "number_in_area"]


def _parse(telephone_number: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(telephone_number, None)
    except phonenumbers.NumberParseException:
        return None


def check_e164(value: str) -> str:
    """``value`` itself if it is a telephone number written in E.164 form, else ValueError.

    Only the form and the length are checked, not whether the number is assigned in its
    numbering plan: the tenant, not PhoneDesk, knows which numbers exist.
    """
    number = _parse(value) if value.startswith("+") else None
    if (
        number is None
        or phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) != value
        or not phonenumbers.is_possible_number(number)
    ):
        raise ValueError(f"{value} is not an E.164 telephone number such as +14255550100")
    return value


def national_area_code(country: str, area_code: str) -> str:
    """The area code as it stands in the national significant number.

    People write area codes with their country's trunk prefix ("03" for Tokyo, "020" for
    London); E.164 numbers carry them without it.
    """
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(country.upper())
    prefix = metadata.national_prefix if metadata is not None else None
    # Only a trunk prefix that begins with 0 is dropped: no national number begins with 0
    # there, whereas Russia's "8" or the US's "1" also begin real area codes (812, 1xx).
    if (
        prefix
        and prefix.startswith("0")
        and area_code.startswith(prefix)
        and len(area_code) > len(prefix)
    ):
        return area_code[len(prefix) :]
    return area_code


def number_in_area(telephone_number: str, country: str, area_code: str | None) -> bool:
    """Whether an E.164 number belongs to ``country`` and lies in ``area_code`` (None: any)."""
    if area_code is None:
        return True
    number = _parse(telephone_number)
    if number is None or number.country_code is None:
        return False
    # A calling code can be shared (+1 covers the US, Canada and the Caribbean); the area
    # code is what tells those countries' numbers apart, so it is matched as a prefix.
    if country.upper() not in phonenumbers.region_codes_for_country_code(number.country_code):
        return False
    national = phonenumbers.national_significant_number(number)
    return national.startswith(national_area_code(country, area_code))
