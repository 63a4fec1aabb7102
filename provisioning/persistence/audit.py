"""The audit log, append-only, and the stages' journal that says what was audited already."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from pydantic import JsonValue
from sqlalchemy.engine import Connection

from provisioning.domain import (
    AUDITED_ONCE,
    AuditAction,
    AuditEntry,
    AuditResult,
    StageJournal,
    once_key,
)
from provisioning.persistence.chat import ChatRecords
from provisioning.persistence.errors import RequestNotFound
from provisioning.persistence.schema import audit_log_table, journal_row, request_journal_table


class AuditRecords(ChatRecords):
    """Audit entries are only ever appended: there is deliberately no update or delete."""

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
        row = journal_row(request_id, journal)
        del row["request_id"]
        try:
            self._upsert(conn, request_journal_table, {"request_id": request_id}, row)
        except sa.exc.IntegrityError:
            raise RequestNotFound(request_id) from None
