"""What the stages read and write in the store: the request, its claims, its journal, its audit.

The stages decide from typed state (the request's result, its number claims and its
``StageJournal``), never from the audit trail, which they only append to.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from pydantic import JsonValue

from provisioning.domain import (
    AuditAction,
    AuditResult,
    Request,
    StageJournal,
)
from provisioning.persistence.store import RequestNotFound, Store

__all__ = ["WORKFLOW_ACTOR", "Journal"]

WORKFLOW_ACTOR: Final = "phonedesk-workflow"


class Journal:
    """The store, as one request's stages use it; every call runs off the event loop."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def request(self, request_id: str) -> Request:
        request = await asyncio.to_thread(self._store.get_request, request_id)
        if request is None:
            raise RequestNotFound(request_id)
        return request

    async def save_result(self, request_id: str, **fields: str | None) -> Request:
        # Any status: an effect must be recorded even if a cancel came in meanwhile.
        return await asyncio.to_thread(lambda: self._store.merge_result(request_id, **fields))

    async def memory(self, request_id: str) -> StageJournal:
        return await asyncio.to_thread(self._store.load_journal, request_id)

    async def remember(self, request_id: str, **changes: str | int | None) -> StageJournal:
        return await asyncio.to_thread(lambda: self._store.update_journal(request_id, **changes))

    async def audit(
        self,
        request_id: str,
        action: AuditAction,
        result: AuditResult = AuditResult.OK,
        /,
        **details: JsonValue,
    ) -> None:
        """Append to the audit log as the workflow."""
        await asyncio.to_thread(
            lambda: self._store.append_audit(
                actor=WORKFLOW_ACTOR,
                action=action,
                request_id=request_id,
                result=result,
                details=details,
            )
        )

    async def audit_once(self, request_id: str, action: AuditAction, **details: JsonValue) -> None:
        """Audit an effect a crashed earlier pass may have caused without recording it."""
        await asyncio.to_thread(
            lambda: self._store.audit_once(
                actor=WORKFLOW_ACTOR, action=action, request_id=request_id, details=details
            )
        )

    async def claims(self, request_id: str) -> list[str]:
        return sorted(await asyncio.to_thread(self._store.list_claims, request_id))

    async def all_claims(self) -> dict[str, str]:
        return await asyncio.to_thread(self._store.list_claims)

    async def claim(self, number: str, request_id: str) -> bool:
        return await asyncio.to_thread(self._store.claim_number, number, request_id)

    async def claimed_by(self, number: str) -> str | None:
        return await asyncio.to_thread(self._store.claimed_by, number)

    async def release_claim(self, number: str, request_id: str) -> bool:
        return await asyncio.to_thread(self._store.release_claim, number, request_id)

    async def upns_of_others(self, request_id: str) -> frozenset[str]:
        """The UPNs other requests hold (casefolded)."""
        return await asyncio.to_thread(lambda: self._store.taken_upns(besides=request_id))

    async def assign_upn(self, request_id: str, choose: Callable[[frozenset[str]], str]) -> Request:
        return await asyncio.to_thread(self._store.assign_upn, request_id, choose)
