"""Entra's naming limits, checked directly where HTTP cannot reach them."""

from __future__ import annotations

import pytest

from provisioning.simulator.entra_limits import check_user_principal_name
from provisioning.simulator.errors import SimError

LONG_DOMAIN = "d" * 50 + ".onmicrosoft.com"


def test_a_upn_longer_than_113_characters_is_refused_even_on_a_verified_domain() -> None:
    upn = "a" * 50 + "@" + LONG_DOMAIN
    assert len(upn) > 113
    with pytest.raises(SimError, match="longer than 113"):
        check_user_principal_name(upn, frozenset({LONG_DOMAIN}))


def test_a_upn_of_exactly_113_characters_is_accepted() -> None:
    local = "a" * (113 - 1 - len(LONG_DOMAIN))
    check_user_principal_name(f"{local}@{LONG_DOMAIN}", frozenset({LONG_DOMAIN}))


def test_the_domain_is_compared_case_insensitively() -> None:
    check_user_principal_name("ivr@Contoso.OnMicrosoft.com", frozenset({"contoso.onmicrosoft.com"}))


def test_a_leading_dot_is_refused() -> None:
    with pytest.raises(SimError, match=r"must not start with '\.'"):
        check_user_principal_name(
            ".ivr@contoso.onmicrosoft.com", frozenset({"contoso.onmicrosoft.com"})
        )
