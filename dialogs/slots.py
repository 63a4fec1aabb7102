"""Checking one answer for one slot.

The chat dialog and the request form both call these, so an answer is accepted or refused
for the same reason wherever it is typed. Reasons are plain sentences that quote the
user's text; whoever shows one as markdown escapes it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from pydantic import ValidationError

from dialogs.context import DialogContext
from dialogs.offer import AreaCodeStock, CountryOffer, Offer
from dialogs.state import AreaChoice
from dialogs.text import fold, plain_quote, split_words
from provisioning.domain import (
    ISO_COUNTRY_CODES,
    AccountType,
    NumberRequest,
    NumberType,
    derive_upn,
)

__all__ = [
    "ACCOUNT_TYPE_LABELS",
    "MAX_SUGGESTIONS",
    "NUMBER_TYPE_LABELS",
    "NameChoice",
    "SlotError",
    "area_code_suggestions",
    "check_account_type",
    "check_area_code",
    "check_display_name",
    "check_number_type",
    "match_country",
    "number_type_choices",
    "stock_sentence",
]

MAX_SUGGESTIONS: Final = 6
"""Suggested-action buttons offered at once; more crowd the compose box."""
_MAX_LISTED: Final = 10

NUMBER_TYPE_LABELS: Final[Mapping[NumberType, str]] = {
    NumberType.AUTO_ATTENDANT_TOLL: "Auto attendant (toll)",
    NumberType.AUTO_ATTENDANT_TOLL_FREE: "Auto attendant (toll-free)",
    NumberType.CALL_QUEUE_TOLL: "Call queue (toll)",
    NumberType.CALL_QUEUE_TOLL_FREE: "Call queue (toll-free)",
}
ACCOUNT_TYPE_LABELS: Final[Mapping[AccountType, str]] = {t: t.label for t in AccountType}

_ANY_AREA: Final = frozenset(
    {
        "any",
        "anything",
        "anywhere",
        "any area",
        "any area code",
        "any code",
        "whatever",
        "no preference",
        "dont care",
        "doesnt matter",
        "*",
    }
)

# Names people use that differ from Microsoft's English display names, folded. Only
# offered countries are matched, so listing one here never makes it orderable.
_COUNTRY_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {
    "US": ("usa", "us of a", "united states of america", "america"),
    "GB": ("uk", "great britain", "britain", "england", "scotland", "wales"),
    "DE": ("deutschland",),
    "NL": ("holland", "nederland"),
    "ES": ("espana",),
    "CH": ("schweiz", "suisse", "svizzera"),
    "AT": ("osterreich", "oesterreich"),
    "IT": ("italia",),
    "SE": ("sverige",),
    "NO": ("norge",),
    "DK": ("danmark",),
    "FI": ("suomi",),
    "PL": ("polska",),
    "BR": ("brasil",),
    "BE": ("belgie", "belgique"),
    "CZ": ("czech republic", "czechia", "cesko"),
    "KR": ("south korea", "korea"),
    "AE": ("uae", "emirates"),
    "JP": ("nippon", "nihon"),
}
_FUZZY_ACCEPT: Final = 0.8
_FUZZY_MARGIN: Final = 0.1
_FUZZY_SUGGEST: Final = 0.6


@dataclass(frozen=True)
class SlotError:
    reason: str
    """Plain text saying what is wrong and what would be accepted."""
    suggestions: tuple[str, ...] = ()


@dataclass(frozen=True)
class NameChoice:
    display_name: str
    upn: str
    taken_upn: str | None
    """The UPN the name gave first, when it is in use and ``upn`` is the alternative."""


def _list(items: Sequence[str], conjunction: str = "or", limit: int = _MAX_LISTED) -> str:
    shown = list(items[:limit])
    if len(items) > limit:
        return ", ".join(shown) + f" and {len(items) - limit} more"
    if len(shown) <= 1:
        return "".join(shown)
    return ", ".join(shown[:-1]) + f" {conjunction} " + shown[-1]


# --- country ---------------------------------------------------------------------------


def _fold_name(text: str) -> str:
    folded = re.sub(r"[.'\N{RIGHT SINGLE QUOTATION MARK}]", "", fold(text))
    folded = " ".join(re.sub(r"[\W_]+", " ", folded).split())
    return folded.removeprefix("the ")


def _country_names(country: CountryOffer) -> list[str]:
    return [_fold_name(country.name), *_COUNTRY_ALIASES.get(country.iso_code, ())]


def _country_suggestions(countries: Iterable[CountryOffer]) -> tuple[str, ...]:
    return tuple(c.name for c in countries)[:MAX_SUGGESTIONS]


def _not_offered(raw: str, offer: Offer) -> SlotError:
    names = [c.name for c in offer.countries]
    return SlotError(
        f"{plain_quote(raw)} isn't one of the countries this tenant can order numbers in. "
        f"Choose {_list(names)}.",
        _country_suggestions(offer.countries),
    )


def match_country(answer: str, offer: Offer) -> CountryOffer | SlotError:
    """Find the offered country meant by a name, alias or ISO code, forgiving typos."""
    raw = answer.strip()
    query = _fold_name(raw)
    if not offer.countries:
        return SlotError("This tenant can't order phone numbers in any country right now.")
    if not query:
        return SlotError(
            "Tell me a country: a name such as United States, or a code such as US.",
            _country_suggestions(offer.countries),
        )
    if len(query) == 2 and query.isalpha():
        country = offer.country(query)
        if country is not None:
            return country
        if query.upper() in ISO_COUNTRY_CODES:
            return _not_offered(raw, offer)

    names = [(name, c) for c in offer.countries for name in _country_names(c)]
    for name, country in names:
        if name == query:
            return country
    if any(query in aliases for aliases in _COUNTRY_ALIASES.values()):
        return _not_offered(raw, offer)

    if len(query) >= 3:
        partial = _unique(
            c
            for name, c in names
            if name.startswith(query) or (len(query) >= 4 and f" {query}" in f" {name}")
        )
        if len(partial) == 1:
            return partial[0]
        if partial:
            return SlotError(
                f"{plain_quote(raw)} matches {_list([c.name for c in partial])}. Which one?",
                _country_suggestions(partial),
            )

    scored = sorted(
        (
            (max(difflib.SequenceMatcher(None, query, n).ratio() for n in _country_names(c)), c)
            for c in offer.countries
        ),
        key=lambda pair: pair[0],
        reverse=True,
    )
    best_score, best = scored[0]
    runner_up = scored[1][0] if len(scored) > 1 else 0.0
    if best_score >= _FUZZY_ACCEPT and best_score - runner_up >= _FUZZY_MARGIN:
        return best
    close = [c for score, c in scored if score >= _FUZZY_SUGGEST]
    if close:
        return SlotError(
            f"I couldn't find a country called {plain_quote(raw)}. "
            f"Did you mean {_list([c.name for c in close])}?",
            _country_suggestions(close),
        )
    return SlotError(
        f"I couldn't find a country called {plain_quote(raw)}. This tenant can order "
        f"numbers in {_list([c.name for c in offer.countries])}.",
        _country_suggestions(offer.countries),
    )


def _unique(countries: Iterable[CountryOffer]) -> list[CountryOffer]:
    seen: dict[str, CountryOffer] = {}
    for country in countries:
        seen.setdefault(country.iso_code, country)
    return list(seen.values())


# --- area code -------------------------------------------------------------------------


def _describe_area(area: AreaCodeStock) -> str:
    return f"{area.area_code} ({area.city})" if area.city else area.area_code


def area_code_suggestions(country: CountryOffer, number_type: NumberType) -> tuple[str, ...]:
    codes = [a.area_code for a in country.in_stock(number_type)]
    return (*codes[: MAX_SUGGESTIONS - 1], "any")


def stock_sentence(country: CountryOffer, number_type: NumberType) -> str:
    in_stock = country.in_stock(number_type)
    if not in_stock:
        return (
            f"No {NUMBER_TYPE_LABELS[number_type].lower()} numbers are in stock in "
            f"{country.name} right now: reply any to let the service try anyway, "
            "or back to pick another country."
        )
    listed = _list([_describe_area(a) for a in in_stock], "and")
    return f"In stock: {listed}. Or reply any to let the service choose."


def check_area_code(
    answer: str, country: CountryOffer, number_type: NumberType
) -> AreaChoice | SlotError:
    """An area code in stock for the country and number type, a city's name, or "any"."""
    raw = answer.strip()
    query = fold(raw).replace("\N{RIGHT SINGLE QUOTATION MARK}", "").replace("'", "")
    compact = re.sub(r"[\s()\-]", "", query)
    if query in _ANY_AREA or compact in _ANY_AREA:
        return AreaChoice(code=None)
    suggestions = area_code_suggestions(country, number_type)
    if not compact:
        return SlotError(
            "Tell me an area code, or any. " + stock_sentence(country, number_type), suggestions
        )
    offered = country.area_codes_for(number_type)
    if re.fullmatch(r"\d{1,8}", compact):
        entry = next((a for a in offered if a.area_code == compact), None)
        if entry is None:
            return SlotError(
                f"{compact} isn't an area code {country.name} offers for "
                f"{NUMBER_TYPE_LABELS[number_type].lower()} numbers. "
                + stock_sentence(country, number_type),
                suggestions,
            )
    else:
        entry = next((a for a in offered if a.city and fold(a.city) == query), None)
        if entry is None:
            return SlotError(
                f"{plain_quote(raw)} isn't an area code or a city with numbers in "
                f"{country.name}. " + stock_sentence(country, number_type),
                suggestions,
            )
    if entry.available <= 0:
        return SlotError(
            f"{_describe_area(entry)} is out of stock in {country.name} right now. "
            + stock_sentence(country, number_type),
            suggestions,
        )
    return AreaChoice(code=entry.area_code)


# --- display name ----------------------------------------------------------------------


def _unquote(answer: str) -> str:
    words = split_words(answer)
    if len(words) == 1 and words[0].quoted:
        return words[0].text
    return answer


def _entra_display_name(name: str) -> str | SlotError:
    # NumberRequest holds Entra's display-name rules; build one around the name so the
    # rules live in one place. The country is a placeholder that always passes.
    try:
        return NumberRequest(country="US", display_name=name).display_name
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            if error["loc"] == ("display_name",):
                cause = error.get("ctx", {}).get("error")
                return SlotError(str(cause) if cause is not None else error["msg"])
        raise


def check_display_name(answer: str, ctx: DialogContext) -> NameChoice | SlotError:
    """A display name Entra accepts, with the UPN derived from it (an unused one)."""
    name = _entra_display_name(_unquote(answer))
    if isinstance(name, SlotError):
        return name
    try:
        upn = derive_upn(name, ctx.upn_domain, taken=ctx.is_upn_taken)
    except ValueError as exc:
        return SlotError(str(exc))
    first = derive_upn(name, ctx.upn_domain)
    return NameChoice(display_name=name, upn=upn, taken_upn=first if first != upn else None)


# --- number type and account type ------------------------------------------------------


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", fold(text))


def number_type_choices(country: CountryOffer | None) -> list[NumberType]:
    return country.number_types() if country is not None else list(NumberType)


def check_number_type(
    answer: str, country: CountryOffer | None, current: NumberType
) -> NumberType | SlotError:
    """A number type by name or label; plain "toll"/"toll-free" keep the current family."""
    query = _compact(answer)
    choices = number_type_choices(country)
    labels = tuple(NUMBER_TYPE_LABELS[t] for t in choices)
    chosen = next(
        (t for t in NumberType if query in (_compact(t.value), _compact(NUMBER_TYPE_LABELS[t]))),
        None,
    )
    if chosen is None and query in ("toll", "tollfree", "freephone"):
        queue = current in (NumberType.CALL_QUEUE_TOLL, NumberType.CALL_QUEUE_TOLL_FREE)
        chosen = {
            (False, False): NumberType.AUTO_ATTENDANT_TOLL,
            (False, True): NumberType.AUTO_ATTENDANT_TOLL_FREE,
            (True, False): NumberType.CALL_QUEUE_TOLL,
            (True, True): NumberType.CALL_QUEUE_TOLL_FREE,
        }[(queue, query != "toll")]
    if chosen is None:
        return SlotError(
            f"{plain_quote(answer)} isn't a number type. Choose {_list(labels)}.", labels
        )
    if chosen not in choices and country is not None:
        return SlotError(
            f"{country.name} doesn't offer {NUMBER_TYPE_LABELS[chosen].lower()} numbers. "
            f"Choose {_list(labels)}.",
            labels,
        )
    return chosen


_ACCOUNT_TYPE_WORDS: Final[Mapping[str, AccountType]] = {
    "ivrbot": AccountType.IVR_BOT,
    "ivr": AccountType.IVR_BOT,
    "bot": AccountType.IVR_BOT,
    "autoattendant": AccountType.AUTO_ATTENDANT,
    "attendant": AccountType.AUTO_ATTENDANT,
    "aa": AccountType.AUTO_ATTENDANT,
    "callqueue": AccountType.CALL_QUEUE,
    "queue": AccountType.CALL_QUEUE,
    "cq": AccountType.CALL_QUEUE,
}


def check_account_type(answer: str) -> AccountType | SlotError:
    chosen = _ACCOUNT_TYPE_WORDS.get(_compact(answer))
    if chosen is None:
        labels = tuple(ACCOUNT_TYPE_LABELS.values())
        return SlotError(
            f"{plain_quote(answer)} isn't an account type. Choose {_list(labels)}.", labels
        )
    return chosen
