"""Microsoft Entra's limits on user names, as the directory enforces them on create and update."""

from __future__ import annotations

import re
from typing import Final

from provisioning.simulator.errors import SimError
from provisioning.simulator.wire import CODE_BAD_REQUEST

MAX_DISPLAY_NAME: Final = 256
MAX_MAIL_NICKNAME: Final = 64
MAX_UPN: Final = 113
MAX_UPN_LOCAL_PART: Final = 64

_ALLOWED_NAME = re.compile(r"^[A-Za-z0-9'.\-_!#^~]+$")
_DOMAIN = re.compile(
    r"^(?=.{1,255}$)[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_USAGE_LOCATION = re.compile(r"^[A-Z]{2}$")


def _invalid(field: str, why: str) -> SimError:
    return SimError(
        400,
        CODE_BAD_REQUEST,
        f"Invalid value specified for property '{field}' of resource 'User': {why}",
    )


def check_display_name(value: str) -> None:
    if not value.strip():
        raise _invalid("displayName", "it must not be empty.")
    if len(value) > MAX_DISPLAY_NAME:
        raise _invalid("displayName", f"it is longer than {MAX_DISPLAY_NAME} characters.")


def check_mail_nickname(value: str) -> None:
    if not value:
        raise _invalid("mailNickname", "it must not be empty.")
    if len(value) > MAX_MAIL_NICKNAME:
        raise _invalid("mailNickname", f"it is longer than {MAX_MAIL_NICKNAME} characters.")
    if not _ALLOWED_NAME.match(value):
        raise _invalid("mailNickname", "only A-Z a-z 0-9 ' . - _ ! # ^ ~ are allowed.")


def check_user_principal_name(value: str, verified_domains: frozenset[str]) -> None:
    field = "userPrincipalName"
    if len(value) > MAX_UPN:
        raise _invalid(field, f"it is longer than {MAX_UPN} characters.")
    local, at, domain = value.rpartition("@")
    if not at or not local:
        raise _invalid(field, "it must have the form alias@domain.")
    if len(local) > MAX_UPN_LOCAL_PART:
        raise _invalid(
            field, f"the part before '@' is longer than {MAX_UPN_LOCAL_PART} characters."
        )
    if not _ALLOWED_NAME.match(local):
        raise _invalid(field, "only A-Z a-z 0-9 ' . - _ ! # ^ ~ are allowed before '@'.")
    if local.startswith("."):
        raise _invalid(field, "it must not start with '.'.")
    if local.endswith("."):
        raise _invalid(field, "a '.' must not come right before '@'.")
    if not _DOMAIN.match(domain) or domain.lower() not in verified_domains:
        verified = ", ".join(sorted(verified_domains))
        raise _invalid(
            field,
            f"the domain portion '{domain}' is not a verified domain of this organization "
            f"({verified}).",
        )


def check_usage_location(value: str) -> None:
    if not _USAGE_LOCATION.match(value):
        raise _invalid("usageLocation", "it must be a two-letter ISO 3166-1 country code.")
