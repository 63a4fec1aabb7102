"""PhoneDesk's store: requests, their stages, the audit, the stages' journal, number claims.

Concurrency is settled in the database, not in memory, because the bot server and the CLI
are separate processes sharing one database: status changes are compare-and-set
(:meth:`Store.transition`), so of two concurrent decisions exactly one wins; a number is
claimed by inserting it under a primary key, so two requests never hold the same one.
All timestamps come back timezone-aware in UTC, whatever the backend kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, TypeAdapter
from sqlalchemy.engine import Connection, RowMapping
from sqlalchemy.exc import IntegrityError

from provisioning.domain import (
    UPN_HOLDING_STATUSES,
    NumberRequest,
    Person,
    Request,
    RequestStatus,
    StageState,
    TelephoneNumber,
    can_transition,
)
from provisioning.persistence.audit import AuditRecords
from provisioning.persistence.chat import CardActivity
from provisioning.persistence.errors import (
    InvalidTransition,
    RequestNotFound,
    SchemaVersionError,
    StoreError,
)
from provisioning.persistence.schema import (
    SCHEMA_VERSION,
    default_database_url,
    metadata,
    number_claims_table,
    request_stages_table,
    requests_table,
)

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

_ID_ATTEMPTS = 20
# pg_advisory_xact_lock key for choosing UPNs ("PDUPN" as a number).
_UPN_LOCK = 0x5044_5550_4E
# Fields that say who asked and when; a status change must never rewrite them.
_IMMUTABLE_FIELDS = frozenset({"id", "tenant_id", "requester", "created_at", "updated_at"})

_telephone_number = TypeAdapter(TelephoneNumber)


class Store(AuditRecords):
    """PhoneDesk's SQL store. One instance per process; safe to share between threads.

    Synchronous: code on an event loop uses ``AsyncStore``.
    """

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
