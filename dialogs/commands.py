"""The chat commands PhoneDesk understands, and the help text for each role.

Pure data and functions: no botbuilder, no I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.Enum):
    REQUESTER = "requester"
    APPROVER = "approver"


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    summary: str
    approvers_only: bool = False


COMMANDS: tuple[Command, ...] = (
    Command("request", 'request [COUNTRY AREA "Display name"]', "ask for a new phone number"),
    Command("status", "status [ID]", "show where a request is"),
    Command("mine", "mine", "list your requests"),
    Command("pending", "pending", "list requests waiting for approval", approvers_only=True),
    Command("cancel", "cancel ID", "cancel a request and release what it reserved"),
    Command("retry", "retry ID", "retry a failed request"),
    Command("numbers", "numbers", "show the tenant's service numbers"),
    Command("audit", "audit ID", "show who did what to a request"),
    Command(
        "approvals here",
        "approvals here",
        "make this channel the approvers' channel",
        approvers_only=True,
    ),
    Command("help", "help", "show this list"),
)


def commands_for(role: Role) -> list[Command]:
    return [c for c in COMMANDS if role is Role.APPROVER or not c.approvers_only]


def help_text(role: Role) -> str:
    lines = ["Here is what I can do:"]
    lines += [f"- `{c.usage}`: {c.summary}" for c in commands_for(role)]
    return "\n".join(lines)
