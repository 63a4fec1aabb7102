"""The `phonedesk` command line.

Commands act as a person (``--as OBJECT_ID``, default ``PHONEDESK_CLI_USER``) and go
through the same service use cases as the bot, so the same authorization applies.

Where a command runs, so that two processes never run one workflow twice:

- **A PhoneDesk server is running** (it advertises itself in ``<data dir>/local-api.json``):
  every command is sent to it over its authenticated local API. The server's engine does
  the work, so commands return at once unless ``--wait`` is given, and the Teams cards
  update as usual.
- **No server answers**: read-only commands (``status``, ``list``, ``audit``) read the
  shared database directly. Every other command starts the provisioning engine inside
  this process for its own duration, like the server would, and waits until the work it
  started has settled, because nothing runs the workflows once it exits. The engine holds
  an exclusive lock on the workflow database meanwhile; a second command that needs an
  engine is refused with the holder's name rather than run it twice.

Exit codes: 0 done, 1 refused or failed, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import builtins
import csv
import json
import logging
import os
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, NoReturn, Protocol, TextIO, TypeVar

import httpx
from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from provisioning.domain import (
    ISO_COUNTRY_CODES,
    AccountType,
    AuditEntry,
    AuditResult,
    NumberRequest,
    NumberType,
    Person,
    Request,
    RequestStatus,
    Stage,
    StageStatus,
    derive_upn,
    parse_request_id,
)
from provisioning.engine.launch import EngineAlreadyRunning, EngineOptions, open_engine
from provisioning.errors import ProvisioningError
from provisioning.interfaces.local_api import LocalApiError, connect_local_api, local_api_path
from provisioning.microsoft.connect import connect_microsoft
from provisioning.persistence.store import RequestNotFound, Store
from provisioning.service import InventoryNumber, Outcome, ProvisioningService
from provisioning.settings import ConfigError, Settings, load_settings
from provisioning.simulator.config import describe_validation_error
from provisioning.simulator.server import serve

__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "BulkFileError",
    "BulkRow",
    "ProgressDisplay",
    "has_outcome",
    "is_settled",
    "main",
    "read_bulk_file",
    "run",
]

log = logging.getLogger("phonedesk.cli")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

POLL_S: Final = 0.2
BULK_COLUMNS: Final = ("country", "area_code", "display_name")
RELEASE_COMPLETED: Final = "release.completed"
IN_FLIGHT: Final = frozenset({RequestStatus.APPROVED, RequestStatus.PROVISIONING})


class CliError(Exception):
    """Stops a command with one line for the user and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class CliIdentity(BaseSettings):
    """Who the CLI acts as when ``--as`` is not given."""

    model_config = SettingsConfigDict(
        env_prefix="PHONEDESK_CLI_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    user: str | None = None
    """An Entra object id (PHONEDESK_CLI_USER)."""
    name: str = ""
    """A display name for audit entries and messages (PHONEDESK_CLI_NAME)."""


# --- where commands run ------------------------------------------------------------------


class Reader(Protocol):
    """What the read-only commands need."""

    @property
    def mode(self) -> str: ...

    async def get(self, request_id: str) -> Request: ...

    async def get_many(self, request_ids: Iterable[str]) -> builtins.list[Request]: ...

    async def list(
        self,
        *,
        requester_id: str | None = None,
        status: Iterable[RequestStatus] | None = None,
        limit: int = 50,
    ) -> builtins.list[Request]: ...

    async def audit(self, request_id: str) -> builtins.list[AuditEntry]: ...


class Backend(Reader, Protocol):
    """The service's use cases, wherever the engine runs."""

    async def submit(self, requester: Person, spec: NumberRequest) -> Outcome: ...

    async def approve(self, request_id: str, approver: Person) -> Outcome: ...

    async def reject(self, request_id: str, approver: Person, reason: str) -> Outcome: ...

    async def cancel(
        self, request_id: str, actor: Person, reason: str | None = None
    ) -> Outcome: ...

    async def retry(self, request_id: str, actor: Person) -> Outcome: ...

    async def release(self, request_id: str, actor: Person) -> Outcome: ...

    async def numbers(self, country: str | None = None) -> builtins.list[InventoryNumber]: ...

    async def is_approver(self, person: Person) -> bool: ...


class StoreReader:
    """Reads the shared database; no engine, so it never competes for the engine lock."""

    mode = "embedded"

    def __init__(self, store: Store) -> None:
        self._store = store

    async def get(self, request_id: str) -> Request:
        normalized = parse_request_id(request_id)
        request = await asyncio.to_thread(self._store.get_request, normalized)
        if request is None:
            raise RequestNotFound(normalized)
        return request

    async def get_many(self, request_ids: Iterable[str]) -> builtins.list[Request]:
        return [await self.get(request_id) for request_id in request_ids]

    async def list(
        self,
        *,
        requester_id: str | None = None,
        status: Iterable[RequestStatus] | None = None,
        limit: int = 50,
    ) -> builtins.list[Request]:
        statuses = None if status is None else builtins.list(status)
        return await asyncio.to_thread(
            lambda: self._store.list_requests(
                requester_id=requester_id, status=statuses, limit=limit
            )
        )

    async def audit(self, request_id: str) -> builtins.list[AuditEntry]:
        request = await self.get(request_id)
        return await asyncio.to_thread(self._store.list_audit, request.id)


class EmbeddedBackend(StoreReader):
    """The service of an engine running inside this process."""

    def __init__(self, service: ProvisioningService, store: Store) -> None:
        super().__init__(store)
        self._service = service

    async def submit(self, requester: Person, spec: NumberRequest) -> Outcome:
        return await self._service.submit(requester, spec)

    async def approve(self, request_id: str, approver: Person) -> Outcome:
        return await self._service.approve(request_id, approver)

    async def reject(self, request_id: str, approver: Person, reason: str) -> Outcome:
        return await self._service.reject(request_id, approver, reason)

    async def cancel(self, request_id: str, actor: Person, reason: str | None = None) -> Outcome:
        return await self._service.cancel(request_id, actor, reason)

    async def retry(self, request_id: str, actor: Person) -> Outcome:
        return await self._service.retry(request_id, actor)

    async def release(self, request_id: str, actor: Person) -> Outcome:
        return await self._service.release(request_id, actor)

    async def numbers(self, country: str | None = None) -> builtins.list[InventoryNumber]:
        return await self._service.numbers(country)

    async def is_approver(self, person: Person) -> bool:
        return self._service.is_approver(person)


def _note(message: str) -> None:
    print(f"phonedesk: note: {message}", file=sys.stderr)


async def _open_store(settings: Settings) -> Store:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return await asyncio.to_thread(Store, settings.effective_database_url)


@asynccontextmanager
async def open_reader(settings: Settings) -> AsyncIterator[Reader]:
    """The server's local API if one answers, else the shared database."""
    server = await connect_local_api(settings.data_dir)
    if server is not None:
        async with server:
            yield server
        return
    store = await _open_store(settings)
    try:
        yield StoreReader(store)
    finally:
        store.close()


@asynccontextmanager
async def open_backend(
    settings: Settings,
    *,
    holder: str,
    before_embedding: Callable[[], None] | None = None,
    verbose: bool = False,
) -> AsyncIterator[Backend]:
    """The server's local API if one answers, else an engine in this process.

    ``before_embedding`` runs once it is clear the engine will be embedded, so a command
    can refuse what only makes sense with a server before anything starts.
    """
    server = await connect_local_api(settings.data_dir)
    if server is not None:
        async with server:
            yield server
        return
    if before_embedding is not None:
        before_embedding()
    if settings.uses_simulator and not settings.simulator_url:
        _note(
            "no PhoneDesk server is running, so this command runs the engine itself against "
            "a fresh in-process Microsoft 365 simulator whose tenant is gone when it ends; "
            "for tenant state that lasts, run `phonedesk simulator` and set "
            "PHONEDESK_SIMULATOR_URL=http://127.0.0.1:5081, or start the server."
        )
    async with AsyncExitStack() as stack:
        store = await _open_store(settings)
        stack.callback(store.close)
        microsoft = await stack.enter_async_context(connect_microsoft(settings))
        try:
            service = await stack.enter_async_context(
                open_engine(
                    settings,
                    microsoft,
                    store,
                    # DBOS's own warnings are about its internals, not the user's command.
                    options=EngineOptions(
                        holder=holder, dbos_log_level="INFO" if verbose else "ERROR"
                    ),
                )
            )
        except EngineAlreadyRunning as exc:
            raise CliError(_busy_message(exc, settings)) from None
        yield EmbeddedBackend(service, store)


def _busy_message(exc: EngineAlreadyRunning, settings: Settings) -> str:
    if exc.lock_path is None:
        return str(exc)
    who = exc.holder.describe() if exc.holder else "another process"
    advert = local_api_path(settings.data_dir)
    return (
        f"the provisioning engine is busy: {who} runs it on {exc.lock_path.with_suffix('')}, "
        f"and no PhoneDesk server advertised in {advert} answers to take this command; "
        "try again once that process has finished"
    )


# --- waiting -----------------------------------------------------------------------------


def _compensated(request: Request) -> bool:
    return all(state.status is StageStatus.CANCELLED for state in request.stages)


def is_settled(request: Request) -> bool:
    """Nothing is in flight: the request waits for a person, or is done with."""
    if request.status in IN_FLIGHT:
        return False
    if request.status is RequestStatus.CANCELLED:
        return _compensated(request)
    return True


def has_outcome(request: Request) -> bool:
    """Settled past approval: completed, failed, rejected, expired or cancelled."""
    return request.status is not RequestStatus.PENDING_APPROVAL and is_settled(request)


def _current_stage(request: Request) -> str:
    for state in request.stages:
        if state.status in (StageStatus.RUNNING, StageStatus.FAILED):
            position = f"{state.stage.number}/{len(Stage)}"
            return f"stage {position} {state.stage.label} {state.status.value}"
    return ""


class ProgressDisplay:
    """Progress on stderr: one updating line on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self._stream = stream
        self._total = total
        self._tty = stream.isatty()
        self._seen: dict[str, str] = {}
        self._drawn = False

    def update(self, requests: Mapping[str, Request], done: Iterable[str]) -> None:
        finished = set(done)
        if self._tty:
            self._draw(requests, finished)
            return
        for request in requests.values():
            line = f"{request.id}  {request.status.value}  {_current_stage(request)}".rstrip()
            if self._seen.get(request.id) != line:
                self._seen[request.id] = line
                print(line, file=self._stream, flush=True)

    def _draw(self, requests: Mapping[str, Request], finished: set[str]) -> None:
        counts: dict[str, int] = {}
        for request_id in finished:
            status = requests[request_id].status.value
            counts[status] = counts.get(status, 0) + 1
        width = 20
        filled = width * len(finished) // max(self._total, 1)
        parts = [f"[{'#' * filled}{'-' * (width - filled)}] {len(finished)}/{self._total}"]
        parts.extend(f"{n} {status}" for status, n in sorted(counts.items()))
        busy = [r for r in requests.values() if r.id not in finished]
        if busy:
            parts.append(f"{busy[0].id} {_current_stage(busy[0]) or busy[0].status.value}")
        columns = shutil.get_terminal_size((80, 24)).columns
        line = " · ".join(parts)[: max(columns - 1, 10)]
        self._stream.write(f"\r{line}\x1b[K")
        self._stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()


async def _wait(
    reader: Reader,
    request_ids: Sequence[str],
    done: Callable[[Request], bool],
    *,
    timeout_s: float | None,
) -> dict[str, Request]:
    """Poll until ``done`` holds for every request; the latest state of each.

    Polling the store (or the server) rather than the workflow: it is the source of truth,
    works the same in both modes and shows each stage as it changes.
    """
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    latest: dict[str, Request] = {}
    finished: set[str] = set()
    display = ProgressDisplay(sys.stderr, len(request_ids))
    try:
        while True:
            pending = [request_id for request_id in request_ids if request_id not in finished]
            for request in await reader.get_many(pending):
                latest[request.id] = request
                if done(request):
                    finished.add(request.id)
            display.update(latest, finished)
            if len(finished) == len(request_ids):
                return latest
            if deadline is not None and loop.time() >= deadline:
                raise _WaitTimedOut(latest, finished)
            await asyncio.sleep(POLL_S)
    finally:
        display.close()


class _WaitTimedOut(Exception):
    def __init__(self, latest: dict[str, Request], finished: set[str]) -> None:
        super().__init__("timed out")
        self.latest = latest
        self.finished = finished


async def _wait_one(
    reader: Reader, request_id: str, done: Callable[[Request], bool], args: argparse.Namespace
) -> Request:
    try:
        return (await _wait(reader, [request_id], done, timeout_s=args.timeout))[request_id]
    except _WaitTimedOut as exc:
        status = exc.latest[request_id].status.label.lower()
        raise CliError(
            f"{request_id} is still {status} after {args.timeout:g} s; {_carries_on(reader)}"
        ) from None


def _carries_on(reader: Reader) -> str:
    if reader.mode == "server":
        return "it carries on in the PhoneDesk server"
    return "it resumes the next time an engine runs (e.g. `phonedesk status ID --wait`)"


async def _wait_released(reader: Reader, request_id: str, args: argparse.Namespace) -> AuditEntry:
    loop = asyncio.get_running_loop()
    deadline = None if args.timeout is None else loop.time() + args.timeout
    while True:
        for entry in await reader.audit(request_id):
            if entry.action == RELEASE_COMPLETED:
                return entry
        if deadline is not None and loop.time() >= deadline:
            raise CliError(
                f"{request_id} is still being released after {args.timeout:g} s; "
                f"{_carries_on(reader)}"
            )
        await asyncio.sleep(POLL_S)


# --- output ------------------------------------------------------------------------------


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cell(value: object) -> str:
    # Text from chat ends up here; a terminal must not run escape sequences hidden in it.
    text = "-" if value is None or value == "" else str(value)
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        widths = [max(width, len(value)) for width, value in zip(widths, row, strict=True)]
    lines = [
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in [list(headers), *cells]
    ]
    return "\n".join(lines)


def _person(person: Person) -> str:
    if person.display_name:
        return f"{person.display_name} ({person.aad_object_id})"
    return person.aad_object_id


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _describe(request: Request) -> str:
    rid = request.id
    result = request.result
    match request.status:
        case RequestStatus.COMPLETED:
            return (
                f"{rid} completed: {result.telephone_number} is bound to {result.upn} "
                f"(license {result.sku_part_number or result.sku_id})."
            )
        case RequestStatus.FAILED:
            failure = request.failure
            if failure is None:
                return f"{rid} failed."
            then = (
                f"fix the cause, then `phonedesk retry {rid}`"
                if failure.retryable
                else f"`phonedesk cancel {rid}` gives back what it holds"
            )
            return f"{rid} failed at {failure.stage.label}: {failure.reason} ({then})"
        case RequestStatus.CANCELLED:
            return f"{rid} cancelled; what it had reserved or created has been undone."
        case RequestStatus.REJECTED:
            decision = request.decision
            if decision is None:
                return f"{rid} rejected."
            return f"{rid} rejected by {_person(decision.by)}: {decision.reason}"
        case RequestStatus.EXPIRED:
            return f"{rid} expired: nobody approved it in time."
        case RequestStatus.PENDING_APPROVAL:
            return f"{rid} waits for an approver."
        case _:
            return f"{rid} is {request.status.label.lower()}."


def _print_request(request: Request) -> None:
    where = f"area code {request.area_code}" if request.area_code else "any area code"
    lines = [
        f"{request.id}  {request.status.label}",
        f"  display name  {_cell(request.display_name)}",
        f"  number        {request.country}, {where}, {request.number_type.value}",
        f"  account type  {request.account_type.label}",
        f"  requested     {_when(request.created_at)} by {_cell(_person(request.requester))}",
    ]
    if request.decision is not None:
        decision = request.decision
        verb = "approved" if decision.approved else "rejected"
        reason = f": {_cell(decision.reason)}" if decision.reason else ""
        lines.append(f"  {verb:<12}  {_when(decision.at)} by {_cell(_person(decision.by))}{reason}")
    result = request.result
    for label, value in (
        ("telephone", result.telephone_number),
        ("account", result.upn),
        ("license", result.sku_part_number or result.sku_id),
    ):
        if value:
            lines.append(f"  {label:<12}  {value}")
    if request.failure is not None:
        failure = request.failure
        retry = "retryable" if failure.retryable else "not retryable"
        lines.append(f"  failure       {failure.stage.label}: {_cell(failure.reason)} ({retry})")
    print("\n".join(lines))
    print()
    print(
        _table(
            ["STAGE", "STATUS", "STARTED", "FINISHED", "DETAIL"],
            [
                [
                    f"{state.stage.number} {state.stage.label}",
                    state.status.value,
                    _when(state.started_at),
                    _when(state.finished_at),
                    state.error or state.detail,
                ]
                for state in request.stages
            ],
        )
    )


def _print_requests(requests: Sequence[Request]) -> None:
    if not requests:
        print("No requests.")
        return
    print(
        _table(
            ["ID", "STATUS", "COUNTRY", "AREA", "DISPLAY NAME", "NUMBER", "REQUESTER", "CREATED"],
            [
                [
                    r.id,
                    r.status.value,
                    r.country,
                    r.area_code or "any",
                    r.display_name,
                    r.result.telephone_number,
                    r.requester.display_name or r.requester.aad_object_id,
                    _when(r.created_at),
                ]
                for r in requests
            ],
        )
    )


def _details(details: Mapping[str, Any]) -> str:
    return " ".join(
        f"{key}={json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value}"
        for key, value in details.items()
        if value is not None and key != "actor_name"
    )


def _print_audit(entries: Sequence[AuditEntry]) -> None:
    print(
        _table(
            ["AT", "ACTOR", "ACTION", "RESULT", "DETAILS"],
            [
                [
                    _when(e.at),
                    e.details.get("actor_name") or e.actor,
                    e.action,
                    e.result.value,
                    _details(e.details),
                ]
                for e in entries
            ],
        )
    )


# --- arguments ---------------------------------------------------------------------------


def _request_id_arg(text: str) -> str:
    try:
        return parse_request_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


EnumT = TypeVar("EnumT", bound=StrEnum)


def _enum_arg(enum: type[EnumT]) -> Callable[[str], EnumT]:
    by_key = {member.value.casefold().replace("-", "_"): member for member in enum}

    def parse(text: str) -> EnumT:
        member = by_key.get(text.strip().casefold().replace("-", "_"))
        if member is None:
            choices = ", ".join(m.value for m in enum)
            raise argparse.ArgumentTypeError(f"'{text}' is not one of {choices}")
        return member

    parse.__name__ = enum.__name__
    return parse


def _statuses_arg(text: str) -> list[RequestStatus]:
    parse = _enum_arg(RequestStatus)
    return [parse(part) for part in text.split(",") if part.strip()]


def _country_arg(text: str) -> str:
    code = text.strip().upper()
    if code not in ISO_COUNTRY_CODES:
        raise argparse.ArgumentTypeError(f"'{text}' is not an ISO 3166 two-letter code, e.g. US")
    return code


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"phonedesk: {message}\n")


def _build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON instead of text")
    common.add_argument(
        "--as",
        dest="actor_id",
        metavar="OBJECT_ID",
        help="act as this Entra object id (default: PHONEDESK_CLI_USER)",
    )
    common.add_argument(
        "--name",
        dest="actor_name",
        metavar="NAME",
        help="your display name (default: PHONEDESK_CLI_NAME)",
    )
    common.add_argument(
        "-v", "--verbose", action="count", default=0, help="log more (-vv for debug)"
    )
    waiting = _Parser(add_help=False)
    waiting.add_argument(
        "--wait",
        action="store_true",
        help="wait until the work has settled (always so when no server is running)",
    )
    waiting.add_argument(
        "--timeout", type=_positive_float, metavar="SECONDS", help="give up waiting after this"
    )

    parser = _Parser(
        prog="phonedesk",
        description="Get phone numbers for IVR bots in Microsoft 365: number, resource account, "
        "license and binding, with approval. Commands go through a running PhoneDesk server "
        "when there is one, else they run the engine themselves.",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    def command(name: str, help: str, *parents: _Parser) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, parents=[common, *parents])

    request = command("request", "ask for a phone number for an IVR bot", waiting)
    request.add_argument("country", help="ISO country code, e.g. US")
    request.add_argument("area_code", metavar="AREA", help="area code, e.g. 425, or 'any'")
    request.add_argument("display_name", nargs="+", metavar="DISPLAY_NAME")
    request.add_argument("--number-type", type=_enum_arg(NumberType), choices=list(NumberType))
    request.add_argument("--account-type", type=_enum_arg(AccountType), choices=list(AccountType))
    request.add_argument(
        "--approve-as", metavar="OBJECT_ID", help="approve it at once as this approver"
    )

    approve = command("approve", "approve a pending request", waiting)
    approve.add_argument("request_id", type=_request_id_arg, metavar="ID")

    reject = command("reject", "reject a pending request")
    reject.add_argument("request_id", type=_request_id_arg, metavar="ID")
    reject.add_argument("--reason", required=True, help="why, shown to the requester")

    status = command("status", "show a request and its four stages", waiting)
    status.add_argument("request_id", type=_request_id_arg, metavar="ID")

    list_ = command("list", "list requests, newest first")
    list_.add_argument("--mine", action="store_true", help="only requests you made")
    list_.add_argument(
        "--status",
        type=_statuses_arg,
        action="append",
        metavar="STATUS[,STATUS]",
        help="only these statuses, e.g. failed or pending_approval",
    )
    list_.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")

    cancel = command("cancel", "cancel an open request and undo what it did", waiting)
    cancel.add_argument("request_id", type=_request_id_arg, metavar="ID")
    cancel.add_argument("--reason", help="why, for the audit log")

    retry = command("retry", "run a failed request again from the failed stage", waiting)
    retry.add_argument("request_id", type=_request_id_arg, metavar="ID")

    release = command(
        "release", "give back a completed request's number, license and account", waiting
    )
    release.add_argument("request_id", type=_request_id_arg, metavar="ID")

    audit = command("audit", "show a request's audit trail")
    audit.add_argument("request_id", type=_request_id_arg, metavar="ID")

    numbers = command("numbers", "list unassigned service numbers in the tenant")
    numbers.add_argument("--country", type=_country_arg, help="only this ISO country code")

    bulk = command(
        "bulk",
        "submit every row of a CSV file (header: country,area_code,display_name) and follow "
        "them to the end",
    )
    bulk.add_argument("file", type=Path, metavar="FILE.csv")
    bulk.add_argument(
        "--approve-as", metavar="OBJECT_ID", help="approve each request at once as this approver"
    )
    bulk.add_argument("--number-type", type=_enum_arg(NumberType), choices=list(NumberType))
    bulk.add_argument("--account-type", type=_enum_arg(AccountType), choices=list(AccountType))
    bulk.add_argument(
        "--no-wait",
        action="store_true",
        help="with a server running: submit (and approve) only, do not follow them",
    )
    bulk.add_argument(
        "--timeout", type=_positive_float, metavar="SECONDS", help="give up waiting after this"
    )

    simulator = commands.add_parser(
        "simulator",
        help="run the Microsoft 365 simulator on its own",
        description="Serve the Microsoft 365 simulator (token, Graph and Teams admin endpoints, "
        "plus /_sim admin endpoints) until interrupted. Knobs come from PHONEDESK_SIMULATOR__* "
        "variables.",
    )
    simulator.add_argument("--host", default="127.0.0.1", help="address to listen on")
    simulator.add_argument("--port", type=int, default=5081, help="port (default 5081)")
    simulator.add_argument("--time-scale", type=float, help="multiplier on simulated durations")
    simulator.add_argument("--seed", type=int, help="random seed for reproducible behaviour")
    return parser


# --- commands ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    settings: Settings
    args: argparse.Namespace
    holder: str

    @property
    def json(self) -> bool:
        return bool(self.args.json)

    def actor(self, why: str) -> Person:
        identity = CliIdentity()
        object_id = (self.args.actor_id or identity.user or "").strip()
        if not object_id:
            raise CliError(
                f"{why} needs to know who you are: pass --as OBJECT_ID (your Entra object id) "
                "or set PHONEDESK_CLI_USER",
                EXIT_USAGE,
            )
        return Person(aad_object_id=object_id, display_name=self.args.actor_name or identity.name)

    def backend(
        self, before_embedding: Callable[[], None] | None = None
    ) -> AbstractAsyncContextManager[Backend]:
        return open_backend(
            self.settings,
            holder=self.holder,
            before_embedding=before_embedding,
            verbose=bool(self.args.verbose),
        )


def _refused(ctx: _Context, outcome: Outcome) -> int:
    if ctx.json:
        _print_json(outcome.model_dump(mode="json"))
    else:
        print(f"phonedesk: {outcome.message}", file=sys.stderr)
    return EXIT_FAILED


def _report(ctx: _Context, outcome: Outcome, final: Request | None, ok: bool) -> int:
    """Print what a command did and, if it waited, where the request ended up."""
    if ctx.json:
        body = outcome.model_dump(mode="json")
        if final is not None:
            body["request"] = final.model_dump(mode="json")
        _print_json(body)
    else:
        print(outcome.message)
        if final is not None:
            print(_describe(final))
    return EXIT_OK if ok else EXIT_FAILED


def _spec(
    country: str,
    area_code: str | None,
    display_name: str,
    number_type: NumberType | None,
    account_type: AccountType | None,
) -> NumberRequest:
    values: dict[str, Any] = {
        "country": country,
        "area_code": area_code,
        "display_name": display_name,
    }
    if number_type is not None:
        values["number_type"] = number_type
    if account_type is not None:
        values["account_type"] = account_type
    return NumberRequest.model_validate(values)


async def _check_approver(backend: Backend, approver: Person, requester: Person) -> None:
    """Refuse an auto-approval that the service would refuse, before anything is submitted."""
    if approver.aad_object_id.casefold() == requester.aad_object_id.casefold():
        raise CliError(
            "--approve-as must be someone other than the requester: nobody approves their "
            "own request; nothing was submitted"
        )
    if not await backend.is_approver(approver):
        raise CliError(
            f"{approver.aad_object_id} is not an approver (PHONEDESK_APPROVERS); "
            "nothing was submitted"
        )


def _can_approve_elsewhere(wait: bool, approve_as: str | None) -> Callable[[], None]:
    def check() -> None:
        if wait and not approve_as:
            raise CliError(
                "--wait needs --approve-as when no PhoneDesk server is running: this command "
                "holds the engine, so nobody else can approve the request meanwhile",
                EXIT_USAGE,
            )

    return check


async def _cmd_request(ctx: _Context) -> int:
    args = ctx.args
    requester = ctx.actor("request")
    try:
        spec = _spec(
            args.country,
            args.area_code,
            " ".join(args.display_name),
            args.number_type,
            args.account_type,
        )
    except ValidationError as exc:
        raise CliError(describe_validation_error(exc), EXIT_USAGE) from None
    approver = Person(aad_object_id=args.approve_as) if args.approve_as else None
    async with ctx.backend(_can_approve_elsewhere(args.wait, args.approve_as)) as backend:
        if approver is not None:
            await _check_approver(backend, approver, requester)
        outcome = await backend.submit(requester, spec)
        if not outcome.ok or outcome.request is None:
            return _refused(ctx, outcome)
        request_id = outcome.request.id
        if approver is not None:
            decided = await backend.approve(request_id, approver)
            if not decided.ok:
                message = f"{request_id} was submitted but not approved: {decided.message}"
                return _refused(ctx, decided.model_copy(update={"message": message}))
            outcome = Outcome(
                ok=True, message=f"{outcome.message}\n{decided.message}", request=decided.request
            )
        if args.wait or (backend.mode == "embedded" and approver is not None):
            final = await _wait_one(backend, request_id, has_outcome, args)
            return _report(ctx, outcome, final, final.status is RequestStatus.COMPLETED)
        if backend.mode == "embedded" and not ctx.json:
            _note(
                f"{request_id} waits for an approver: `phonedesk approve {request_id} --as "
                "APPROVER_ID`, or approve it in Teams once the server runs"
            )
        return _report(ctx, outcome, None, True)


async def _decide_and_follow(
    ctx: _Context,
    act: Callable[[Backend, str, Person], Awaitable[Outcome]],
    why: str,
    done: Callable[[Request], bool],
    succeeded: Callable[[Request], bool],
) -> int:
    args = ctx.args
    actor = ctx.actor(why)
    async with ctx.backend() as backend:
        outcome = await act(backend, args.request_id, actor)
        if not outcome.ok:
            return _refused(ctx, outcome)
        if args.wait or backend.mode == "embedded":
            final = await _wait_one(backend, args.request_id, done, args)
            return _report(ctx, outcome, final, succeeded(final))
        return _report(ctx, outcome, None, True)


async def _cmd_approve(ctx: _Context) -> int:
    return await _decide_and_follow(
        ctx,
        lambda backend, request_id, actor: backend.approve(request_id, actor),
        "approve",
        has_outcome,
        lambda request: request.status is RequestStatus.COMPLETED,
    )


async def _cmd_retry(ctx: _Context) -> int:
    return await _decide_and_follow(
        ctx,
        lambda backend, request_id, actor: backend.retry(request_id, actor),
        "retry",
        has_outcome,
        lambda request: request.status is RequestStatus.COMPLETED,
    )


async def _cmd_cancel(ctx: _Context) -> int:
    reason = ctx.args.reason
    return await _decide_and_follow(
        ctx,
        lambda backend, request_id, actor: backend.cancel(request_id, actor, reason),
        "cancel",
        is_settled,
        lambda request: request.status is RequestStatus.CANCELLED,
    )


async def _cmd_reject(ctx: _Context) -> int:
    args = ctx.args
    approver = ctx.actor("reject")
    async with ctx.backend() as backend:
        outcome = await backend.reject(args.request_id, approver, args.reason)
        if not outcome.ok:
            return _refused(ctx, outcome)
        return _report(ctx, outcome, None, True)


async def _cmd_release(ctx: _Context) -> int:
    args = ctx.args
    actor = ctx.actor("release")
    async with ctx.backend() as backend:
        outcome = await backend.release(args.request_id, actor)
        if not outcome.ok:
            return _refused(ctx, outcome)
        if not (args.wait or backend.mode == "embedded"):
            return _report(ctx, outcome, None, True)
        entry = await _wait_released(backend, args.request_id, args)
        problem = entry.details.get("problem")
        ok = entry.result is AuditResult.OK
        if ctx.json:
            body = outcome.model_dump(mode="json")
            body["release"] = entry.model_dump(mode="json")
            _print_json(body)
        else:
            print(outcome.message)
            print(
                f"{args.request_id} released."
                if ok
                else f"{args.request_id}: release incomplete: {problem}"
            )
        return EXIT_OK if ok else EXIT_FAILED


async def _cmd_status(ctx: _Context) -> int:
    args = ctx.args
    if args.wait:
        async with ctx.backend() as backend:
            request = await _wait_one(backend, args.request_id, is_settled, args)
    else:
        async with open_reader(ctx.settings) as reader:
            request = await reader.get(args.request_id)
            if reader.mode == "embedded" and request.status in IN_FLIGHT:
                _note(
                    f"{request.id} is in flight but no PhoneDesk server is running: it moves on "
                    "only while a phonedesk command runs the engine "
                    f"(`phonedesk status {request.id} --wait`), or once the server starts"
                )
    if ctx.json:
        _print_json(request.model_dump(mode="json"))
    else:
        _print_request(request)
    return EXIT_OK


async def _cmd_list(ctx: _Context) -> int:
    args = ctx.args
    requester = ctx.actor("list --mine").aad_object_id if args.mine else None
    statuses = [status for group in args.status or [] for status in group] or None
    if not 1 <= args.limit <= 1000:
        raise CliError("--limit must be from 1 to 1000", EXIT_USAGE)
    async with open_reader(ctx.settings) as reader:
        requests = await reader.list(requester_id=requester, status=statuses, limit=args.limit)
    if ctx.json:
        _print_json([request.model_dump(mode="json") for request in requests])
    else:
        _print_requests(requests)
    return EXIT_OK


async def _cmd_audit(ctx: _Context) -> int:
    async with open_reader(ctx.settings) as reader:
        entries = await reader.audit(ctx.args.request_id)
    if ctx.json:
        _print_json([entry.model_dump(mode="json") for entry in entries])
    else:
        _print_audit(entries)
    return EXIT_OK


async def _cmd_numbers(ctx: _Context) -> int:
    country = ctx.args.country
    async with ctx.backend() as backend:
        numbers = await backend.numbers(country)
    if ctx.json:
        _print_json([number.model_dump(mode="json") for number in numbers])
    elif not numbers:
        print("No unassigned service numbers" + (f" in {country.upper()}." if country else "."))
    else:
        print(
            _table(
                ["NUMBER", "COUNTRY", "CITY", "TYPE", "VOICE APPS", "CLAIMED BY"],
                [
                    [
                        n.telephone_number,
                        n.country,
                        n.city,
                        n.number_type,
                        "yes" if n.voice_application_capable else "no",
                        n.claimed_by,
                    ]
                    for n in numbers
                ],
            )
        )
    return EXIT_OK


# --- bulk --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkRow:
    line: int
    spec: NumberRequest


class BulkFileError(Exception):
    """Rows that cannot be submitted, each message starting with its line number."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def _column(name: str) -> str:
    return name.strip().casefold().replace(" ", "_").replace("-", "_")


def read_bulk_file(
    path: Path,
    upn_domain: str,
    *,
    number_type: NumberType | None = None,
    account_type: AccountType | None = None,
) -> list[BulkRow]:
    """Every row of a bulk CSV, or ``BulkFileError`` listing every bad row.

    All rows are checked before any is submitted, so a bad file submits nothing.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}", EXIT_USAGE) from None
    except UnicodeDecodeError:
        raise CliError(f"{path} is not UTF-8 text", EXIT_USAGE) from None
    reader = csv.reader(text.splitlines(keepends=True))
    header: list[str] | None = None
    rows: list[BulkRow] = []
    problems: list[str] = []
    names: dict[str, int] = {}
    previous_end = 0
    try:
        for record in reader:
            line, previous_end = previous_end + 1, reader.line_num
            if not any(field.strip() for field in record):
                continue
            if header is None:
                header = [_column(field) for field in record]
                if sorted(header) != sorted(BULK_COLUMNS):
                    raise BulkFileError(
                        [
                            f"line {line}: the header must name the columns "
                            f"{','.join(BULK_COLUMNS)}; found {','.join(record)}"
                        ]
                    )
                continue
            if len(record) != len(header):
                problems.append(
                    f"line {line}: expected {len(header)} fields "
                    f"({','.join(header)}), found {len(record)}"
                )
                continue
            values = dict(zip(header, record, strict=True))
            try:
                spec = _spec(
                    values["country"],
                    values["area_code"],
                    values["display_name"],
                    number_type,
                    account_type,
                )
                derive_upn(spec.display_name, upn_domain)
            except ValidationError as exc:
                problems.append(f"line {line}: {describe_validation_error(exc)}")
                continue
            except ValueError as exc:
                problems.append(f"line {line}: {exc}")
                continue
            key = spec.display_name.casefold()
            if key in names:
                problems.append(
                    f"line {line}: display name '{spec.display_name}' is already on line "
                    f"{names[key]}"
                )
                continue
            names[key] = line
            rows.append(BulkRow(line=line, spec=spec))
    except csv.Error as exc:
        problems.append(f"line {reader.line_num}: {exc}")
    if header is None:
        problems.append(f"{path} is empty; expected a header {','.join(BULK_COLUMNS)}")
    elif not rows and not problems:
        problems.append(f"{path} has a header but no requests")
    if problems:
        raise BulkFileError(problems)
    return rows


async def _cmd_bulk(ctx: _Context) -> int:
    args = ctx.args
    requester = ctx.actor("bulk")
    try:
        rows = read_bulk_file(
            args.file,
            ctx.settings.effective_upn_domain,
            number_type=args.number_type,
            account_type=args.account_type,
        )
    except BulkFileError as exc:
        for problem in exc.problems:
            print(f"phonedesk: {args.file}: {problem}", file=sys.stderr)
        print(
            f"phonedesk: {len(exc.problems)} bad row(s) in {args.file}; nothing was submitted",
            file=sys.stderr,
        )
        return EXIT_USAGE
    approver = Person(aad_object_id=args.approve_as) if args.approve_as else None
    async with ctx.backend() as backend:
        if approver is not None:
            await _check_approver(backend, approver, requester)
        submitted: dict[str, BulkRow] = {}
        refused: list[tuple[BulkRow, str]] = []
        for row in rows:
            outcome = await backend.submit(requester, row.spec)
            if not outcome.ok or outcome.request is None:
                refused.append((row, outcome.message))
                continue
            submitted[outcome.request.id] = row
            if approver is not None:
                decided = await backend.approve(outcome.request.id, approver)
                if not decided.ok:
                    refused.append((row, f"{outcome.request.id}: {decided.message}"))
        ids = builtins.list(submitted)
        if backend.mode == "server":
            follow = not args.no_wait
        else:
            # Approved work moves on only while this engine runs; unapproved work cannot,
            # since nobody else can approve while this command holds the engine.
            follow = approver is not None
            if not follow:
                _note(
                    "the requests wait for an approver: approve them with `phonedesk approve`, "
                    "or in Teams once the server runs"
                )
        if follow:
            try:
                latest = await _wait(backend, ids, has_outcome, timeout_s=args.timeout)
            except _WaitTimedOut as exc:
                latest = exc.latest
                _note(
                    f"{len(ids) - len(exc.finished)} request(s) still in flight after "
                    f"{args.timeout:g} s; {_carries_on(backend)}"
                )
        else:
            latest = {request.id: request for request in await backend.get_many(ids)}
    ok = not refused and all(
        request.status is RequestStatus.COMPLETED or (not follow and is_settled(request))
        for request in latest.values()
    )
    ordered = sorted(latest.values(), key=lambda request: submitted[request.id].line)
    if ctx.json:
        _print_json(
            {
                "ok": ok,
                "requests": [
                    {"line": submitted[r.id].line, **r.model_dump(mode="json")} for r in ordered
                ],
                "refused": [{"line": row.line, "message": message} for row, message in refused],
            }
        )
        return EXIT_OK if ok else EXIT_FAILED
    print(
        _table(
            [
                "LINE",
                "ID",
                "DISPLAY NAME",
                "COUNTRY",
                "AREA",
                "STATUS",
                "NUMBER",
                "ACCOUNT",
                "NOTE",
            ],
            [
                [
                    submitted[r.id].line,
                    r.id,
                    r.display_name,
                    r.country,
                    r.area_code or "any",
                    r.status.value,
                    r.result.telephone_number,
                    r.result.upn,
                    r.failure.reason if r.failure else None,
                ]
                for r in ordered
            ],
        )
    )
    for row, message in refused:
        print(f"phonedesk: {args.file}: line {row.line}: refused: {message}", file=sys.stderr)
    counts: dict[str, int] = {}
    for request in ordered:
        counts[request.status.value] = counts.get(request.status.value, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    if refused:
        summary += f", {len(refused)} refused"
    print(f"{len(rows)} row(s): {summary}")
    return EXIT_OK if ok else EXIT_FAILED


# --- simulator ---------------------------------------------------------------------------


async def _cmd_simulator(args: argparse.Namespace, settings: Settings) -> int:
    config = settings.simulator
    changes = {
        name: value
        for name, value in (("time_scale", args.time_scale), ("seed", args.seed))
        if value is not None
    }
    if changes:
        try:
            config = config.model_validate({**config.model_dump(), **changes})
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc)) from None
    try:
        await serve(config, host=args.host, port=args.port)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    return EXIT_OK


# --- entry points ------------------------------------------------------------------------

_COMMANDS: Final[Mapping[str, Callable[[_Context], Awaitable[int]]]] = {
    "request": _cmd_request,
    "approve": _cmd_approve,
    "reject": _cmd_reject,
    "status": _cmd_status,
    "list": _cmd_list,
    "cancel": _cmd_cancel,
    "retry": _cmd_retry,
    "release": _cmd_release,
    "audit": _cmd_audit,
    "numbers": _cmd_numbers,
    "bulk": _cmd_bulk,
}


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _parse(argv: Sequence[str]) -> argparse.Namespace | int:
    try:
        return _build_parser().parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


async def _dispatch(args: argparse.Namespace, argv: Sequence[str], given: Settings | None) -> int:
    try:
        settings = given or load_settings()
    except ConfigError as exc:
        print(f"phonedesk: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "simulator":
            return await _cmd_simulator(args, settings)
        holder = " ".join(["phonedesk", *argv])[:200]
        return await _COMMANDS[args.command](_Context(settings, args, holder))
    except CliError as exc:
        print(f"phonedesk: {exc}", file=sys.stderr)
        return exc.exit_code
    except ConfigError as exc:
        print(f"phonedesk: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except RequestNotFound as exc:
        print(f"phonedesk: there is no request {exc.request_id}", file=sys.stderr)
        return EXIT_FAILED
    except LocalApiError as exc:
        print(f"phonedesk: the PhoneDesk server said: {_one_line(exc.message)}", file=sys.stderr)
        return EXIT_USAGE if exc.status == 400 else EXIT_FAILED
    except httpx.HTTPError as exc:
        print(
            f"phonedesk: lost contact with the PhoneDesk server: {exc or type(exc).__name__}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except EngineAlreadyRunning as exc:
        print(f"phonedesk: {_busy_message(exc, settings)}", file=sys.stderr)
        return EXIT_FAILED
    except ProvisioningError as exc:
        print(f"phonedesk: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        raise
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"phonedesk: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        log.debug("unexpected error", exc_info=True)
        print(
            f"phonedesk: unexpected error: {type(exc).__name__}: {_one_line(str(exc))} "
            "(run with -vv for the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED


async def run(argv: Sequence[str], *, settings: Settings | None = None) -> int:
    """Run one command on the running event loop; ``settings`` default to the environment."""
    args = _parse(argv)
    if isinstance(args, int):
        return args
    return await _dispatch(args, argv, settings)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = builtins.list(sys.argv[1:] if argv is None else argv)
    args = _parse(arguments)
    if isinstance(args, int):
        return args
    verbosity = getattr(args, "verbose", 0)
    logging.basicConfig(
        level=logging.INFO
        if args.command == "simulator" or verbosity == 1
        else logging.DEBUG
        if verbosity > 1
        else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return asyncio.run(_dispatch(args, arguments, None))
    except BrokenPipeError:
        # The reader (e.g. `| head`) has gone; stop quietly, and keep the interpreter's final
        # flush from failing on the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except KeyboardInterrupt:
        if args.command == "simulator":
            return EXIT_OK
        print(
            "phonedesk: interrupted; work in flight carries on in the server, or resumes the "
            "next time an engine runs",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
