"""The Microsoft 365 Agents Playground's web UI (v0.2.28), driven the way a person uses it.

There are no test ids in the Playground, so everything is found by role and accessible
name, or by the Adaptive Cards renderer's own class. Everything typed comes from the
Playground's current user; another mock user acts through "Mock an Activity", with an
activity built here from the Playground's own template.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from playwright.sync_api import Locator, Page, WebSocket, expect

from tools.playground import TEAM_ID, TENANT_ID, MockUser

__all__ = ["STAGE_STATES", "PlaygroundUI", "card_action", "channel_message", "stage_states"]

# A message row is the parent of its header; the bot's rows also name their author.
_MESSAGE_ROW: Final = 'div:has(> [aria-label="Message header"])'
_BOT_ROW: Final = _MESSAGE_ROW + ':has([aria-label="Message author"])'
_CARD: Final = ".ac-adaptiveCard"
_CUSTOM_ACTIVITIES: Final = "**/_internal/v1/customActivities"

STAGE_STATES: Final = frozenset({"Waiting", "Running", "Done", "Failed", "Cancelled"})


@dataclass
class PlaygroundUI:
    page: Page
    base_url: str
    screenshots: Path
    _created: list[dict[str, Any]] = field(default_factory=list)
    _shots: int = 0

    def open(self) -> None:
        """Load the UI; each load is a fresh install of the bot in every conversation."""
        # The UI learns of new messages over a websocket; its frames say which message
        # id a post got, which a click on that post's card must carry.
        self.page.on("websocket", self._watch)
        self.page.goto(self.base_url)
        expect(self.page.get_by_role("textbox")).to_be_visible()

    def _watch(self, socket: WebSocket) -> None:
        socket.on("framereceived", self._frame)

    def _frame(self, payload: str | bytes) -> None:
        try:
            frame = json.loads(payload)
        except ValueError:
            return
        if isinstance(frame, dict) and frame.get("action") == "createMessage":
            self._created.append(frame)

    def shot(self, name: str) -> Path:
        self._shots += 1
        path = self.screenshots / f"{self._shots:02d}-{name}.png"
        self.page.screenshot(path=path)
        return path

    # -- the personal chat ----------------------------------------------------------------

    def open_personal_chat(self) -> None:
        self.page.get_by_role("treeitem", name=re.compile(r"^Personal Chat")).click()
        expect(self.page.get_by_role("button", name="Send Message")).to_be_visible()

    def say(self, text: str) -> None:
        box = self.page.get_by_role("textbox")
        box.click()
        box.fill(text)
        self.page.get_by_role("button", name="Send Message").click()

    def bot_message(self, text: str) -> Locator:
        """The newest message from the bot that contains ``text``, once it is shown."""
        message = self.page.locator(_BOT_ROW).filter(has_text=text).last
        expect(message).to_be_visible()
        return message

    def click_suggestion(self, title: str) -> None:
        self.page.get_by_role("button", name=title, exact=True).click()

    def bot_cards(self, text: str) -> Locator:
        return self.page.locator(_BOT_ROW).locator(_CARD).filter(has_text=text)

    def bot_card(self, text: str) -> Locator:
        card = self.bot_cards(text).last
        expect(card).to_be_visible()
        return card

    # -- channels -------------------------------------------------------------------------

    def open_channel(self, name: str) -> None:
        # Opening a channel the first time installs the bot there (installationUpdate).
        self.page.get_by_role("treeitem", name=re.compile(rf" - {re.escape(name)}$")).click()
        expect(self.page.get_by_role("button", name="Post")).to_be_visible()

    @property
    def channel_posts(self) -> Locator:
        """The open channel's posts, newest first."""
        page = self.page
        return page.get_by_role("group").filter(
            has=page.get_by_role("button", name="Show more information")
        )

    def card_in(self, post: Locator) -> Locator:
        return post.locator(_CARD)

    def posted_thread(self, text: str) -> tuple[str, str]:
        """The thread a bot post containing ``text`` started, and the post's message id."""
        for frame in reversed(self._created):
            message = frame.get("message") or {}
            if text in json.dumps(message):
                message_id = str(message["messageId"])
                return f"{frame['actionConversationId']};messageid={message_id}", message_id
        raise AssertionError(f"the Playground was never sent a message containing {text!r}")

    # -- another user's activity ----------------------------------------------------------

    def activity_template(self, conversation_id: str) -> dict[str, Any]:
        """What "Mock an Activity" > "Custom activity" starts from in that conversation."""
        response = self.page.request.get(
            f"{self.base_url}/_internal/v1/customActivities/template",
            params={"conversationId": conversation_id},
        )
        assert response.ok, f"no activity template for {conversation_id}: {response.status}"
        template: dict[str, Any] = response.json()
        return template

    def mock_activity(self, activity: Mapping[str, Any]) -> None:
        """Send an activity through "Mock an Activity" > "Custom activity"."""
        page = self.page
        page.get_by_role("button", name="Mock an Activity").click()
        page.get_by_role("menuitem", name="Custom activity", exact=True).click()
        dialog = page.get_by_role("dialog")
        editor = dialog.locator(".monaco-editor")
        expect(editor).to_be_visible()
        editor.click()
        page.keyboard.press("ControlOrMeta+A")
        page.keyboard.press("Delete")
        # On one line: the editor re-indents every pasted newline.
        page.keyboard.insert_text(json.dumps(activity))
        if any(entity.get("type") == "mention" for entity in activity.get("entities", [])):
            # The dialog takes any activity with a mention for a Word comment and shows
            # that form; the JSON tab sends the activity as written.
            dialog.get_by_role("tab", name="JSON").click()
        expect(dialog.get_by_text("Invalid JSON format")).to_have_count(0)
        with page.expect_response(_CUSTOM_ACTIVITIES) as sent:
            dialog.get_by_role("button", name="Send activity").click()
        assert sent.value.ok, f"the Playground refused the activity: {sent.value.status}"
        expect(dialog).to_be_hidden()


def _as(template: Mapping[str, Any], user: MockUser, channel: str) -> dict[str, Any]:
    activity = dict(template)
    activity["from"] = user.account
    activity["channelData"] = {
        "tenant": {"id": TENANT_ID},
        "team": {"id": TEAM_ID},
        "channel": {"id": channel},
    }
    return activity


def channel_message(
    template: Mapping[str, Any], user: MockUser, channel: str, text: str
) -> dict[str, Any]:
    """``user`` @mentions the bot in a channel, as Teams sends it."""
    bot = template["recipient"]
    mention = f"<at>{bot['name']}</at>"
    activity = _as(template, user, channel)
    activity.update(
        type="message",
        text=f"{mention} {text}",
        textFormat="plain",
        entities=[{"type": "mention", "mentioned": dict(bot), "text": mention}],
    )
    return activity


def card_action(
    template: Mapping[str, Any],
    user: MockUser,
    channel: str,
    *,
    thread: str,
    reply_to_id: str,
    verb: str,
    data: Mapping[str, Any],
) -> dict[str, Any]:
    """``user`` clicks an Action.Execute button on the card the bot posted in ``thread``."""
    activity = _as(template, user, channel)
    activity.update(
        type="invoke",
        name="adaptiveCard/action",
        replyToId=reply_to_id,
        value={
            "action": {"type": "Action.Execute", "verb": verb, "data": dict(data)},
            "trigger": "manual",
        },
    )
    activity["conversation"] = {**activity["conversation"], "id": thread}
    return activity


def stage_states(card_text: str, labels: list[str]) -> dict[str, str]:
    """Each stage row's state word, read from a request card's text.

    A row reads: glyph, label, detail lines, state; the text from one label to the next
    therefore ends with that row's state (and the next row's glyph).
    """
    positions = [(card_text.find(label), label) for label in labels]
    missing = [label for position, label in positions if position < 0]
    assert not missing, f"no row for {missing} in the card:\n{card_text}"
    positions.sort()
    states: dict[str, str] = {}
    for index, (start, label) in enumerate(positions):
        end = positions[index + 1][0] if index + 1 < len(positions) else len(card_text)
        words = [line.strip() for line in card_text[start:end].splitlines()]
        found = [word for word in words if word in STAGE_STATES]
        states[label] = found[-1] if found else "?"
    return states
