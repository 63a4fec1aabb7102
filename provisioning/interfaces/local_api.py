"""The bot server's local API, through which the ``phonedesk`` CLI shares its engine.

Only one provisioning engine may run on a workflow database (see ``engine.py``), and the
bot server runs it. So while the server is up the CLI does not start a second one: it
sends its commands here, under ``/local/v1/`` on the server's own aiohttp app.

Two checks guard every route, and both must pass:

- the peer is a loopback address and the request did not come through a proxy (a reverse
  proxy on the same host would otherwise make remote callers look local);
- ``Authorization: Bearer <token>`` carries the token the server generated at start-up.
  It is written, with the server's URL, to ``<data dir>/local-api.json`` with mode 0600
  and removed on a clean shutdown, so being able to read that file is what proves a
  caller may act. Whoever can read it could equally open the database, which is why the
  CLI's ``actor`` in a body is trusted; the service still decides what that person may do.

Routes (JSON in, JSON out; a ``{request_id}`` is read like a person types it):

==========================================  ======================================
``GET  /ping``                              ``{"service", "pid"}``
``POST /requests``                          submit ``{"actor", "request"}``
``POST /requests/{request_id}/approve``     ``{"actor"}``
``POST /requests/{request_id}/reject``      ``{"actor", "reason"}``
``POST /requests/{request_id}/cancel``      ``{"actor", "reason"?}``
``POST /requests/{request_id}/retry``       ``{"actor"}``
``POST /requests/{request_id}/release``     ``{"actor"}``
``GET  /requests/{request_id}``             the request
``GET  /requests``                          ``?id=…`` (repeatable), or
                                            ``?requester=…&status=…&limit=…``
``GET  /requests/{request_id}/audit``       ``{"entries": […]}``
``GET  /requests/{request_id}/wait``        ``?status=…`` (repeatable) ``&timeout_s=…``
                                            → ``{"reached", "request"}``
``GET  /numbers``                           ``?country=…`` → ``{"numbers": […]}``
``GET  /people/{object_id}``                ``{"aad_object_id", "is_approver"}``
==========================================  ======================================

A command answers 200 with the service's ``Outcome`` (``ok`` false when it was refused:
a refusal is a result, not a transport error). Errors are
``{"error": {"code", "message"}}``: 400 ``bad_request`` naming the field, 401
``unauthorized``, 403 ``forbidden``, 404 ``not_found`` / ``request_not_found`` (with
``request_id``), 405,
502 ``microsoft_error`` and 500 ``internal_error`` (details only in the server's log).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import quote

import httpx
from aiohttp import web
from pydantic import BaseModel, ConfigDict, SecretStr, TypeAdapter, ValidationError

from provisioning.domain import (
    ISO_COUNTRY_CODES,
    AuditEntry,
    NumberRequest,
    Person,
    Request,
    RequestStatus,
    parse_request_id,
)
from provisioning.errors import ProvisioningError
from provisioning.microsoft.errors import MicrosoftApiError
from provisioning.persistence.store import RequestNotFound
from provisioning.service import InventoryNumber, Outcome, ProvisioningService
from provisioning.settings import Settings
from provisioning.simulator.config import describe_validation_error

__all__ = [
    "LOCAL_API_FILE",
    "LOCAL_API_PREFIX",
    "LocalApiClient",
    "LocalApiError",
    "LocalApiInfo",
    "add_local_api",
    "advertised_url",
    "connect_local_api",
    "is_loopback_address",
    "local_api_path",
    "read_local_api_info",
]

logger = logging.getLogger(__name__)

LOCAL_API_PREFIX: Final = "/local/v1"
LOCAL_API_FILE: Final = "local-api.json"
SERVICE_NAME: Final = "phonedesk-local-api"
MAX_WAIT_S: Final = 60.0
MAX_LIST_LIMIT: Final = 1000
_FORWARDING_HEADERS: Final = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


class LocalApiInfo(BaseModel):
    """What ``local-api.json`` holds: where the server is and the token it accepts."""

    model_config = ConfigDict(frozen=True)

    url: str
    token: SecretStr
    pid: int
    started_at: datetime


def local_api_path(data_dir: Path) -> Path:
    return data_dir / LOCAL_API_FILE


def read_local_api_info(data_dir: Path) -> LocalApiInfo | None:
    """The advertised local API, or None when no server has advertised one here."""
    path = local_api_path(data_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return LocalApiInfo.model_validate_json(text)
    except ValidationError:
        logger.warning("ignoring %s: it is not a PhoneDesk local API file", path)
        return None


def _write_private(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a file only its owner can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp creates the file 0600 whatever the umask, so the token is never exposed.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _remove_if_ours(path: Path, token: str) -> None:
    # A server started later on this data directory may have replaced the file.
    with contextlib.suppress(FileNotFoundError):
        info = LocalApiInfo.model_validate_json(path.read_text(encoding="utf-8"))
        if hmac.compare_digest(info.token.get_secret_value(), token):
            path.unlink()


def is_loopback_address(address: str | None) -> bool:
    """Whether a peer address is this machine's loopback (IPv4-mapped IPv6 included)."""
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def advertised_url(host: str, port: int) -> str | None:
    """The loopback URL a local client reaches the server at, if it has one."""
    if host in ("", "0.0.0.0", "localhost"):
        return f"http://127.0.0.1:{port}"
    if host == "::":
        return f"http://[::1]:{port}"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if not ip.is_loopback:
        return None
    return f"http://[{ip}]:{port}" if ip.version == 6 else f"http://{ip}:{port}"


# --- server ------------------------------------------------------------------------------


class _BadInput(Exception):
    """The caller sent something malformed; the message names the field."""


class _ActorBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    actor: Person


class _SubmitBody(_ActorBody):
    request: NumberRequest


class _RejectBody(_ActorBody):
    reason: str


class _CancelBody(_ActorBody):
    reason: str | None = None


def _error(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: str,
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message, **extra}}, status=status, headers=headers
    )


BodyT = TypeVar("BodyT", bound=BaseModel)


async def _body(request: web.Request, model: type[BodyT]) -> BodyT:
    try:
        data = await request.json()
    except ValueError:
        raise _BadInput("body: not valid JSON") from None
    if not isinstance(data, dict):
        raise _BadInput("body: must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _BadInput(describe_validation_error(exc)) from None


def _request_id(request: web.Request) -> str:
    try:
        return parse_request_id(request.match_info["request_id"])
    except ValueError as exc:
        raise _BadInput(f"request_id: {exc}") from None


def _statuses(request: web.Request) -> list[RequestStatus]:
    statuses = []
    for value in request.query.getall("status", []):
        try:
            statuses.append(RequestStatus(value))
        except ValueError:
            known = ", ".join(status.value for status in RequestStatus)
            raise _BadInput(f"status: '{value}' is not one of {known}") from None
    return statuses


def _number(request: web.Request, name: str, default: float, low: float, high: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _BadInput(f"{name}: '{raw}' is not a number") from None
    if not low <= value <= high:
        raise _BadInput(f"{name}: must be from {low:g} to {high:g}")
    return value


def _outcome(outcome: Outcome) -> web.Response:
    return web.json_response(outcome.model_dump(mode="json"))


def _requests(requests: Iterable[Request]) -> web.Response:
    return web.json_response({"requests": [r.model_dump(mode="json") for r in requests]})


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _LocalApi:
    def __init__(self, token: str, service_key: web.AppKey[ProvisioningService]) -> None:
        self._token = token
        self._service_key = service_key

    def _service(self, request: web.Request) -> ProvisioningService:
        return request.config_dict[self._service_key]

    def _refusal(self, request: web.Request) -> web.Response | None:
        if not is_loopback_address(request.remote):
            return _error(403, "forbidden", "the local API answers only loopback clients")
        if any(header in request.headers for header in _FORWARDING_HEADERS):
            return _error(403, "forbidden", "the local API does not answer proxied requests")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            token.strip().encode(), self._token.encode()
        ):
            return _error(
                401,
                "unauthorized",
                "missing or wrong bearer token; it is in the server's data directory, "
                f"{LOCAL_API_FILE}",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return None

    @web.middleware
    async def guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        try:
            return await handler(request)
        except web.HTTPException as exc:
            code = "not_found" if exc.status == 404 else exc.reason.lower().replace(" ", "_")
            headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
            message = f"{request.method} {request.path}: {exc.reason}"
            return _error(exc.status, code, message, headers=headers)
        except _BadInput as exc:
            return _error(400, "bad_request", str(exc))
        except RequestNotFound as exc:
            return _error(404, "request_not_found", str(exc), request_id=exc.request_id)
        except MicrosoftApiError as exc:
            logger.warning("local API %s %s: %s", request.method, request.path, exc)
            return _error(502, "microsoft_error", f"Microsoft 365 did not answer as hoped: {exc}")
        except ProvisioningError as exc:
            logger.exception("local API %s %s failed", request.method, request.path)
            return _error(500, "internal_error", str(exc))
        except Exception:
            logger.exception("local API %s %s failed", request.method, request.path)
            return _error(500, "internal_error", "internal error; see the PhoneDesk server's log")

    # -- routes ---------------------------------------------------------------------------

    async def ping(self, request: web.Request) -> web.Response:
        return web.json_response({"service": SERVICE_NAME, "pid": os.getpid()})

    async def submit(self, request: web.Request) -> web.Response:
        body = await _body(request, _SubmitBody)
        return _outcome(await self._service(request).submit(body.actor, body.request))

    async def approve(self, request: web.Request) -> web.Response:
        request_id = _request_id(request)
        body = await _body(request, _ActorBody)
        return _outcome(await self._service(request).approve(request_id, body.actor))

    async def reject(self, request: web.Request) -> web.Response:
        request_id = _request_id(request)
        body = await _body(request, _RejectBody)
        return _outcome(await self._service(request).reject(request_id, body.actor, body.reason))

    async def cancel(self, request: web.Request) -> web.Response:
        request_id = _request_id(request)
        body = await _body(request, _CancelBody)
        return _outcome(await self._service(request).cancel(request_id, body.actor, body.reason))

    async def retry(self, request: web.Request) -> web.Response:
        request_id = _request_id(request)
        body = await _body(request, _ActorBody)
        return _outcome(await self._service(request).retry(request_id, body.actor))

    async def release(self, request: web.Request) -> web.Response:
        request_id = _request_id(request)
        body = await _body(request, _ActorBody)
        return _outcome(await self._service(request).release(request_id, body.actor))

    async def get(self, request: web.Request) -> web.Response:
        found = await self._service(request).get(_request_id(request))
        return web.json_response(found.model_dump(mode="json"))

    async def list_requests(self, request: web.Request) -> web.Response:
        service = self._service(request)
        ids = request.query.getall("id", [])
        if ids:
            try:
                wanted = [parse_request_id(value) for value in ids]
            except ValueError as exc:
                raise _BadInput(f"id: {exc}") from None
            return _requests([await service.get(request_id) for request_id in wanted])
        limit = _number(request, "limit", 50, 1, MAX_LIST_LIMIT)
        if limit != int(limit):
            raise _BadInput(f"limit: must be a whole number from 1 to {MAX_LIST_LIMIT}")
        statuses = _statuses(request)
        found = await service.list(
            requester_id=request.query.get("requester") or None,
            status=statuses or None,
            limit=int(limit),
        )
        return _requests(found)

    async def audit(self, request: web.Request) -> web.Response:
        entries = await self._service(request).audit(_request_id(request))
        return web.json_response({"entries": [e.model_dump(mode="json") for e in entries]})

    async def wait(self, request: web.Request) -> web.Response:
        service = self._service(request)
        request_id = _request_id(request)
        statuses = _statuses(request)
        if not statuses:
            raise _BadInput("status: give at least one status to wait for")
        timeout_s = _number(request, "timeout_s", 20.0, 0.0, MAX_WAIT_S)
        try:
            async with asyncio.timeout(timeout_s):
                found = await service.wait_for(request_id, statuses)
        except TimeoutError:
            found = await service.get(request_id)
        return web.json_response(
            {"reached": found.status in statuses, "request": found.model_dump(mode="json")}
        )

    async def person(self, request: web.Request) -> web.Response:
        person = Person(aad_object_id=request.match_info["object_id"])
        return web.json_response(
            {
                "aad_object_id": person.aad_object_id,
                "is_approver": self._service(request).is_approver(person),
            }
        )

    async def numbers(self, request: web.Request) -> web.Response:
        country = request.query.get("country")
        if country is not None and country.strip().upper() not in ISO_COUNTRY_CODES:
            raise _BadInput(f"country: '{country}' is not an ISO 3166 two-letter code, e.g. US")
        found = await self._service(request).numbers(country.strip() if country else None)
        return web.json_response({"numbers": [n.model_dump(mode="json") for n in found]})


def add_local_api(
    app: web.Application,
    settings: Settings,
    service_key: web.AppKey[ProvisioningService],
) -> None:
    """Serve the local API under ``/local/v1/`` and advertise it while the app runs.

    Register it after the engine's cleanup context: it is advertised once the engine is
    up and withdrawn before the engine stops.
    """
    token = secrets.token_urlsafe(32)
    api = _LocalApi(token, service_key)
    sub = web.Application(middlewares=[api.guard])
    sub.router.add_get("/ping", api.ping)
    sub.router.add_post("/requests", api.submit)
    sub.router.add_get("/requests", api.list_requests)
    sub.router.add_get("/requests/{request_id}", api.get)
    sub.router.add_post("/requests/{request_id}/approve", api.approve)
    sub.router.add_post("/requests/{request_id}/reject", api.reject)
    sub.router.add_post("/requests/{request_id}/cancel", api.cancel)
    sub.router.add_post("/requests/{request_id}/retry", api.retry)
    sub.router.add_post("/requests/{request_id}/release", api.release)
    sub.router.add_get("/requests/{request_id}/audit", api.audit)
    sub.router.add_get("/requests/{request_id}/wait", api.wait)
    sub.router.add_get("/numbers", api.numbers)
    sub.router.add_get("/people/{object_id}", api.person)
    app.add_subapp(LOCAL_API_PREFIX, sub)

    async def advertise(app: web.Application) -> AsyncIterator[None]:
        url = advertised_url(settings.host, settings.port)
        if url is None:
            logger.warning(
                "The server listens on %s only, which has no loopback address: the phonedesk "
                "CLI cannot reach its local API and will refuse to start a second engine.",
                settings.host,
            )
            yield
            return
        path = local_api_path(settings.data_dir)
        info = {
            "url": url,
            "token": token,
            "pid": os.getpid(),
            "started_at": datetime.now(UTC).isoformat(),
        }
        await asyncio.to_thread(_write_private, path, json.dumps(info))
        logger.info(
            "Local API for the phonedesk CLI at %s%s/ (token in %s)", url, LOCAL_API_PREFIX, path
        )
        try:
            yield
        finally:
            await asyncio.to_thread(_remove_if_ours, path, token)

    app.cleanup_ctx.append(advertise)


# --- client ------------------------------------------------------------------------------


class LocalApiError(Exception):
    """The server answered a local API call with an error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


_REQUESTS = TypeAdapter(list[Request])
_AUDIT = TypeAdapter(list[AuditEntry])
_NUMBERS = TypeAdapter(list[InventoryNumber])


def _path_id(request_id: str) -> str:
    return quote(request_id.strip(), safe="")


class LocalApiClient:
    """The CLI's side of the local API: the service's calls, over HTTP."""

    mode = "server"

    def __init__(self, url: str, token: str, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._timeout_s = timeout_s
        self._http = httpx.AsyncClient(
            base_url=self.url + LOCAL_API_PREFIX,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout_s),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        params: builtins.list[tuple[str, str]] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        response = await self._http.request(
            method,
            path,
            json=json_body,
            params=tuple(params) if params else None,
            timeout=httpx.Timeout(timeout_s) if timeout_s else httpx.USE_CLIENT_DEFAULT,
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and body is not None:
            return body
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            raise LocalApiError(
                response.status_code,
                "unexpected_response",
                f"{self.url} answered {method} {path} with HTTP {response.status_code}, "
                "not the PhoneDesk local API",
            )
        code = str(error.get("code", "error"))
        message = str(error.get("message", f"HTTP {response.status_code}"))
        if code == "request_not_found":
            raise RequestNotFound(str(error.get("request_id", "")))
        raise LocalApiError(response.status_code, code, message)

    async def _command(self, path: str, body: Mapping[str, Any]) -> Outcome:
        return Outcome.model_validate(await self._call("POST", path, json_body=body))

    async def ping(self) -> int:
        """The server's pid; raises when what answers is not a PhoneDesk local API."""
        body = await self._call("GET", "/ping")
        if not isinstance(body, dict) or body.get("service") != SERVICE_NAME:
            raise LocalApiError(200, "unexpected_response", f"{self.url} is not PhoneDesk")
        return int(body["pid"])

    async def submit(self, requester: Person, spec: NumberRequest) -> Outcome:
        return await self._command(
            "/requests",
            {"actor": requester.model_dump(mode="json"), "request": spec.model_dump(mode="json")},
        )

    async def approve(self, request_id: str, approver: Person) -> Outcome:
        return await self._command(
            f"/requests/{_path_id(request_id)}/approve",
            {"actor": approver.model_dump(mode="json")},
        )

    async def reject(self, request_id: str, approver: Person, reason: str) -> Outcome:
        return await self._command(
            f"/requests/{_path_id(request_id)}/reject",
            {"actor": approver.model_dump(mode="json"), "reason": reason},
        )

    async def cancel(self, request_id: str, actor: Person, reason: str | None = None) -> Outcome:
        return await self._command(
            f"/requests/{_path_id(request_id)}/cancel",
            {"actor": actor.model_dump(mode="json"), "reason": reason},
        )

    async def retry(self, request_id: str, actor: Person) -> Outcome:
        return await self._command(
            f"/requests/{_path_id(request_id)}/retry", {"actor": actor.model_dump(mode="json")}
        )

    async def release(self, request_id: str, actor: Person) -> Outcome:
        return await self._command(
            f"/requests/{_path_id(request_id)}/release", {"actor": actor.model_dump(mode="json")}
        )

    async def get(self, request_id: str) -> Request:
        return Request.model_validate(await self._call("GET", f"/requests/{_path_id(request_id)}"))

    async def get_many(self, request_ids: Iterable[str]) -> list[Request]:
        params = [("id", request_id) for request_id in request_ids]
        if not params:
            return []
        body = await self._call("GET", "/requests", params=params)
        return _REQUESTS.validate_python(body["requests"])

    async def list(
        self,
        *,
        requester_id: str | None = None,
        status: Iterable[RequestStatus] | None = None,
        limit: int = 50,
    ) -> builtins.list[Request]:
        params = [("limit", str(limit))]
        if requester_id:
            params.append(("requester", requester_id))
        params.extend(("status", s.value) for s in status or ())
        body = await self._call("GET", "/requests", params=params)
        return _REQUESTS.validate_python(body["requests"])

    async def audit(self, request_id: str) -> builtins.list[AuditEntry]:
        body = await self._call("GET", f"/requests/{_path_id(request_id)}/audit")
        return _AUDIT.validate_python(body["entries"])

    async def numbers(self, country: str | None = None) -> builtins.list[InventoryNumber]:
        body = await self._call(
            "GET", "/numbers", params=[("country", country)] if country else None
        )
        return _NUMBERS.validate_python(body["numbers"])

    async def is_approver(self, person: Person) -> bool:
        body = await self._call("GET", f"/people/{_path_id(person.aad_object_id)}")
        return bool(body["is_approver"])

    async def wait_for(
        self, request_id: str, statuses: Iterable[RequestStatus], timeout_s: float
    ) -> Request:
        """The request once in one of ``statuses``, or as it is after ``timeout_s``."""
        wait_s = min(max(timeout_s, 0.0), MAX_WAIT_S)
        params = [("status", s.value) for s in statuses]
        params.append(("timeout_s", f"{wait_s:g}"))
        body = await self._call(
            "GET",
            f"/requests/{_path_id(request_id)}/wait",
            params=params,
            timeout_s=wait_s + self._timeout_s,
        )
        return Request.model_validate(body["request"])


async def connect_local_api(data_dir: Path, *, timeout_s: float = 30.0) -> LocalApiClient | None:
    """A client for the server advertised in ``data_dir``, or None when none answers there.

    A file left by a server that died (kill -9) points at a closed port; that counts as no
    server. A server that answers but refuses the token raises ``LocalApiError``.
    """
    info = read_local_api_info(data_dir)
    if info is None:
        return None
    client = LocalApiClient(info.url, info.token.get_secret_value(), timeout_s=timeout_s)
    try:
        await client.ping()
    except (httpx.TransportError, LocalApiError) as exc:
        await client.aclose()
        if isinstance(exc, LocalApiError) and exc.status == 401:
            raise
        logger.info("no PhoneDesk server answers at %s: %s", info.url, exc)
        return None
    except BaseException:
        await client.aclose()
        raise
    return client
