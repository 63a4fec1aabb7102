"""The Teams activity handler: turns activities into calls on dialogs/ and back."""

from __future__ import annotations

import logging

from botbuilder.core import TurnContext
from botbuilder.core.teams import TeamsActivityHandler

from dialogs.commands import Role, help_text

log = logging.getLogger(__name__)


class PhoneDeskBot(TeamsActivityHandler):  # type: ignore[misc]
    def __init__(self, *, approvers: frozenset[str]) -> None:
        super().__init__()
        self._approvers = approvers

    def _role(self, turn_context: TurnContext) -> Role:
        aad_object_id = getattr(turn_context.activity.from_property, "aad_object_id", None)
        return Role.APPROVER if aad_object_id in self._approvers else Role.REQUESTER

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        text = TurnContext.remove_recipient_mention(turn_context.activity) or ""
        command = " ".join(text.split()).lower()
        if command in ("help", "?", ""):
            await turn_context.send_activity(help_text(self._role(turn_context)))
            return
        await turn_context.send_activity(
            f"Sorry, I don't know `{command[:60]}` yet. Type `help` to see what I can do."
        )
