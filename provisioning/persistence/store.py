"""SQL persistence: requests, stage history, audit, number claims and chat state.

SQLite is the default and PostgreSQL (``postgresql+psycopg://…``) the choice for several
replicas; only portable SQL is used, plus each dialect's ``INSERT … ON CONFLICT`` upsert.

The store is synchronous. Its queries are small and local, DBOS steps are plain functions,
and an async engine would need a driver (aiosqlite) PhoneDesk does not ship. Code on an
event loop calls it through ``asyncio.to_thread``; the engine is thread-safe.

Concurrency is settled in the database, not in memory, because the bot server and the CLI
are separate processes sharing one file:

- SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
  ``BEGIN IMMEDIATE`` so it takes the write lock up front instead of failing halfway when
  it tries to upgrade a read lock.
- Status changes are compare-and-set (:meth:`Store.transition`): of two concurrent
  decisions on one request exactly one wins and the other gets ``None``.
- A telephone number is claimed by inserting it under a primary key, so two requests can
  never hold the same number.

All timestamps come back timezone-aware in UTC, whatever the backend kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, JsonValue, TypeAdapter
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Dialect, Engine, RowMapping, make_url
from sqlalchemy.exc import IntegrityError

from provisioning.domain import (
    AUDITED_ONCE,
    UPN_HOLDING_STATUSES,
    AuditAction,
    AuditEntry,
    AuditResult,
    NumberRequest,
    Person,
    Request,
    RequestStatus,
    StageJournal,
    StageState,
    TelephoneNumber,
    can_transition,
    new_request_id,
    once_key,
    utc_now,
)
from provisioning.errors import ProvisioningError
from provisioning.persistence.sqlite_writes import serialized_writes

__all__ = [
    "SCHEMA_VERSION",
    "CardActivity",
    "InvalidTransition",
    "RequestNotFound",
    "SchemaVersionError",
    "Store",
    "StoreError",
    "default_database_url",
    "metadata",
]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2

_ID_ATTEMPTS = 20
# pg_advisory_xact_lock key for choosing UPNs ("PDUPN" as a number).
_UPN_LOCK = 0x5044_5550_4E
_IMMEDIATE = "phonedesk_begin_immediate"
# Fields that say who asked and when; a status change must never rewrite them.
_IMMUTABLE_FIELDS = frozenset({"id", "tenant_id", "requester", "created_at", "updated_at"})


class StoreError(ProvisioningError):
    """Root of the store's errors."""


class SchemaVersionError(StoreError):
    """The database was written by a newer PhoneDesk than this one."""


class RequestNotFound(StoreError, LookupError):
    def __init__(self, request_id: str) -> None:
        super().__init__(f"no request {request_id}")
        self.request_id = request_id


class InvalidTransition(StoreError, ValueError):
    """A caller asked for a status change the lifecycle does not allow: a programming error."""


class CardActivity(BaseModel):
    """A progress card posted for a request in one conversation, to be updated in place."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    conversation_key: str
    activity_id: str
    posted_at: datetime


def default_database_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'phonedesk.sqlite3').resolve()}"


# --- schema ------------------------------------------------------------------------------


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Stores aware datetimes as UTC and hands them back aware.

    SQLite keeps no offset, so values are written as naive UTC and re-labelled on the way
    out; PostgreSQL's timestamptz round-trips on its own.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"refusing to store naive datetime {value!r}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime from the database, got {value!r}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _json() -> sa.JSON:
    return sa.JSON(none_as_null=True)


metadata = sa.MetaData()

schema_version_table = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
)

requests_table = sa.Table(
    "requests",
    metadata,
    sa.Column("id", sa.String(16), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("requester_id", sa.String(64), nullable=False, index=True),
    sa.Column("requester_name", sa.String(256), nullable=False),
    sa.Column("country", sa.String(2), nullable=False),
    sa.Column("area_code", sa.String(16)),
    sa.Column("display_name", sa.String(256), nullable=False),
    sa.Column("number_type", sa.String(64), nullable=False),
    sa.Column("account_type", sa.String(32), nullable=False),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("created_at", UtcDateTime, nullable=False, index=True),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column("decision", _json()),
    sa.Column("result", _json(), nullable=False),
    sa.Column("failure", _json()),
)

request_stages_table = sa.Table(
    "request_stages",
    metadata,
    sa.Column(
        "request_id",
        sa.String(16),
        sa.ForeignKey("requests.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("stage", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UtcDateTime),
    sa.Column("finished_at", UtcDateTime),
    sa.Column("detail", sa.Text),
    sa.Column("error", sa.Text),
)

request_journal_table = sa.Table(
    "request_journal",
    metadata,
    sa.Column(
        "request_id",
        sa.String(16),
        sa.ForeignKey("requests.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("orders_asked", sa.Integer, nullable=False),
    sa.Column("account_asked_upn", sa.String(256)),
    sa.Column("synced_account_id", sa.String(64)),
    sa.Column("deleted_account_id", sa.String(64)),
    sa.Column("audited", _json(), nullable=False),
)

# No foreign key to requests: refused attempts on ids that do not exist are audited too.
audit_log_table = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(16), index=True),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("at", UtcDateTime, nullable=False),
    sa.Column("result", sa.String(16), nullable=False),
    sa.Column("details", _json(), nullable=False),
)

number_claims_table = sa.Table(
    "number_claims",
    metadata,
    sa.Column("telephone_number", sa.String(16), primary_key=True),
    sa.Column(
        "request_id",
        sa.String(16),
        sa.ForeignKey("requests.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("claimed_at", UtcDateTime, nullable=False),
)

conversation_refs_table = sa.Table(
    "conversation_refs",
    metadata,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("reference", _json(), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

card_activities_table = sa.Table(
    "card_activities",
    metadata,
    sa.Column(
        "request_id",
        sa.String(16),
        sa.ForeignKey("requests.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("conversation_key", sa.String, primary_key=True),
    sa.Column("activity_id", sa.String, nullable=False),
    sa.Column("posted_at", UtcDateTime, nullable=False),
)

dialog_state_table = sa.Table(
    "dialog_state",
    metadata,
    sa.Column("conversation_id", sa.String, primary_key=True),
    sa.Column("user_id", sa.String(128), primary_key=True),
    sa.Column("state", _json(), nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False, index=True),
)

settings_kv_table = sa.Table(
    "settings_kv",
    metadata,
    sa.Column("key", sa.String(128), primary_key=True),
    sa.Column("value", _json()),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)


def _journal_from_audit(entries: Iterable[RowMapping]) -> StageJournal:
    """What schema 1 kept only in the audit trail, read back once when upgrading."""
    orders = 0
    asked: str | None = None
    synced: str | None = None
    deleted: str | None = None
    audited: set[str] = set()
    for entry in entries:
        action, details = entry["action"], entry["details"] or {}
        if action in (AuditAction.ORDER_REQUESTED, AuditAction.ORDER_PLACED):
            _, _, attempt = str(details.get("order", "")).rpartition("-")
            orders = max(orders, int(attempt) if attempt.isdigit() else 0)
        elif action == AuditAction.ACCOUNT_CREATE_REQUESTED:
            asked = details.get("upn")
        elif action == AuditAction.ACCOUNT_CREATE_REFUSED and details.get("upn") == asked:
            asked = None
        elif action == AuditAction.ACCOUNT_SYNCED:
            synced = details.get("account_id")
        elif action == AuditAction.ACCOUNT_DELETED:
            deleted = details.get("account_id")
        if action in AUDITED_ONCE and AUDITED_ONCE[AuditAction(action)] in details:
            audited.add(once_key(AuditAction(action), details))
    return StageJournal(
        orders_asked=orders,
        account_asked_upn=asked,
        synced_account_id=synced,
        deleted_account_id=deleted,
        audited=frozenset(audited),
    )


def _migrate_to_2(conn: Connection) -> None:
    # Schema 1 also kept a stage_history table that nothing read.
    conn.execute(sa.text("DROP TABLE IF EXISTS stage_history"))
    # Schema 2 keeps the stages' memory in request_journal; requests in flight during the
    # upgrade must not forget an order or an account they asked for.
    ids = conn.execute(sa.select(requests_table.c.id)).scalars().all()
    for request_id in ids:
        entries = (
            conn.execute(
                sa.select(audit_log_table)
                .where(audit_log_table.c.request_id == request_id)
                .order_by(audit_log_table.c.id)
            )
            .mappings()
            .all()
        )
        journal = _journal_from_audit(entries)
        if journal != StageJournal():
            conn.execute(request_journal_table.insert().values(_journal_row(request_id, journal)))


def _journal_row(request_id: str, journal: StageJournal) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "orders_asked": journal.orders_asked,
        "account_asked_upn": journal.account_asked_upn,
        "synced_account_id": journal.synced_account_id,
        "deleted_account_id": journal.deleted_account_id,
        "audited": sorted(journal.audited),
    }


# Steps from version N to N+1, keyed by N+1. Version 1 is the first schema.
_MIGRATIONS: Mapping[int, Callable[[Connection], None]] = {2: _migrate_to_2}

_telephone_number = TypeAdapter(TelephoneNumber)


# --- engine ------------------------------------------------------------------------------


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


# --- the store ---------------------------------------------------------------------------


class Store:
    """PhoneDesk's SQL store. One instance per process; safe to share between threads."""

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
                _MIGRATIONS[version](conn)
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

    # --- requests ------------------------------------------------------------------------

    def create_request(self, *, tenant_id: str, requester: Person, spec: NumberRequest) -> Request:
        """Store a new request, pending approval, under a fresh unique id."""
        now = self._clock()
        for _ in range(_ID_ATTEMPTS):
            request = Request(
                id=self._new_id(),
                tenant_id=tenant_id,
                requester=requester,
                created_at=now,
                updated_at=now,
                **spec.model_dump(include=set(NumberRequest.model_fields)),
            )
            try:
                with self._write() as conn:
                    conn.execute(requests_table.insert().values(_request_row(request)))
                    conn.execute(
                        request_stages_table.insert(),
                        [_stage_row(request.id, state) for state in request.stages],
                    )
            except IntegrityError:
                if self.get_request(request.id) is None:
                    raise
                logger.debug("request id %s already taken; drawing another", request.id)
                continue
            return request
        raise StoreError(f"no free request id after {_ID_ATTEMPTS} attempts")

    def get_request(self, request_id: str) -> Request | None:
        with self._read() as conn:
            row = (
                conn.execute(sa.select(requests_table).where(requests_table.c.id == request_id))
                .mappings()
                .one_or_none()
            )
            return None if row is None else _load_requests(conn, [row])[0]

    def list_requests(
        self,
        *,
        requester_id: str | None = None,
        status: RequestStatus | Iterable[RequestStatus] | None = None,
        tenant_id: str | None = None,
        limit: int = 50,
    ) -> list[Request]:
        """Requests matching every given filter, newest first."""
        query = sa.select(requests_table)
        if requester_id is not None:
            query = query.where(requests_table.c.requester_id == requester_id)
        if tenant_id is not None:
            query = query.where(requests_table.c.tenant_id == tenant_id)
        if status is not None:
            statuses = [status] if isinstance(status, RequestStatus) else list(status)
            query = query.where(requests_table.c.status.in_([s.value for s in statuses]))
        query = query.order_by(
            requests_table.c.created_at.desc(), requests_table.c.id.desc()
        ).limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
            return _load_requests(conn, rows)

    def taken_upns(self, *, besides: str | None = None) -> frozenset[str]:
        """The UPNs (casefolded) of requests that hold one, except request ``besides``.

        Reads one column instead of whole requests with their stages: the chat asks this
        on every dialog turn, and the workflow on every UPN it chooses.
        """
        with self._read() as conn:
            return self._taken_upns(conn, besides)

    def assign_upn(self, request_id: str, choose: Callable[[frozenset[str]], str]) -> Request:
        """Give a request the UPN ``choose`` picks from the UPNs others hold, atomically.

        One transaction, so two requests for the same name at once get different UPNs.
        """
        with self._write() as conn:
            if conn.dialect.name == "postgresql":
                # SQLite's BEGIN IMMEDIATE serializes this already; PostgreSQL needs a lock.
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_UPN_LOCK)))
            upn = choose(self._taken_upns(conn, request_id))
            updated = self._compare_and_set_on(
                conn,
                request_id,
                frozenset(RequestStatus),
                lambda current: {"result": current.result.model_copy(update={"upn": upn})},
            )
        assert updated is not None  # any status is expected
        return updated

    @staticmethod
    def _taken_upns(conn: Connection, besides: str | None) -> frozenset[str]:
        query = sa.select(requests_table.c.id, requests_table.c.result).where(
            requests_table.c.status.in_([s.value for s in UPN_HOLDING_STATUSES])
        )
        return frozenset(
            str(row.result["upn"]).casefold()
            for row in conn.execute(query)
            if row.id != besides and (row.result or {}).get("upn")
        )

    def transition(
        self,
        request_id: str,
        expected: RequestStatus | Iterable[RequestStatus],
        new: RequestStatus,
        **changes: Any,
    ) -> Request | None:
        """Move a request to ``new`` if, and only if, its status is still one of ``expected``.

        ``changes`` sets other fields in the same atomic step (``decision=…``,
        ``result=…``, ``failure=None``). Returns the updated request, or ``None`` when the
        status had already moved on, e.g. someone else decided first. Raises
        :class:`RequestNotFound` for an unknown id and :class:`InvalidTransition` when the
        lifecycle forbids ``expected -> new``.
        """
        expected_set = _status_set(expected)
        refused = sorted(s.value for s in expected_set if not can_transition(s, new))
        if refused:
            raise InvalidTransition(f"{', '.join(refused)} -> {new.value} is not allowed")
        return self._compare_and_set(request_id, expected_set, {**changes, "status": new})

    def update_request(
        self,
        request_id: str,
        *,
        expected: RequestStatus | Iterable[RequestStatus],
        **changes: Any,
    ) -> Request | None:
        """Change fields without a status change, if the status is still one of ``expected``."""
        if "status" in changes:
            raise TypeError("use transition() to change a request's status")
        return self._compare_and_set(request_id, _status_set(expected), changes)

    def merge_result(self, request_id: str, **fields: str | None) -> Request:
        """Set some fields of a request's result, whatever its status, in one transaction.

        Reading and writing in the same transaction means two writers of different fields
        (a stage and the account it starts early) never undo each other's write.
        """
        updated = self._compare_and_set(
            request_id,
            frozenset(RequestStatus),
            lambda current: {
                "result": current.result.model_validate({**current.result.model_dump(), **fields})
            },
        )
        assert updated is not None  # any status is expected
        return updated

    def _compare_and_set(
        self,
        request_id: str,
        expected: frozenset[RequestStatus],
        changes: Mapping[str, Any] | Callable[[Request], Mapping[str, Any]],
    ) -> Request | None:
        with self._write() as conn:
            return self._compare_and_set_on(conn, request_id, expected, changes)

    def _compare_and_set_on(
        self,
        conn: Connection,
        request_id: str,
        expected: frozenset[RequestStatus],
        changes: Mapping[str, Any] | Callable[[Request], Mapping[str, Any]],
    ) -> Request | None:
        row = (
            conn.execute(
                sa.select(requests_table).where(requests_table.c.id == request_id).with_for_update()
            )
            .mappings()
            .one_or_none()
        )
        if row is None:
            raise RequestNotFound(request_id)
        current = _load_requests(conn, [row])[0]
        if current.status not in expected:
            return None
        if callable(changes):
            changes = changes(current)
        self._check_changes(changes)
        updated = Request.model_validate({**dict(current), **changes, "updated_at": self._clock()})
        values = _request_row(updated)
        del values["id"]
        outcome = conn.execute(
            sa.update(requests_table)
            .where(requests_table.c.id == request_id)
            .where(requests_table.c.status.in_([s.value for s in expected]))
            .values(values)
        )
        return updated if outcome.rowcount == 1 else None

    @staticmethod
    def _check_changes(changes: Mapping[str, Any]) -> None:
        unknown = set(changes) - set(Request.model_fields)
        if unknown:
            raise TypeError(f"Request has no field(s) {', '.join(sorted(unknown))}")
        fixed = set(changes) & _IMMUTABLE_FIELDS
        if fixed:
            raise TypeError(f"cannot change {', '.join(sorted(fixed))} of a stored request")
        if "stages" in changes:
            raise TypeError("stages change through record_stage()")

    # --- stages --------------------------------------------------------------------------

    def record_stage(self, request_id: str, state: StageState) -> Request:
        """Set one stage's state; return the request."""
        now = self._clock()
        with self._write() as conn:
            outcome = conn.execute(
                sa.update(request_stages_table)
                .where(request_stages_table.c.request_id == request_id)
                .where(request_stages_table.c.stage == state.stage.value)
                .values(_stage_row(request_id, state))
            )
            if outcome.rowcount != 1:
                raise RequestNotFound(request_id)
            conn.execute(
                sa.update(requests_table)
                .where(requests_table.c.id == request_id)
                .values(updated_at=now)
            )
            row = (
                conn.execute(sa.select(requests_table).where(requests_table.c.id == request_id))
                .mappings()
                .one()
            )
            return _load_requests(conn, [row])[0]

    # --- audit (append-only: deliberately no update or delete) ----------------------------

    def append_audit(
        self,
        *,
        actor: str,
        action: AuditAction | str,
        request_id: str | None = None,
        result: AuditResult = AuditResult.OK,
        details: Mapping[str, JsonValue] | None = None,
    ) -> AuditEntry:
        payload = dict(details or {})
        with self._write() as conn:
            self._note_audited(conn, request_id, action, payload)
            return self._insert_audit(conn, actor, action, request_id, result, payload)

    def _insert_audit(
        self,
        conn: Connection,
        actor: str,
        action: AuditAction | str,
        request_id: str | None,
        result: AuditResult,
        details: dict[str, JsonValue],
    ) -> AuditEntry:
        at = self._clock()
        entry_id = conn.execute(
            audit_log_table.insert()
            .values(
                request_id=request_id,
                actor=actor,
                action=str(action),
                at=at,
                result=result.value,
                details=details,
            )
            .returning(audit_log_table.c.id)
        ).scalar_one()
        return AuditEntry(
            id=entry_id,
            request_id=request_id,
            actor=actor,
            action=str(action),
            at=at,
            result=result,
            details=details,
        )

    def list_audit(
        self, request_id: str | None = None, *, limit: int | None = None
    ) -> list[AuditEntry]:
        """Audit entries (of one request, or all), oldest first; ``limit`` keeps the latest."""
        query = sa.select(audit_log_table).order_by(audit_log_table.c.id.desc())
        if request_id is not None:
            query = query.where(audit_log_table.c.request_id == request_id)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [AuditEntry.model_validate(dict(row)) for row in reversed(rows)]

    # --- the stages' journal ---------------------------------------------------------------

    def load_journal(self, request_id: str) -> StageJournal:
        with self._read() as conn:
            return self._journal(conn, request_id)

    def update_journal(self, request_id: str, **changes: str | int | None) -> StageJournal:
        """Set some fields of a request's journal in one transaction; returns it."""
        with self._write() as conn:
            journal = self._journal(conn, request_id, lock=True).model_copy(update=changes)
            self._save_journal(conn, request_id, journal)
            return StageJournal.model_validate(journal.model_dump())

    def audit_once(
        self,
        *,
        actor: str,
        action: AuditAction,
        request_id: str,
        details: Mapping[str, JsonValue],
    ) -> AuditEntry | None:
        """Audit an effect unless it was audited before (see ``AUDITED_ONCE``)."""
        payload = dict(details)
        with self._write() as conn:
            if not self._note_audited(conn, request_id, action, payload):
                return None
            return self._insert_audit(conn, actor, action, request_id, AuditResult.OK, payload)

    def _note_audited(
        self,
        conn: Connection,
        request_id: str | None,
        action: AuditAction | str,
        details: Mapping[str, JsonValue],
    ) -> bool:
        """Record that an ``AUDITED_ONCE`` effect is audited; False if it already was."""
        if request_id is None or action not in AUDITED_ONCE:
            return True
        kind = AuditAction(action)
        if AUDITED_ONCE[kind] not in details:
            return True
        key = once_key(kind, details)
        journal = self._journal(conn, request_id, lock=True)
        if key in journal.audited:
            return False
        self._save_journal(
            conn, request_id, journal.model_copy(update={"audited": journal.audited | {key}})
        )
        return True

    @staticmethod
    def _journal(conn: Connection, request_id: str, *, lock: bool = False) -> StageJournal:
        query = sa.select(request_journal_table).where(
            request_journal_table.c.request_id == request_id
        )
        row = conn.execute(query.with_for_update() if lock else query).mappings().one_or_none()
        if row is None:
            return StageJournal()
        fields = {name: row[name] for name in StageJournal.model_fields}
        return StageJournal.model_validate({**fields, "audited": frozenset(row["audited"])})

    def _save_journal(self, conn: Connection, request_id: str, journal: StageJournal) -> None:
        row = _journal_row(request_id, journal)
        del row["request_id"]
        try:
            self._upsert(conn, request_journal_table, {"request_id": request_id}, row)
        except sa.exc.IntegrityError:
            raise RequestNotFound(request_id) from None

    # --- number claims -------------------------------------------------------------------

    def claim_number(self, telephone_number: str, request_id: str) -> bool:
        """Reserve an inventory number for a request.

        True when the request now holds the number, including when it already did (a
        replayed workflow step); False when another request holds it.
        """
        number = _telephone_number.validate_python(telephone_number)
        for _ in range(3):
            try:
                with self._write() as conn:
                    conn.execute(
                        number_claims_table.insert().values(
                            telephone_number=number,
                            request_id=request_id,
                            claimed_at=self._clock(),
                        )
                    )
                return True
            except IntegrityError:
                holder = self.claimed_by(number)
                if holder is not None:
                    return holder == request_id
                if self.get_request(request_id) is None:
                    raise RequestNotFound(request_id) from None
                # Released between our insert and our look-up: try again.
        return False

    def release_claim(self, telephone_number: str, request_id: str | None = None) -> bool:
        """Free a number; with ``request_id``, only if that request holds it."""
        query = sa.delete(number_claims_table).where(
            number_claims_table.c.telephone_number == telephone_number
        )
        if request_id is not None:
            query = query.where(number_claims_table.c.request_id == request_id)
        with self._write() as conn:
            return conn.execute(query).rowcount == 1

    def claimed_by(self, telephone_number: str) -> str | None:
        query = sa.select(number_claims_table.c.request_id).where(
            number_claims_table.c.telephone_number == telephone_number
        )
        with self._read() as conn:
            holder = conn.execute(query).scalar_one_or_none()
        return None if holder is None else str(holder)

    def list_claims(self, request_id: str | None = None) -> dict[str, str]:
        """Claimed numbers mapped to the request holding each."""
        query = sa.select(number_claims_table).order_by(number_claims_table.c.telephone_number)
        if request_id is not None:
            query = query.where(number_claims_table.c.request_id == request_id)
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return {str(row["telephone_number"]): str(row["request_id"]) for row in rows}

    # --- chat state ----------------------------------------------------------------------

    def save_conversation_ref(self, key: str, reference: Mapping[str, JsonValue]) -> None:
        with self._write() as conn:
            self._upsert(
                conn,
                conversation_refs_table,
                {"key": key},
                {"reference": dict(reference), "updated_at": self._clock()},
            )

    def load_conversation_ref(self, key: str) -> dict[str, JsonValue] | None:
        query = sa.select(conversation_refs_table.c.reference).where(
            conversation_refs_table.c.key == key
        )
        with self._read() as conn:
            reference = conn.execute(query).scalar_one_or_none()
        return None if reference is None else dict(reference)

    def add_card_activity(self, request_id: str, conversation_key: str, activity_id: str) -> None:
        """Remember the card posted for a request in a conversation; a re-post replaces it."""
        with self._write() as conn:
            self._upsert(
                conn,
                card_activities_table,
                {"request_id": request_id, "conversation_key": conversation_key},
                {"activity_id": activity_id, "posted_at": self._clock()},
            )

    def list_card_activities(self, request_id: str) -> list[CardActivity]:
        query = (
            sa.select(card_activities_table)
            .where(card_activities_table.c.request_id == request_id)
            .order_by(card_activities_table.c.posted_at, card_activities_table.c.conversation_key)
        )
        with self._read() as conn:
            rows = conn.execute(query).mappings().all()
        return [CardActivity.model_validate(dict(row)) for row in rows]

    def save_dialog_state(
        self, conversation_id: str, user_id: str, state: Mapping[str, JsonValue]
    ) -> None:
        with self._write() as conn:
            self._upsert(
                conn,
                dialog_state_table,
                {"conversation_id": conversation_id, "user_id": user_id},
                {"state": dict(state), "updated_at": self._clock()},
            )

    def load_dialog_state(self, conversation_id: str, user_id: str) -> dict[str, JsonValue] | None:
        query = sa.select(dialog_state_table.c.state).where(
            dialog_state_table.c.conversation_id == conversation_id,
            dialog_state_table.c.user_id == user_id,
        )
        with self._read() as conn:
            state = conn.execute(query).scalar_one_or_none()
        return None if state is None else dict(state)

    def delete_dialog_state(self, conversation_id: str, user_id: str) -> bool:
        query = sa.delete(dialog_state_table).where(
            dialog_state_table.c.conversation_id == conversation_id,
            dialog_state_table.c.user_id == user_id,
        )
        with self._write() as conn:
            return conn.execute(query).rowcount == 1

    def expire_dialog_states(self, idle_for: timedelta) -> int:
        """Forget dialogs untouched for longer than ``idle_for``; returns how many."""
        cutoff = self._clock() - idle_for
        query = sa.delete(dialog_state_table).where(dialog_state_table.c.updated_at < cutoff)
        with self._write() as conn:
            return conn.execute(query).rowcount

    def get_kv(self, key: str) -> JsonValue:
        """A stored setting, or None when unset."""
        query = sa.select(settings_kv_table.c.value).where(settings_kv_table.c.key == key)
        with self._read() as conn:
            value: JsonValue = conn.execute(query).scalar_one_or_none()
        return value

    def set_kv(self, key: str, value: JsonValue) -> None:
        with self._write() as conn:
            self._upsert(
                conn,
                settings_kv_table,
                {"key": key},
                {"value": value, "updated_at": self._clock()},
            )


# --- row mapping -------------------------------------------------------------------------


def _status_set(statuses: RequestStatus | Iterable[RequestStatus]) -> frozenset[RequestStatus]:
    if isinstance(statuses, RequestStatus):
        return frozenset({statuses})
    return frozenset(statuses)


def _dump(model: BaseModel | None) -> dict[str, Any] | None:
    return None if model is None else model.model_dump(mode="json")


def _request_row(request: Request) -> dict[str, Any]:
    return {
        "id": request.id,
        "tenant_id": request.tenant_id,
        "requester_id": request.requester.aad_object_id,
        "requester_name": request.requester.display_name,
        "country": request.country,
        "area_code": request.area_code,
        "display_name": request.display_name,
        "number_type": request.number_type.value,
        "account_type": request.account_type.value,
        "status": request.status.value,
        "created_at": request.created_at,
        "updated_at": request.updated_at,
        "decision": _dump(request.decision),
        "result": _dump(request.result),
        "failure": _dump(request.failure),
    }


def _stage_row(request_id: str, state: StageState) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "stage": state.stage.value,
        "status": state.status.value,
        "started_at": state.started_at,
        "finished_at": state.finished_at,
        "detail": state.detail,
        "error": state.error,
    }


def _load_requests(conn: Connection, rows: Iterable[RowMapping]) -> list[Request]:
    rows = list(rows)
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    stage_rows = (
        conn.execute(
            sa.select(request_stages_table).where(request_stages_table.c.request_id.in_(ids))
        )
        .mappings()
        .all()
    )
    stages: dict[str, list[dict[str, Any]]] = {request_id: [] for request_id in ids}
    for stage_row in stage_rows:
        stages[stage_row["request_id"]].append(
            {key: value for key, value in stage_row.items() if key != "request_id"}
        )
    return [
        Request.model_validate(
            {
                "id": row["id"],
                "tenant_id": row["tenant_id"],
                "requester": {
                    "aad_object_id": row["requester_id"],
                    "display_name": row["requester_name"],
                },
                "country": row["country"],
                "area_code": row["area_code"],
                "display_name": row["display_name"],
                "number_type": row["number_type"],
                "account_type": row["account_type"],
                "status": row["status"],
                "created_at": row["created_at"],
                "updated_at": row["updated_at"],
                "decision": row["decision"],
                "result": row["result"],
                "failure": row["failure"],
                "stages": stages[row["id"]],
            }
        )
        for row in rows
    ]
