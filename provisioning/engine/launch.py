"""Starting and stopping the provisioning engine: DBOS, the workflows and the service.

``open_engine`` is the one way in for the bot server, the CLI and a crash-test worker::

    async with open_engine(settings, microsoft, store, listener) as service:
        ...

It must be entered on the event loop that will run the workflows (the one the HTTP
clients belong to), because DBOS resumes recovered async workflows on the loop that was
running when it launched. DBOS is a process-wide singleton, so one engine runs per
process at a time.

One engine per SQLite system database, too: on launch DBOS resumes every unfinished
workflow of its executor id, so a second process on the same file would run the first
one's workflows a second time. ``open_engine`` therefore holds an exclusive ``flock`` on
``<workflow database>.lock`` for the engine's lifetime, with the holder's pid and name
written in it, and a second engine fails fast with ``EngineAlreadyRunning`` naming that
process. The kernel drops the lock when its process dies, even by SIGKILL, so a crashed
engine never leaves a stale lock behind. Other processes (the CLI's read-only commands)
may still use the app database: the store settles concurrency in SQL.

PostgreSQL is the scale-out path and takes no lock: replicas share one system database
and must use distinct executor ids (``EngineOptions.executor_id``), so each one's start-up
recovery resumes only its own workflows.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Final, Protocol, Self

from dbos import DBOS, DBOSConfig
from dbos._dbos import _get_or_create_dbos_registry
from sqlalchemy.engine import make_url

from provisioning.engine.workflow import ProgressListener, ProvisioningEngine
from provisioning.microsoft.graph import GraphClient
from provisioning.microsoft.teams_admin import TeamsAdminClient
from provisioning.persistence.sqlite_writes import serialized_writes
from provisioning.persistence.store import Store
from provisioning.service import ProvisioningService
from provisioning.settings import Settings

__all__ = [
    "EngineAlreadyRunning",
    "EngineHolder",
    "EngineLock",
    "EngineOptions",
    "TenantApis",
    "engine_lock_path",
    "open_engine",
    "workflow_database_url",
]

logger = logging.getLogger(__name__)

DBOS_APP_NAME = "phonedesk"
# DBOS's own busy timeout on its SQLite connections.
_SYSTEM_DB_WRITE_WAIT_S: Final = 30.0


class TenantApis(Protocol):
    """The Microsoft 365 clients the engine acts through (``runtime.Microsoft365`` fits)."""

    @property
    def graph(self) -> GraphClient: ...

    @property
    def teams_admin(self) -> TeamsAdminClient: ...


@dataclass(frozen=True)
class EngineOptions:
    system_database_url: str | None = None
    """Where DBOS keeps workflow state; default: next to the app database."""
    instance_name: str = "phonedesk"
    """Recorded with every workflow; a restarted worker must use the same one to resume."""
    executor_id: str = "local"
    notification_poll_s: float = 0.1
    """How often DBOS looks for messages and events: the latency of a decision."""
    application_version: str | None = None
    """Default: a hash of the workflow code, so changed code does not replay old histories."""
    resume_open_requests: bool = True
    """Start the workflow of any open request that lacks one (e.g. a crash right after submit)."""
    holder: str | None = None
    """Who runs this engine, named to a second engine that is refused; default: the command line."""
    dbos_log_level: str = "WARNING"
    """DBOS logs through a handler of its own, bypassing the app's logging configuration."""


@dataclass(frozen=True)
class EngineHolder:
    """The process holding an engine lock, as it wrote itself into the lock file."""

    pid: int
    name: str
    since: datetime | None = None

    def describe(self) -> str:
        since = f", since {self.since:%Y-%m-%dT%H:%M:%SZ}" if self.since else ""
        return f"process {self.pid} ({self.name}{since})"


class EngineAlreadyRunning(RuntimeError):
    """Another engine runs in this process, or on this workflow database in another one."""

    def __init__(
        self,
        message: str,
        *,
        holder: EngineHolder | None = None,
        lock_path: Path | None = None,
    ) -> None:
        super().__init__(message)
        self.holder = holder
        self.lock_path = lock_path


def _default_holder_name() -> str:
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return " ".join([program, *sys.argv[1:]])[:200]


class EngineLock:
    """An exclusive, advisory ``flock`` on a lock file, naming its holder inside the file.

    ``flock`` rather than a pid file: the kernel releases it when the process ends however
    it ends, so there is never a stale lock to clean up or a pid to second-guess.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path, holder: str) -> EngineLock:
        """Take the lock at once or raise ``EngineAlreadyRunning`` naming who holds it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = _read_holder(fd)
            os.close(fd)
            who = other.describe() if other else "another process"
            raise EngineAlreadyRunning(
                f"a PhoneDesk provisioning engine is already running on {path.with_suffix('')} "
                f"in {who}",
                holder=other,
                lock_path=path,
            ) from None
        except BaseException:
            os.close(fd)
            raise
        lock = cls(path, fd)
        record = {"pid": os.getpid(), "name": holder, "since": datetime.now(UTC).isoformat()}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode(), 0)
        except BaseException:
            lock.release()
            raise
        return lock

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            # Emptied while still held, so nobody reads a holder that has gone.
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_holder(fd: int) -> EngineHolder | None:
    try:
        record = json.loads(os.pread(fd, 4096, 0))
        since = record.get("since")
        return EngineHolder(
            pid=int(record["pid"]),
            name=str(record["name"]),
            since=datetime.fromisoformat(since).astimezone(UTC) if since else None,
        )
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        # The holder is between taking the lock and writing its name.
        return None


def engine_lock_path(system_database_url: str) -> Path | None:
    """The lock file guarding a SQLite workflow database; None for other databases."""
    url = make_url(system_database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    database = Path(url.database).resolve()
    return database.with_name(database.name + ".lock")


def workflow_database_url(settings: Settings) -> str:
    """DBOS's system database, next to the app database.

    A SQLite app database gets a sibling file; a PostgreSQL one is shared, since DBOS keeps
    its tables in a schema of its own.
    """
    app = make_url(settings.effective_database_url)
    if app.get_backend_name() != "sqlite":
        return app.render_as_string(hide_password=False)
    if app.database in (None, "", ":memory:"):
        path = (settings.data_dir / "phonedesk-workflows.sqlite").resolve()
    else:
        database = Path(app.database)
        path = database.with_name(f"{database.stem}-workflows.sqlite")
    return f"sqlite:///{path}"


class _Guard:
    """Whether this process has an engine open."""

    open = False


@asynccontextmanager
async def open_engine(
    settings: Settings,
    microsoft: TenantApis,
    store: Store,
    listener: ProgressListener | None = None,
    *,
    options: EngineOptions | None = None,
) -> AsyncIterator[ProvisioningService]:
    """Launch DBOS with the provisioning workflows; yield the service; shut down cleanly.

    Workflows still running at exit are stopped where they are and resume on the next
    launch against the same system database.
    """
    options = options or EngineOptions()
    if _Guard.open:
        raise EngineAlreadyRunning("a provisioning engine is already open in this process")
    url = options.system_database_url or workflow_database_url(settings)
    lock_path = engine_lock_path(url)
    lock = (
        None
        if lock_path is None
        else EngineLock.acquire(lock_path, options.holder or _default_holder_name())
    )
    try:
        async with _launch(settings, microsoft, store, listener, options, url) as service:
            yield service
    finally:
        if lock is not None:
            lock.release()


@asynccontextmanager
async def _launch(
    settings: Settings,
    microsoft: TenantApis,
    store: Store,
    listener: ProgressListener | None,
    options: EngineOptions,
    url: str,
) -> AsyncIterator[ProvisioningService]:
    system_db = make_url(url)
    if system_db.get_backend_name() == "sqlite" and system_db.database:
        _use_write_ahead_log(Path(system_db.database))
    config: DBOSConfig = {
        "name": DBOS_APP_NAME,
        "system_database_url": url,
        "executor_id": options.executor_id,
        "notification_listener_polling_interval_sec": options.notification_poll_s,
        "log_level": options.dbos_log_level,
    }
    if options.application_version is not None:
        config["application_version"] = options.application_version
    if system_db.get_backend_name() == "sqlite":
        # Workflows' step records queue on a lock in this process, not in SQLite's busy
        # handler; DBOS's own engine settings otherwise stay as they are.
        config["db_engine_kwargs"] = {
            "connect_args": {"factory": serialized_writes(wait_s=_SYSTEM_DB_WRITE_WAIT_S)}
        }
    loop = asyncio.get_running_loop()
    _Guard.open = True
    engine: ProvisioningEngine | None = None
    DBOS(config=config)
    try:
        engine = ProvisioningEngine(
            options.instance_name,
            settings=settings,
            graph=microsoft.graph,
            teams_admin=microsoft.teams_admin,
            store=store,
            listener=listener,
        )
        # Launched from the running loop, so DBOS resumes recovered workflows on it.
        DBOS.launch()
        logger.info(
            "provisioning engine running (workflow database %s, executor %s)",
            system_db.render_as_string(hide_password=True),
            options.executor_id,
        )
        service = ProvisioningService(
            settings, store, microsoft.graph, microsoft.teams_admin, engine
        )
        if options.resume_open_requests:
            await service.resume_open_requests()
        yield service
    finally:
        if engine is not None:
            await engine.shutdown()
        DBOS.destroy()
        if engine is not None:
            _unregister(engine)
        # DBOS made its (now shut down) thread pool this loop's default executor.
        loop.set_default_executor(ThreadPoolExecutor(thread_name_prefix="asyncio"))
        _Guard.open = False


def _use_write_ahead_log(database: Path) -> None:
    """Switch DBOS's SQLite file to WAL; the mode is stored in the file and outlives us.

    DBOS leaves SQLite in rollback-journal mode, where every read blocks writers. With
    many concurrent workflows the writers then spend their time in SQLite's busy-wait
    sleeps; in WAL mode readers never block the single writer.
    """
    database.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.closing(sqlite3.connect(database)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


def _unregister(engine: ProvisioningEngine) -> None:
    # DBOS keeps configured instances registered for the life of the process and refuses
    # a second instance under the same name, which a restarted engine needs.
    registry = _get_or_create_dbos_registry().instance_info_map
    for key in [key for key, value in registry.items() if value is engine]:
        del registry[key]
