"""The simulated Entra token endpoint: client credentials in, opaque bearer tokens out.

Tokens expire on the machine's own clock, not on the simulated one: a client caches a token
for `expires_in` real seconds, and a manual test clock jumping ahead must not make every
cached token fail at once.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from provisioning.simulator.wire import GRAPH_SCOPE, TEAMS_ADMIN_SCOPE

TOKEN_LIFETIME_S: Final = 3599
API_SCOPES: Final = frozenset({GRAPH_SCOPE, TEAMS_ADMIN_SCOPE})
# OpenID scopes a library may add on its own; they never name a resource.
_IGNORED_SCOPES: Final = frozenset({"openid", "profile", "offline_access"})


class OAuthError(Exception):
    """An error the token endpoint answers in the OAuth2 shape, not the Graph one."""

    def __init__(self, status: int, error: str, aadsts: int, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.description = description

    def to_json(self) -> dict[str, Any]:
        trace = str(uuid.uuid4())
        return {
            "error": self.error,
            "error_description": f"AADSTS{self.aadsts}: {self.description} Trace ID: {trace}",
            "error_codes": [self.aadsts],
            "timestamp": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": trace,
            "correlation_id": str(uuid.uuid4()),
            "error_uri": f"https://login.microsoftonline.com/error?code={self.aadsts}",
        }


@dataclass(frozen=True)
class IssuedToken:
    scope: str
    expires_at: float


class TokenIssuer:
    def __init__(
        self,
        *,
        tenant_ids: frozenset[str],
        client_id: str,
        client_secret: str,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tenants = frozenset(t.lower() for t in tenant_ids)
        self._client_id = client_id
        self._client_secret = client_secret
        self._now = now
        self._tokens: dict[str, IssuedToken] = {}

    def issue(self, tenant: str, form: Mapping[str, str]) -> dict[str, Any]:
        """The token response for a client-credentials form post."""
        if tenant.lower() not in self._tenants:
            raise OAuthError(400, "invalid_request", 90002, f"Tenant '{tenant}' not found.")
        grant_type = form.get("grant_type")
        if grant_type is None:
            raise OAuthError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        if grant_type != "client_credentials":
            raise OAuthError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'.",
            )
        client_id = form.get("client_id")
        if client_id != self._client_id:
            raise OAuthError(
                401,
                "invalid_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory.",
            )
        secret = form.get("client_secret")
        if secret is None:
            raise OAuthError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' "
                "or 'client_secret'.",
            )
        if not secrets.compare_digest(secret, self._client_secret):
            raise OAuthError(401, "invalid_client", 7000215, "Invalid client secret provided.")
        scope = self._resource_scope(form.get("scope", ""))
        self._forget_expired()
        token = secrets.token_urlsafe(32)
        self._tokens[token] = IssuedToken(scope, self._now() + TOKEN_LIFETIME_S)
        return {
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME_S,
            "ext_expires_in": TOKEN_LIFETIME_S,
            "access_token": token,
        }

    def _resource_scope(self, requested: str) -> str:
        scopes = [s for s in requested.split() if s not in _IGNORED_SCOPES]
        if len(scopes) != 1:
            raise OAuthError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope '{requested}' is not valid. Client credential "
                "flows must have exactly one scope value with /.default.",
            )
        if scopes[0] not in API_SCOPES:
            raise OAuthError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {scopes[0]} was not found in the tenant.",
            )
        return scopes[0]

    def _forget_expired(self) -> None:
        now = self._now()
        for token in [t for t, issued in self._tokens.items() if issued.expires_at <= now]:
            del self._tokens[token]

    def check(self, authorization: str | None, scope: str) -> str | None:
        """None when the header carries a live token for ``scope``, else why not."""
        if not authorization:
            return "Access token is empty."
        kind, _, token = authorization.partition(" ")
        if kind.lower() != "bearer" or not token:
            return "Access token is not a bearer token."
        issued = self._tokens.get(token.strip())
        if issued is None:
            return "Access token validation failure. Invalid signature."
        if issued.expires_at <= self._now():
            return "Lifetime validation failed, the token is expired."
        if issued.scope != scope:
            return "Access token validation failure. Invalid audience."
        return None
