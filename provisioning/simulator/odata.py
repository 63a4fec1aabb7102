"""The small part of OData the number inventory understands: `eq` clauses, `$top`, paging."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Final

from provisioning.simulator.errors import SimError
from provisioning.simulator.wire import CODE_BAD_REQUEST

FILTERABLE: Final = frozenset(
    {"assignmentStatus", "isoCountryCode", "numberType", "assignmentTargetId", "telephoneNumber"}
)
DEFAULT_TOP: Final = 100
MAX_TOP: Final = 1000
QUERY_OPTIONS: Final = frozenset({"$filter", "$top", "$skiptoken"})

_CLAUSE = re.compile(r"\s*([A-Za-z]\w*)\s+eq\s+'((?:[^']|'')*)'\s*")
_AND = re.compile(r"and\b")


def _bad(message: str) -> SimError:
    return SimError(400, CODE_BAD_REQUEST, message)


def parse_filter(text: str) -> dict[str, str]:
    """``field eq 'value'`` clauses joined by ``and``; anything else is refused."""
    clauses: dict[str, str] = {}
    position = 0
    while True:
        match = _CLAUSE.match(text, position)
        if match is None:
            raise _bad(
                f"Invalid filter clause at position {position} of '{text}': only "
                "\"field eq 'value'\" clauses joined by 'and' are supported."
            )
        field, value = match.group(1), match.group(2).replace("''", "'")
        if field not in FILTERABLE:
            supported = ", ".join(sorted(FILTERABLE))
            raise _bad(f"Filtering on '{field}' is not supported; supported: {supported}.")
        if field in clauses:
            raise _bad(f"'{field}' appears more than once in the filter.")
        clauses[field] = value
        position = match.end()
        if position == len(text):
            return clauses
        joiner = _AND.match(text, position)
        if joiner is None:
            raise _bad(
                f"Invalid filter clause at position {position} of '{text}': "
                "clauses can only be joined by 'and'."
            )
        position = joiner.end()


def parse_top(text: str | None) -> int:
    if text is None:
        return DEFAULT_TOP
    if not text.isdigit() or not 1 <= int(text) <= MAX_TOP:
        raise _bad(f"Invalid $top '{text}': it must be an integer from 1 to {MAX_TOP}.")
    return int(text)


def encode_skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode().rstrip("=")


def decode_skiptoken(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _bad(f"Invalid $skiptoken '{token}'.") from exc
    kind, _, offset = raw.partition(":")
    if kind != "offset" or not offset.isdigit():
        raise _bad(f"Invalid $skiptoken '{token}'.")
    return int(offset)


def check_query_options(query: Mapping[str, str]) -> None:
    for name in query:
        if name.startswith("$") and name not in QUERY_OPTIONS:
            supported = ", ".join(sorted(QUERY_OPTIONS))
            raise _bad(f"Query option '{name}' is not supported here; supported: {supported}.")
