"""User principal names for resource accounts: derived from display names, never reused."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable

from provisioning.domain.lifecycle import OPEN_STATUSES, RequestStatus

# Requests whose UPN is spoken for: no other request may be given it. A failed request
# keeps its account for the retry; a completed one owns it until it is released.
UPN_HOLDING_STATUSES: frozenset[RequestStatus] = OPEN_STATUSES | {
    RequestStatus.FAILED,
    RequestStatus.COMPLETED,
}
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
