"""Opening the database: SQLite in WAL mode with ordered writers, or PostgreSQL.

Only portable SQL is used, plus each dialect's ``INSERT … ON CONFLICT`` upsert. Every
SQLite write transaction starts with ``BEGIN IMMEDIATE``, so it takes the write lock up
front instead of failing halfway when it tries to upgrade a read lock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url

from provisioning.domain import (
    new_request_id,
    utc_now,
)
from provisioning.persistence.errors import SchemaVersionError, StoreError
from provisioning.persistence.schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    metadata,
    schema_version_table,
)
from provisioning.persistence.sqlite_writes import serialized_writes

logger = logging.getLogger(__name__)

_IMMEDIATE = "phonedesk_begin_immediate"


def _create_engine(url: URL, busy_timeout: timedelta) -> Engine:
    if url.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url, busy_timeout)
    if url.get_backend_name() == "postgresql":
        return sa.create_engine(url, pool_pre_ping=True)
    raise StoreError(f"unsupported database {url.get_backend_name()!r}; use sqlite or postgresql")


def _create_sqlite_engine(url: URL, busy_timeout: timedelta) -> Engine:
    if url.database in (None, "", ":memory:"):
        # Each pooled connection would get its own empty database: refuse rather than
        # fail later with missing tables.
        raise StoreError("an in-memory SQLite database cannot be shared; use a file")
    Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    # The writers of this process take turns on a lock rather than in SQLite's busy handler.
    connection_class = serialized_writes(wait_s=busy_timeout.total_seconds())
    engine = sa.create_engine(url, connect_args={"factory": connection_class})
    timeout_ms = int(busy_timeout.total_seconds() * 1000)

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Turn off pysqlite's own implicit BEGIN so ours (below) decides the lock mode.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """A connection to PhoneDesk's database, its schema prepared; the stores build on it."""

    def __init__(
        self,
        url: str | URL,
        *,
        clock: Callable[[], datetime] = utc_now,
        new_id: Callable[[], str] = new_request_id,
        busy_timeout: timedelta = timedelta(seconds=10),
    ) -> None:
        self._url = make_url(url)
        self._clock = clock
        self._new_id = new_id
        self._engine = _create_engine(self._url, busy_timeout)
        self._write_engine = self._engine.execution_options(**{_IMMEDIATE: True})
        try:
            self._prepare_schema()
        except BaseException:
            self._engine.dispose()
            raise
        logger.info("store ready at %s", self._url.render_as_string(hide_password=True))

    def close(self) -> None:
        self._engine.dispose()

    @property
    def backend(self) -> str:
        """The database dialect, e.g. "sqlite" or "postgresql"."""
        return self._url.get_backend_name()

    def ping(self) -> bool:
        """True when the database answers a trivial query; used by /healthz."""
        try:
            with self._read() as conn:
                conn.execute(sa.text("SELECT 1"))
        except sa.exc.SQLAlchemyError:
            logger.exception("database ping failed")
            return False
        return True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._write_engine.begin() as conn:
            yield conn

    def _prepare_schema(self) -> None:
        with self._write() as conn:
            schema_version_table.create(conn, checkfirst=True)
            found = conn.execute(sa.select(sa.func.max(schema_version_table.c.version))).scalar()
            if found is not None and found > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"the database at {self._url.render_as_string(hide_password=True)} has "
                    f"schema version {found}, newer than the {SCHEMA_VERSION} this PhoneDesk "
                    "knows; upgrade PhoneDesk or point it at another database"
                )
            metadata.create_all(conn)
            if found is None:
                conn.execute(schema_version_table.insert().values(version=SCHEMA_VERSION))
                return
            for version in range(found + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version](conn)
                conn.execute(schema_version_table.insert().values(version=version))

    def schema_version(self) -> int:
        with self._read() as conn:
            found = conn.execute(
                sa.select(sa.func.max(schema_version_table.c.version))
            ).scalar_one()
        return int(found)

    def _upsert(
        self,
        conn: Connection,
        table: sa.Table,
        keys: Mapping[str, Any],
        values: Mapping[str, Any],
    ) -> None:
        if conn.dialect.name == "sqlite":
            lite = sqlite.insert(table).values({**keys, **values})
            conn.execute(lite.on_conflict_do_update(index_elements=list(keys), set_=values))
        else:
            pg = postgresql.insert(table).values({**keys, **values})
            conn.execute(pg.on_conflict_do_update(index_elements=list(keys), set_=values))
