"""What the tenant can order, read from Microsoft 365 and kept for a short while.

Every dialog turn needs the offer (countries, area codes in stock), but it is tenant data
that changes slowly; asking Microsoft for it on every message would cost a call per
country per message. A turn that finds the cache stale refreshes it; if Microsoft cannot
be reached, the previous offer is used rather than failing the conversation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Final

from dialogs import AreaCodeStock, CountryOffer, Offer
from provisioning.domain import NumberType
from provisioning.errors import ProvisioningError
from provisioning.microsoft.teams_admin import Country, NumberTypeOffer
from provisioning.service import ProvisioningService

__all__ = ["OfferCache", "OfferUnavailable", "build_offer"]

log = logging.getLogger(__name__)

DEFAULT_TTL_S: Final = 60.0
_KNOWN_TYPES: Final = {t.value: t for t in NumberType}


class OfferUnavailable(Exception):
    """Microsoft 365 could not be asked what the tenant can order, and nothing is cached."""


def build_offer(
    countries: Sequence[Country], types_by_country: Sequence[Sequence[NumberTypeOffer]]
) -> Offer:
    offers = []
    for country, types in zip(countries, types_by_country, strict=True):
        stock = tuple(
            AreaCodeStock(
                area_code=area.area_code,
                available=max(0, area.available_quantity),
                city=area.city or "",
                number_type=_KNOWN_TYPES[offered.number_type],
            )
            for offered in types
            if offered.number_type in _KNOWN_TYPES
            for area in offered.area_codes
        )
        offers.append(
            CountryOffer(
                iso_code=country.iso_country_code.upper(),
                name=country.display_name,
                area_codes=stock,
            )
        )
    return Offer(countries=tuple(offers))


class OfferCache:
    def __init__(
        self,
        service: ProvisioningService,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._service = service
        self._ttl_s = ttl_s
        self._clock = clock
        self._offer: Offer | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return self._offer is not None and self._clock() - self._fetched_at < self._ttl_s

    async def get(self) -> Offer:
        if self._fresh() and self._offer is not None:
            return self._offer
        async with self._lock:
            if self._fresh() and self._offer is not None:
                return self._offer
            try:
                offer = await self._fetch()
            except ProvisioningError as exc:
                if self._offer is None:
                    raise OfferUnavailable(str(exc)) from exc
                log.warning("could not refresh the number offer, using the previous one: %s", exc)
                return self._offer
            self._offer, self._fetched_at = offer, self._clock()
            return offer

    async def _fetch(self) -> Offer:
        countries = await self._service.countries()
        types = await asyncio.gather(
            *(self._service.number_offers(c.iso_country_code) for c in countries)
        )
        return build_offer(countries, types)
