"""Access tokens for Graph and the Teams admin API.

``ApiClient`` asks a ``TokenProvider`` for a token before every attempt; providers cache,
so that is cheap. Real tenants go through msal; the built-in simulator has its own small
client-credentials endpoint. Secrets stay ``SecretStr`` and never reach a log line or an
exception message.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import httpx
import msal
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, model_validator

from provisioning.microsoft.errors import (
    ApiConnectionError,
    ApiTimeoutError,
    AuthenticationError,
    UnexpectedResponse,
    error_from_response,
)

logger = logging.getLogger(__name__)

DEFAULT_AUTHORITY_HOST: Final = "https://login.microsoftonline.com"
_REDACTED: Final = "***"


class TokenProvider(Protocol):
    async def get_token(self, scope: str) -> str:
        """A bearer token for ``scope`` (e.g. ``https://graph.microsoft.com/.default``)."""
        ...


class ClientCertificate(BaseModel):
    """An app registration's certificate credential.

    Give the SHA-1 ``thumbprint``, or the ``public_certificate_pem`` from which msal
    derives a SHA-256 one (and which also enables subject name/issuer authentication).
    """

    model_config = ConfigDict(frozen=True)

    private_key_pem: SecretStr
    thumbprint: str | None = None
    passphrase: SecretStr | None = None
    public_certificate_pem: str | None = None

    @model_validator(mode="after")
    def _identifies_the_certificate(self) -> ClientCertificate:
        if self.thumbprint is None and self.public_certificate_pem is None:
            raise ValueError("give the certificate's thumbprint or its public certificate")
        return self


class MsalTokenProvider:
    """Client-credentials tokens from Microsoft Entra through msal.

    msal is synchronous, so every call runs in a worker thread. Building the msal
    application already performs OIDC discovery over the network, so it happens on the
    first ``get_token`` rather than in the constructor. msal's own token cache serves
    repeated calls until shortly before expiry.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: SecretStr | None = None,
        certificate: ClientCertificate | None = None,
        authority: str | None = None,
        http_client: Any = None,
    ) -> None:
        """``http_client`` is handed to msal as is (msal's HttpClient shape); None uses requests."""
        if (client_secret is None) == (certificate is None):
            raise ValueError("give exactly one of client_secret and certificate")
        self._tenant_id = tenant_id
        self._client_id = client_id
        self._client_secret = client_secret
        self._certificate = certificate
        self._authority = authority or f"{DEFAULT_AUTHORITY_HOST}/{tenant_id}"
        self._http_client = http_client
        self._app: Any = None
        self._app_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"MsalTokenProvider(tenant_id={self._tenant_id!r}, client_id={self._client_id!r}, "
            f"authority={self._authority!r})"
        )

    async def get_token(self, scope: str) -> str:
        try:
            result: dict[str, Any] = await asyncio.to_thread(self._acquire, scope)
        except OSError as exc:  # requests' transport errors are OSErrors
            raise ApiConnectionError(
                f"Could not reach the token endpoint of {self._authority}", url=self._authority
            ) from exc
        except msal.exceptions.MsalServiceError as exc:  # an msal HTTP call got an error status
            raise ApiConnectionError(
                f"A Microsoft Entra endpoint of {self._authority} failed: {self._redact(str(exc))}",
                url=self._authority,
            ) from exc
        except ValueError as exc:  # msal: unknown tenant, unusable authority or key
            # Not chained: the original text is repeated here with the secrets redacted.
            raise AuthenticationError(
                f"Cannot get tokens for client {self._client_id} in tenant {self._tenant_id}: "
                f"{self._redact(str(exc))}",
                tenant_id=self._tenant_id,
                client_id=self._client_id,
            ) from None
        token = result.get("access_token")
        if isinstance(token, str) and token:
            logger.debug("token for %s from %s", scope, result.get("token_source", "msal"))
            return token
        error = str(result.get("error") or "no_access_token")
        description = self._redact(str(result.get("error_description") or "no description"))
        raise AuthenticationError(
            f"Microsoft Entra refused a token for client {self._client_id} in tenant "
            f"{self._tenant_id} (scope {scope}): {error}: {description}",
            tenant_id=self._tenant_id,
            client_id=self._client_id,
            error=error,
        )

    def _acquire(self, scope: str) -> dict[str, Any]:
        result: dict[str, Any] = self._application().acquire_token_for_client(scopes=[scope])
        return result

    def _application(self) -> Any:
        with self._app_lock:
            if self._app is None:
                self._app = msal.ConfidentialClientApplication(
                    self._client_id,
                    client_credential=self._credential(),
                    authority=self._authority,
                    http_client=self._http_client,
                )
            return self._app

    def _credential(self) -> str | dict[str, str]:
        if self._client_secret is not None:
            return self._client_secret.get_secret_value()
        assert self._certificate is not None
        credential = {"private_key": self._certificate.private_key_pem.get_secret_value()}
        if self._certificate.thumbprint is not None:
            credential["thumbprint"] = self._certificate.thumbprint
        if self._certificate.passphrase is not None:
            credential["passphrase"] = self._certificate.passphrase.get_secret_value()
        if self._certificate.public_certificate_pem is not None:
            credential["public_certificate"] = self._certificate.public_certificate_pem
        return credential

    def _redact(self, text: str) -> str:
        if self._certificate is None:
            return _redact(text, self._client_secret)
        return _redact(
            text,
            self._client_secret,
            self._certificate.private_key_pem,
            self._certificate.passphrase,
        )


def _redact(text: str, *secrets: SecretStr | None) -> str:
    """``text`` with every secret value replaced, for messages built from a server's words."""
    for secret in secrets:
        if secret is not None and secret.get_secret_value():
            text = text.replace(secret.get_secret_value(), _REDACTED)
    return text


class _TokenResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")

    access_token: str
    expires_in: float


@dataclass(frozen=True, slots=True)
class _CachedToken:
    token: str
    refresh_at: float


class SimulatorTokenProvider:
    """Client-credentials tokens from the simulator's token endpoint, cached per scope."""

    # A token is renewed this long before it expires (or a tenth of its lifetime if
    # shorter), so that a call never starts with a token about to lapse.
    _MAX_REFRESH_MARGIN: Final = 300.0

    def __init__(
        self,
        http: httpx.AsyncClient,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self._cache: dict[str, _CachedToken] = {}
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"SimulatorTokenProvider(token_url={self._token_url!r}, client_id={self._client_id!r})"
        )

    async def get_token(self, scope: str) -> str:
        cached = self._fresh(scope)
        if cached is not None:
            return cached
        async with self._lock:  # one fetch per scope even when many calls start at once
            cached = self._fresh(scope)
            if cached is not None:
                return cached
            return await self._fetch(scope)

    def _fresh(self, scope: str) -> str | None:
        cached = self._cache.get(scope)
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.token
        return None

    async def _fetch(self, scope: str) -> str:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
            "scope": scope,
        }
        try:
            response = await self._http.post(self._token_url, data=form)
        except httpx.TimeoutException as exc:
            raise ApiTimeoutError(
                "The token endpoint did not answer in time", method="POST", url=self._token_url
            ) from exc
        except httpx.RequestError as exc:
            raise ApiConnectionError(
                "Could not reach the token endpoint", method="POST", url=self._token_url
            ) from exc
        if response.status_code in (400, 401, 403):
            refusal = error_from_response(response)
            raise AuthenticationError(
                f"The token endpoint refused client {self._client_id} (scope {scope}): "
                f"{refusal.code}: {_redact(refusal.message, self._client_secret)}",
                client_id=self._client_id,
                error=refusal.code,
            )
        if not response.is_success:
            raise error_from_response(response)
        try:
            answer = _TokenResponse.model_validate_json(response.content)
        except ValidationError as exc:
            # Not chained: the validation error would quote the body, token and all.
            raise UnexpectedResponse(
                f"The token endpoint's answer has no usable token: {exc.error_count()} "
                "problem(s) in the body",
                status=response.status_code,
            ) from None
        margin = min(self._MAX_REFRESH_MARGIN, answer.expires_in / 10)
        self._cache[scope] = _CachedToken(
            answer.access_token, self._clock() + answer.expires_in - margin
        )
        logger.debug("token for %s fetched, valid for %.0f s", scope, answer.expires_in)
        return answer.access_token
