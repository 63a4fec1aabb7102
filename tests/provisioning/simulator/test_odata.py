"""The `$filter` / `$top` / paging grammar the number inventory accepts, and what it refuses."""

from __future__ import annotations

import pytest

from provisioning.simulator.errors import SimError
from provisioning.simulator.odata import (
    check_query_options,
    decode_skiptoken,
    encode_skiptoken,
    parse_filter,
    parse_top,
)


def test_eq_clauses_joined_by_and_are_understood() -> None:
    assert parse_filter("assignmentStatus eq 'unassigned' and isoCountryCode eq 'US'") == {
        "assignmentStatus": "unassigned",
        "isoCountryCode": "US",
    }


def test_quotes_inside_a_value_are_doubled() -> None:
    assert parse_filter("assignmentTargetId eq 'o''brien'") == {"assignmentTargetId": "o'brien"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("assignmentStatus ne 'unassigned'", "only \"field eq 'value'\""),
        ("city eq 'Redmond'", "Filtering on 'city' is not supported"),
        ("isoCountryCode eq 'US' or isoCountryCode eq 'CA'", "joined by 'and'"),
        ("startswith(telephoneNumber, '+1425')", "Invalid filter clause"),
        ("isoCountryCode eq 'US' and isoCountryCode eq 'CA'", "more than once"),
        ("", "Invalid filter clause"),
        ("isoCountryCode eq US", "Invalid filter clause"),
    ],
)
def test_unsupported_filters_are_refused(text: str, message: str) -> None:
    with pytest.raises(SimError, match=message) as exc:
        parse_filter(text)
    assert (exc.value.status, exc.value.code) == (400, "Request_BadRequest")


@pytest.mark.parametrize("text", ["0", "1001", "-1", "ten", ""])
def test_top_must_be_between_1_and_1000(text: str) -> None:
    with pytest.raises(SimError, match=r"\$top"):
        parse_top(text)


def test_top_defaults_to_100() -> None:
    assert (parse_top(None), parse_top("1000")) == (100, 1000)


def test_a_skiptoken_round_trips_and_garbage_is_refused() -> None:
    assert decode_skiptoken(encode_skiptoken(200)) == 200
    with pytest.raises(SimError, match="skiptoken"):
        decode_skiptoken("not-a-token!")


def test_unknown_dollar_options_are_refused() -> None:
    check_query_options({"$filter": "x", "$top": "1", "other": "ignored"})
    with pytest.raises(SimError, match=r"\$select"):
        check_query_options({"$select": "id"})
