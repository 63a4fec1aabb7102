"""What the tenant can order: the countries, and per number type the area codes in stock.

The bot builds an ``Offer`` from the Teams number-offer API (countries, then number types
with their area codes) before a dialog turn; the dialog only reads it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from provisioning.domain import NumberType

__all__ = ["AreaCodeStock", "CountryOffer", "Offer"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AreaCodeStock(_Frozen):
    area_code: str
    available: int = Field(ge=0)
    city: str = ""
    number_type: NumberType = NumberType.AUTO_ATTENDANT_TOLL


class CountryOffer(_Frozen):
    iso_code: str
    name: str
    area_codes: tuple[AreaCodeStock, ...] = ()

    def area_codes_for(self, number_type: NumberType) -> list[AreaCodeStock]:
        """Every area code offered for the type, in stock or not."""
        return [a for a in self.area_codes if a.number_type is number_type]

    def in_stock(self, number_type: NumberType) -> list[AreaCodeStock]:
        return [a for a in self.area_codes_for(number_type) if a.available > 0]

    def number_types(self) -> list[NumberType]:
        """The types this country offers, in the enum's order; all of them if none is listed."""
        offered = {a.number_type for a in self.area_codes}
        return [t for t in NumberType if t in offered] or list(NumberType)


class Offer(_Frozen):
    countries: tuple[CountryOffer, ...] = ()

    def country(self, iso_code: str) -> CountryOffer | None:
        code = iso_code.strip().upper()
        return next((c for c in self.countries if c.iso_code == code), None)

    def name_of(self, iso_code: str) -> str:
        """The country's name, or its code if the tenant no longer offers it."""
        country = self.country(iso_code)
        return country.name if country else iso_code
