"""Errors raised by the Microsoft 365 clients, and the one place statuses become classes.

Graph and the Teams admin API share the error body
``{"error": {"code", "message", "innerError": {"request-id", "client-request-id"}}}``,
so one hierarchy serves both. Callers branch on the class and on ``code``, never on
``message``. The ``CODE_*`` constants are the contract's error table; the simulator
imports them from here so both sides spell them the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

import httpx

from provisioning.errors import ProvisioningError

CODE_BAD_REQUEST: Final = "Request_BadRequest"
CODE_INVALID_USAGE_LOCATION: Final = "Request_InvalidUsageLocation"
CODE_INSUFFICIENT_LICENSES: Final = "Request_InsufficientLicenses"
CODE_ACCOUNT_NOT_READY: Final = "Request_AccountNotReady"
CODE_INVALID_AUTHENTICATION_TOKEN: Final = "InvalidAuthenticationToken"
CODE_NOT_FOUND: Final = "Request_ResourceNotFound"
CODE_CONCURRENCY_VIOLATION: Final = "Directory_ConcurrencyViolation"
CODE_OBJECT_CONFLICT: Final = "Request_ObjectConflict"
CODE_TOO_MANY_REQUESTS: Final = "TooManyRequests"
CODE_INTERNAL_SERVER_ERROR: Final = "InternalServerError"
CODE_SERVICE_UNAVAILABLE: Final = "ServiceUnavailable"

_MAX_BODY_IN_MESSAGE: Final = 200


class MicrosoftApiError(ProvisioningError):
    """A call to Graph, the Teams admin API or the token endpoint did not succeed."""


class ApiConnectionError(MicrosoftApiError):
    """No HTTP response arrived: the connection failed or broke."""

    def __init__(
        self,
        message: str = "Connection error.",
        *,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class ApiTimeoutError(ApiConnectionError):
    """No HTTP response arrived in time."""

    def __init__(
        self,
        message: str = "Request timed out.",
        *,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message, method=method, url=url)


class ApiStatusError(MicrosoftApiError):
    """The service answered with a non-2xx status."""

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        request_id: str | None = None,
        client_request_id: str | None = None,
        retry_after: float | None = None,
        *,
        method: str | None = None,
        url: str | None = None,
    ) -> None:
        where = f" on {method} {url}" if method and url else ""
        ids = ", ".join(
            f"{name} {value}"
            for name, value in (
                ("request-id", request_id),
                ("client-request-id", client_request_id),
            )
            if value
        )
        super().__init__(
            f"HTTP {status} {code or 'no error code'}{where}: {message}"
            + (f" ({ids})" if ids else "")
        )
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.client_request_id = client_request_id
        self.retry_after = retry_after
        self.method = method
        self.url = url


class BadRequest(ApiStatusError):
    """400: see ``code`` (e.g. ``CODE_ACCOUNT_NOT_READY``, ``CODE_INSUFFICIENT_LICENSES``)."""


class Unauthorized(ApiStatusError):
    """401: the bearer token is missing, expired or for another API."""


class Forbidden(ApiStatusError):
    """403: the app registration lacks a permission or role."""


class NotFound(ApiStatusError):
    """404: absent, or not yet visible just after creation (eventual consistency)."""


class Conflict(ApiStatusError):
    """409: a concurrent write, or an object (such as a UPN) that already exists."""


class Throttled(ApiStatusError):
    """429: the caller must wait at least ``retry_after`` seconds."""


class ServerError(ApiStatusError):
    """5xx: the service failed; retrying is safe only for idempotent calls."""


class UnexpectedResponse(MicrosoftApiError):
    """A successful status whose body or headers are not what the contract promises."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthenticationError(MicrosoftApiError):
    """The token endpoint refused the app's credentials or the tenant is unknown."""

    def __init__(
        self,
        message: str,
        *,
        tenant_id: str | None = None,
        client_id: str | None = None,
        error: str | None = None,
    ) -> None:
        super().__init__(message)
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.error = error


_ERROR_BY_STATUS: Final[Mapping[int, type[ApiStatusError]]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    429: Throttled,
}


def error_class_for(status: int) -> type[ApiStatusError]:
    if status >= 500:
        return ServerError
    return _ERROR_BY_STATUS.get(status, ApiStatusError)


def parse_retry_after(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or None when absent or unreadable.

    Accepts delta-seconds (decimals too: the time-scaled simulator sends ``0.25``) and an
    HTTP-date, which counts from ``now``. A date in the past means no wait.
    """
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        return _seconds_until_http_date(value, now)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def _seconds_until_http_date(value: str, now: datetime | None) -> float | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def error_from_response(response: httpx.Response) -> ApiStatusError:
    """Map a non-2xx response to the error class of its status, with code and ids."""
    code, message, inner = _parse_error_body(response)
    method, url = _request_line(response)
    return error_class_for(response.status_code)(
        response.status_code,
        code,
        message,
        request_id=_str_or_none(inner.get("request-id")) or response.headers.get("request-id"),
        client_request_id=_str_or_none(inner.get("client-request-id"))
        or response.headers.get("client-request-id"),
        retry_after=parse_retry_after(response.headers),
        method=method,
        url=url,
    )


def _parse_error_body(response: httpx.Response) -> tuple[str | None, str, Mapping[str, Any]]:
    try:
        body = response.json()
    except ValueError:  # json.JSONDecodeError and UnicodeDecodeError are both ValueErrors
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            inner = error.get("innerError", error.get("innererror"))
            return (
                _str_or_none(error.get("code")),
                _str_or_none(error.get("message")) or _fallback_message(response),
                inner if isinstance(inner, dict) else {},
            )
        if isinstance(error, str):  # OAuth2 token endpoint shape
            return error, _str_or_none(body.get("error_description")) or error, {}
    return None, _fallback_message(response), {}


def _fallback_message(response: httpx.Response) -> str:
    text = response.text.strip()
    if not text:
        return response.reason_phrase or "no response body"
    if len(text) > _MAX_BODY_IN_MESSAGE:
        text = text[:_MAX_BODY_IN_MESSAGE] + "…"
    return f"non-JSON error body: {text}"


def _request_line(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        request = response.request
    except RuntimeError:  # a Response built by hand has no request
        return None, None
    return request.method, str(request.url.copy_with(query=None))


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
