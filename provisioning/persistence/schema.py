"""The tables, and the steps that bring an older database up to this schema."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect, RowMapping

from provisioning.domain import (
    AUDITED_ONCE,
    AuditAction,
    StageJournal,
    once_key,
)

SCHEMA_VERSION = 2


def default_database_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'phonedesk.sqlite3').resolve()}"


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
            conn.execute(request_journal_table.insert().values(journal_row(request_id, journal)))


def journal_row(request_id: str, journal: StageJournal) -> dict[str, Any]:
    return {
        "request_id": request_id,
        "orders_asked": journal.orders_asked,
        "account_asked_upn": journal.account_asked_upn,
        "synced_account_id": journal.synced_account_id,
        "deleted_account_id": journal.deleted_account_id,
        "audited": sorted(journal.audited),
    }


# Steps from version N to N+1, keyed by N+1. Version 1 is the first schema.
MIGRATIONS: Mapping[int, Callable[[Connection], None]] = {2: _migrate_to_2}
