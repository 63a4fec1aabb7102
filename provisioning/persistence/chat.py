"""What the chat front end keeps: conversation references, posted cards, dialogs, settings."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, JsonValue

from provisioning.persistence.database import Database
from provisioning.persistence.schema import (
    card_activities_table,
    conversation_refs_table,
    dialog_state_table,
    settings_kv_table,
)


class CardActivity(BaseModel):
    """A progress card posted for a request in one conversation, to be updated in place."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    conversation_key: str
    activity_id: str
    posted_at: datetime


class ChatRecords(Database):
    """Chat state, kept in SQL so a dialog in progress survives a restart."""

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
