"""Starting and stopping the provisioning engine: DBOS, the workflows and the service.

``open_engine`` is the one way in for the bot server, the CLI and a crash-test worker::

    async with open_engine(settings, microsoft, store, listener) as service:
        ...

It must be entered on the event loop that will run the workflows (the one the HTTP
clients belong to), because DBOS resumes recovered async workflows on the loop that was
running when it launched. DBOS is a process-wide singleton, so one engine runs per
process at a time.

Two processes that launch an engine on one system database must use different executor
ids; otherwise each one's start-up recovery would resume the other's running workflows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dbos import DBOS, DBOSConfig
from dbos._dbos import _get_or_create_dbos_registry
from sqlalchemy.engine import make_url

from provisioning.microsoft.graph import GraphClient
from provisioning.microsoft.teams_admin import TeamsAdminClient
from provisioning.service import ProvisioningService
from provisioning.settings import Settings
from provisioning.store import Store
from provisioning.workflow import ProgressListener, ProvisioningEngine

__all__ = [
    "EngineAlreadyRunning",
    "EngineOptions",
    "TenantApis",
    "open_engine",
    "workflow_database_url",
]

logger = logging.getLogger(__name__)

DBOS_APP_NAME = "phonedesk"


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


class EngineAlreadyRunning(RuntimeError):
    """DBOS is a process-wide singleton; a second engine would silently share the first."""


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
    system_db = make_url(url)
    if system_db.get_backend_name() == "sqlite" and system_db.database:
        _use_write_ahead_log(Path(system_db.database))
    config: DBOSConfig = {
        "name": DBOS_APP_NAME,
        "system_database_url": url,
        "executor_id": options.executor_id,
        "notification_listener_polling_interval_sec": options.notification_poll_s,
        "log_level": "WARNING",
    }
    if options.application_version is not None:
        config["application_version"] = options.application_version
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
