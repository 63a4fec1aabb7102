"""The wire vocabulary the simulator serves: error codes, scopes and route templates.

They are the clients' own tables, re-exported: a capture from a real tenant that corrects
a path or a code in `provisioning.microsoft` corrects the simulator with it.
"""

from __future__ import annotations

from typing import Final

from provisioning.microsoft.errors import (
    CODE_ACCOUNT_NOT_READY,
    CODE_BAD_REQUEST,
    CODE_CONCURRENCY_VIOLATION,
    CODE_INSUFFICIENT_LICENSES,
    CODE_INTERNAL_SERVER_ERROR,
    CODE_INVALID_AUTHENTICATION_TOKEN,
    CODE_INVALID_USAGE_LOCATION,
    CODE_NOT_FOUND,
    CODE_OBJECT_CONFLICT,
    CODE_SERVICE_UNAVAILABLE,
    CODE_TOO_MANY_REQUESTS,
)
from provisioning.microsoft.graph import GRAPH_ROUTES, GRAPH_SCOPE
from provisioning.microsoft.teams_admin import ROUTES, TEAMS_ADMIN_SCOPE

__all__ = [
    "ADMIN_PREFIX",
    "AUTH_PREFIX",
    "CODE_ACCOUNT_NOT_READY",
    "CODE_BAD_REQUEST",
    "CODE_CONCURRENCY_VIOLATION",
    "CODE_INSUFFICIENT_LICENSES",
    "CODE_INTERNAL_SERVER_ERROR",
    "CODE_INVALID_AUTHENTICATION_TOKEN",
    "CODE_INVALID_USAGE_LOCATION",
    "CODE_NOT_FOUND",
    "CODE_OBJECT_CONFLICT",
    "CODE_SERVICE_UNAVAILABLE",
    "CODE_TOO_MANY_REQUESTS",
    "GRAPH_PREFIX",
    "GRAPH_ROUTES",
    "GRAPH_SCOPE",
    "ROUTES",
    "TEAMS_ADMIN_SCOPE",
    "TEAMS_PREFIX",
    "fill",
]

AUTH_PREFIX: Final = "/auth"
GRAPH_PREFIX: Final = "/graph/v1.0"
TEAMS_PREFIX: Final = "/teams"
ADMIN_PREFIX: Final = "/_sim"


def fill(template: str, value: str) -> str:
    """The template with its one placeholder replaced, whatever the placeholder is named."""
    head, _, rest = template.partition("{")
    return head + value + rest.partition("}")[2]
