"""PhoneDesk in a real Teams-like client: the Microsoft 365 Agents Playground.

Rita Requester (the Playground's current user) asks for help and requests a number in
her personal chat; Abe Approver, through "Mock an Activity", makes Phone Approvals the
approvers' channel and approves the request on its card there; the card the request got
in that channel then shows all four stages done and the new number.

The Playground does not run Adaptive Card ``refresh`` (no per-user views), so nobody
sees an Approve button in it: Abe's click is sent as the invoke Teams would send. It also
shows only the text of a channel post that carries text and a card, so the card in the
channel appears once the bot first updates it (on approval).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Final

from playwright.sync_api import expect

from dialogs import Role, commands_for
from provisioning.domain import Stage
from tests.e2e.playground_ui import PlaygroundUI, card_action, channel_message, stage_states
from tools.playground import (
    APPROVALS_CHANNEL,
    APPROVALS_CHANNEL_NAME,
    APPROVER,
    CONFIG_PATH,
    PERSONAL_CHAT_ID,
    REQUESTER,
    TEAM_ID,
    TEAM_NAME,
    TENANT_ID,
)

PROVISIONING_TIMEOUT_MS: Final = 45_000
E164: Final = re.compile(r"\+[1-9][0-9]{6,14}")
REQUEST_ID: Final = re.compile(r"PD-[0-9A-Z]{4}")
FINISHED_SCREENSHOT: Final = "playground-finished.png"


def test_a_request_made_in_the_playground_is_approved_in_the_channel_and_provisioned(
    ui: PlaygroundUI,
) -> None:
    # 1. Rita asks what PhoneDesk can do.
    ui.say("help")
    help_message = ui.bot_message("Here is what I can do")
    for command in commands_for(Role.REQUESTER):
        if "`" not in command.summary:
            expect(help_message).to_contain_text(command.summary)
    expect(help_message).not_to_contain_text("list requests waiting for approval")
    ui.shot("help")

    # Abe makes Phone Approvals the approvers' channel.
    ui.open_channel(APPROVALS_CHANNEL_NAME)
    template = ui.activity_template(APPROVALS_CHANNEL)
    ui.mock_activity(channel_message(template, APPROVER, APPROVALS_CHANNEL, "approvals here"))
    expect(ui.channel_posts.filter(has_text="now the approvers' channel")).to_be_visible()
    ui.shot("approvals-channel")

    # 2. Rita asks for a number, question by question, and submits it.
    ui.open_personal_chat()
    ui.say("request")
    ui.bot_message("Which country")
    ui.click_suggestion("United States")
    ui.bot_message("Which area code in United States")
    ui.click_suggestion("425")
    ui.bot_message("What should the resource account be called")
    ui.say("Contoso Support")
    confirmation = ui.bot_card("Check your request")
    expect(confirmation).to_contain_text("contoso.support@contoso.onmicrosoft.com")
    ui.shot("confirmation")
    confirmation.get_by_role("button", name="Submit").click()

    rita_card = ui.bot_card("Phone number request")
    expect(rita_card).to_contain_text("Waiting for approval")
    request_match = REQUEST_ID.search(rita_card.inner_text())
    assert request_match, rita_card.inner_text()
    request_id = request_match.group(0)
    # The summary Rita clicked became the request's card.
    expect(ui.bot_cards("Check your request")).to_have_count(0)
    ui.shot("submitted")

    # 3. The request is posted for approval in the approvers' channel.
    ui.open_channel(APPROVALS_CHANNEL_NAME)
    post = ui.channel_posts.filter(has_text=request_id)
    # The post is the request's card itself: its title, who asked, and that it waits.
    expect(post.locator(".ac-adaptiveCard")).to_contain_text(f"Phone number request {request_id}")
    expect(post).to_contain_text(REQUESTER.name)
    expect(post).to_contain_text("Waiting for approval")
    posts_before = ui.channel_posts.count()
    ui.shot("approval-post")

    # 4. Abe approves it on that card.
    thread, message_id = ui.posted_thread(request_id)
    ui.mock_activity(
        card_action(
            ui.activity_template(APPROVALS_CHANNEL),
            APPROVER,
            APPROVALS_CHANNEL,
            thread=thread,
            reply_to_id=message_id,
            verb="approve",
            data={"requestId": request_id},
        )
    )

    # 5. The same post's card runs through the stages to a bound number.
    channel_card = ui.card_in(post)
    expect(channel_card).to_contain_text(f"Approved by {APPROVER.name}")
    expect(channel_card).to_contain_text("Completed", timeout=PROVISIONING_TIMEOUT_MS)
    text = channel_card.inner_text()
    labels = [stage.label for stage in Stage]
    assert stage_states(text, labels) == dict.fromkeys(labels, "Done"), text
    status = re.search(rf"Completed: ({E164.pattern}) is ready", text)
    assert status, text
    number = status.group(1)
    assert f"Number: {number}" in text
    assert "contoso.support@contoso.onmicrosoft.com" in text
    assert ui.channel_posts.count() == posts_before, "the card was posted again, not updated"
    finished = ui.shot("finished")

    # Rita's card, in her chat, was brought to the same end in place.
    ui.open_personal_chat()
    expect(rita_card).to_contain_text(f"Completed: {number} is ready")
    expect(ui.bot_cards(request_id)).to_have_count(1)
    ui.shot("finished-personal-chat")

    # `PHONEDESK_E2E_SCREENSHOTS=docs/img` refreshes the README's screenshot.
    publish = os.environ.get("PHONEDESK_E2E_SCREENSHOTS")
    if publish:
        Path(publish).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(finished, Path(publish) / FINISHED_SCREENSHOT)


def test_the_launcher_knows_the_users_and_conversations_of_the_playground_config() -> None:
    config = CONFIG_PATH.read_text(encoding="utf-8")
    expected = [
        f"tenantId: {TENANT_ID}",
        f"id: {PERSONAL_CHAT_ID}",
        f"id: {TEAM_ID}",
        f"name: {TEAM_NAME}",
        f"id: {APPROVALS_CHANNEL}",
        f"name: {APPROVALS_CHANNEL_NAME}",
    ]
    for user in (REQUESTER, APPROVER):
        expected += [f"id: {user.id}", f"name: {user.name}", f"aadObjectId: {user.aad_object_id}"]
    missing = [line for line in expected if line not in config]
    assert not missing, f"{CONFIG_PATH.name} no longer has {missing}"
    assert config.index(f"id: {REQUESTER.id}") < config.index("users:"), "Rita must be currentUser"
