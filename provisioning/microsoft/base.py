"""The one client that owns the transport: base URL, bearer token, request ids and retries.

Endpoint modules (``graph.py``, ``teams_admin.py``) only say path, body and response
model. The ``httpx.AsyncClient`` belongs to the caller (the app factory), which also sets
its timeouts and closes it; the same code then serves the real tenant and the simulator,
only ``base_url`` and the ``TokenProvider`` differ.

Idempotency: a call is idempotent unless its method is POST. PATCH counts as idempotent
because every PATCH here sets fields to absolute values. Endpoint methods pass
``idempotent=True`` for POSTs that are safe to repeat (assignLicense, order complete)
and leave creating POSTs non-idempotent, so those are never re-sent after a response may
have been lost; the workflow's lookup-before-create settles them instead.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ValidationError

from provisioning.microsoft.auth import TokenProvider
from provisioning.microsoft.errors import (
    ApiConnectionError,
    ApiStatusError,
    ApiTimeoutError,
    UnexpectedResponse,
    error_from_response,
)
from provisioning.microsoft.pacing import Pacer
from provisioning.microsoft.retry import (
    RetryPolicy,
    is_throttling,
    parse_retry_after,
    retry_delay,
    should_retry,
    should_retry_transport_error,
)

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=BaseModel)
Sleep = Callable[[float], Awaitable[None]]
Params = Mapping[str, str | int]

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})
NEXT_LINK: Final = "@odata.nextLink"


def expand_path(template: str, **values: str) -> str:
    """Fill a ``{name}`` route template; each value is percent-encoded as one path segment.

    The templates use aiohttp's placeholder syntax, so the simulator registers the very
    same strings as routes.
    """
    return template.format_map({name: quote(value, safe="@") for name, value in values.items()})


def parse_model(response: httpx.Response, model: type[ModelT]) -> ModelT:
    """Validate a response body against ``model``; a mismatch is ``UnexpectedResponse``."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)[:3]
        )
        raise UnexpectedResponse(
            f"{_request_line(response)} answered a body that is not a {model.__name__}: {problems}",
            status=response.status_code,
        ) from None


class ApiClient:
    """Authenticated, retrying requests against one API (Graph or the Teams admin API)."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        base_url: str,
        scope: str,
        tokens: TokenProvider,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        pacer: Pacer | None = None,
    ) -> None:
        """``sleep`` and ``clock`` are injectable so tests observe waits without waiting.

        Each client paces its own API unless given a ``pacer``.
        """
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._base = urlsplit(self._base_url)
        self._scope = scope
        self._tokens = tokens
        self._policy = policy or RetryPolicy()
        self._rng = rng or random.Random()
        self.sleep = sleep
        self.clock = clock
        self.pacer = pacer or Pacer(clock=clock, sleep=sleep)

    def __repr__(self) -> str:
        return f"ApiClient(base_url={self._base_url!r}, scope={self._scope!r})"

    @property
    def base_url(self) -> str:
        return self._base_url

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: Any = None,
        idempotent: bool | None = None,
        expected: Collection[int] | None = None,
    ) -> httpx.Response:
        """Send one logical call, retrying per the policy; raise the mapped error at the end.

        ``path`` is relative to the base URL, or an absolute URL under it (a next link).
        ``expected`` narrows the accepted 2xx statuses; another 2xx is ``UnexpectedResponse``.
        """
        method = method.upper()
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        url = self._url(path)
        client_request_id = str(uuid.uuid4())
        retry = _RetryState()
        while True:
            retry.attempt += 1
            try:
                token = await self._tokens.get_token(self._scope)
            except (ApiConnectionError, ApiStatusError) as exc:
                # Nothing reached the API yet, so the call's idempotency does not matter.
                status = exc.status if isinstance(exc, ApiStatusError) else None
                retry_after = exc.retry_after if isinstance(exc, ApiStatusError) else None
                retryable = isinstance(exc, ApiConnectionError) or should_retry(
                    exc.status, exc.code, idempotent=True
                )
                delay = self._next_delay(retry, retryable, status, retry_after, method, path)
                if delay is None:
                    raise
                await self._back_off(
                    retry, delay, method, path, f"token: {exc}", client_request_id, None
                )
                continue

            try:
                async with self.pacer.turn() as turn:
                    response = await self._http.request(
                        method,
                        url,
                        params=params,
                        json=json,
                        headers={
                            "Authorization": f"Bearer {token}",
                            "client-request-id": client_request_id,
                            "return-client-request-id": "true",
                            "Accept": "application/json",
                        },
                    )
                    if is_throttling(response.status_code):
                        turn.throttled(parse_retry_after(response.headers))
                    elif not response.is_success:
                        turn.failed()
            except httpx.RequestError as exc:
                retryable = should_retry_transport_error(exc, idempotent=idempotent)
                delay = self._next_delay(retry, retryable, None, None, method, path)
                if delay is None:
                    raise _transport_error(exc, method, url) from exc
                await self._back_off(
                    retry, delay, method, path, type(exc).__name__, client_request_id, None
                )
                continue

            if response.is_success:
                if expected is not None and response.status_code not in expected:
                    raise UnexpectedResponse(
                        f"{method} {path} answered HTTP {response.status_code}, expected "
                        f"{' or '.join(str(status) for status in sorted(expected))}",
                        status=response.status_code,
                    )
                logger.debug("%s %s -> %s", method, path, response.status_code)
                return response

            error = error_from_response(response)
            retryable = should_retry(error.status, error.code, idempotent=idempotent)
            delay = self._next_delay(
                retry, retryable, error.status, error.retry_after, method, path
            )
            if delay is None:
                raise error
            await self._back_off(
                retry,
                delay,
                method,
                path,
                f"HTTP {error.status} {error.code}",
                client_request_id,
                error.request_id,
            )

    async def get_json(self, path: str, *, params: Params | None = None) -> dict[str, Any]:
        return _json_object(await self.request("GET", path, params=params))

    async def post_json(
        self,
        path: str,
        json: Any,
        *,
        idempotent: bool | None = None,
        expected: Collection[int] | None = None,
    ) -> dict[str, Any]:
        response = await self.request(
            "POST", path, json=json, idempotent=idempotent, expected=expected
        )
        return _json_object(response)

    async def get(self, path: str, model: type[ModelT], *, params: Params | None = None) -> ModelT:
        return parse_model(await self.request("GET", path, params=params), model)

    async def post(
        self,
        path: str,
        model: type[ModelT],
        *,
        json: Any,
        idempotent: bool | None = None,
        expected: Collection[int] | None = None,
    ) -> ModelT:
        response = await self.request(
            "POST", path, json=json, idempotent=idempotent, expected=expected
        )
        return parse_model(response, model)

    async def iter_pages(
        self, path: str, params: Params | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Yield each page of an OData collection, following ``@odata.nextLink``."""
        page = await self.get_json(path, params=params)
        while True:
            yield page
            next_link = page.get(NEXT_LINK)
            if next_link is None:
                return
            if not isinstance(next_link, str):
                raise UnexpectedResponse(f"GET {path}: {NEXT_LINK} is not a string")
            # The link already carries the query ($filter, $top, $skiptoken).
            page = await self.get_json(next_link)

    def _url(self, path: str) -> str:
        if "://" not in path:
            return self._base_url + (path if path.startswith("/") else "/" + path)
        target = urlsplit(path)
        # The bearer token goes wherever this URL points, so only our own API is allowed.
        if (target.scheme, target.netloc) != (self._base.scheme, self._base.netloc) or not (
            target.path == self._base.path or target.path.startswith(self._base.path + "/")
        ):
            raise UnexpectedResponse(f"refusing to follow a link outside {self._base_url}: {path}")
        return path

    def _next_delay(
        self,
        retry: _RetryState,
        retryable: bool,
        status: int | None,
        retry_after: float | None,
        method: str,
        path: str,
    ) -> float | None:
        """Seconds to wait before the next attempt, or None to give up now."""
        if not retryable:
            return None
        if retry_after is not None and retry_after > self._policy.max_retry_after:
            logger.warning(
                "not retrying %s %s: Retry-After %.1f s exceeds the %.1f s limit",
                method,
                path,
                retry_after,
                self._policy.max_retry_after,
            )
            return None
        if status is not None and is_throttling(status):
            retry.throttled += 1
            delay = retry_delay(retry.throttled, retry_after, self._policy, self._rng)
            now = self.clock()
            if retry.throttled_since is None:
                retry.throttled_since = now
            waited = now - retry.throttled_since
            if waited + delay > self._policy.max_throttle_wait_s:
                logger.warning(
                    "giving up on %s %s: still throttled after %.1f s", method, path, waited
                )
                return None
            return delay
        retry.failures += 1
        if retry.failures >= self._policy.max_attempts:
            logger.warning("giving up on %s %s after %d attempts", method, path, retry.attempt)
            return None
        return retry_delay(retry.failures, retry_after, self._policy, self._rng)

    async def _back_off(
        self,
        retry: _RetryState,
        delay: float,
        method: str,
        path: str,
        reason: str,
        client_request_id: str,
        request_id: str | None,
    ) -> None:
        logger.warning(
            "retrying %s %s in %.2f s after %s (attempt %d, client-request-id %s, request-id %s)",
            method,
            path,
            delay,
            reason,
            retry.attempt,
            client_request_id,
            request_id or "-",
        )
        await self.sleep(delay)


class _RetryState:
    """Where one logical call stands in its retries."""

    __slots__ = ("attempt", "failures", "throttled", "throttled_since")

    def __init__(self) -> None:
        self.attempt = 0
        # Each kind of trouble backs off from its own start: a 500 after forty 429s is
        # still the first failure.
        self.failures = 0
        self.throttled = 0
        self.throttled_since: float | None = None


def _transport_error(exc: httpx.RequestError, method: str, url: str) -> ApiConnectionError:
    plain_url = url.split("?", 1)[0]
    if isinstance(exc, httpx.TimeoutException):
        return ApiTimeoutError(
            f"{method} {plain_url} timed out ({type(exc).__name__})", method=method, url=plain_url
        )
    return ApiConnectionError(
        f"{method} {plain_url} failed: {type(exc).__name__}: {exc}", method=method, url=plain_url
    )


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise UnexpectedResponse(
            f"{_request_line(response)} answered a body that is not a JSON object",
            status=response.status_code,
        )
    return body


def _request_line(response: httpx.Response) -> str:
    try:
        return f"{response.request.method} {response.request.url.path}"
    except RuntimeError:  # a Response built by hand has no request
        return f"HTTP {response.status_code}"
