"""The chat commands PhoneDesk understands: parsing, typo suggestions, and help by role.

Parsing only says what was asked. The service still decides whether the caller may do it;
the role check here exists to give a clear answer early, not to protect anything.
"""

from __future__ import annotations

import difflib
import enum
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from dialogs.text import escape_markdown, fold, plain_quote, strip_trailing_punctuation
from provisioning.domain import parse_request_id

__all__ = [
    "COMMANDS",
    "Command",
    "CommandError",
    "CommandErrorKind",
    "CommandName",
    "IdArgument",
    "ParsedCommand",
    "Role",
    "commands_for",
    "help_text",
    "parse_command",
]


class Role(enum.Enum):
    REQUESTER = "requester"
    APPROVER = "approver"


class CommandName(StrEnum):
    HELP = "help"
    REQUEST = "request"
    REQUEST_FORM = "request form"
    STATUS = "status"
    MINE = "mine"
    PENDING = "pending"
    CANCEL = "cancel"
    RETRY = "retry"
    RELEASE = "release"
    NUMBERS = "numbers"
    AUDIT = "audit"
    APPROVALS_HERE = "approvals here"


class IdArgument(enum.Enum):
    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


@dataclass(frozen=True)
class Command:
    name: CommandName
    usage: str
    summary: str
    approvers_only: bool = False
    request_id: IdArgument = IdArgument.NONE
    aliases: tuple[str, ...] = ()
    """Other phrases for the command, lower case, one or two words."""


COMMANDS: Final[tuple[Command, ...]] = (
    Command(
        CommandName.REQUEST,
        'request [COUNTRY AREA "Display name"]',
        "ask for a new phone number (also `new number`)",
        aliases=("new number",),
    ),
    Command(CommandName.REQUEST_FORM, "request form", "ask for a number by filling in a form"),
    Command(
        CommandName.STATUS,
        "status [ID]",
        "show where a request is",
        request_id=IdArgument.OPTIONAL,
    ),
    Command(CommandName.MINE, "mine", "list your requests"),
    Command(
        CommandName.PENDING, "pending", "list requests waiting for approval", approvers_only=True
    ),
    Command(
        CommandName.CANCEL,
        "cancel ID",
        "cancel a request and release what it reserved",
        request_id=IdArgument.REQUIRED,
    ),
    Command(
        CommandName.RETRY, "retry ID", "retry a failed request", request_id=IdArgument.REQUIRED
    ),
    Command(
        CommandName.RELEASE,
        "release ID",
        "give back a completed request's number and account",
        request_id=IdArgument.REQUIRED,
    ),
    Command(CommandName.NUMBERS, "numbers", "show the tenant's service numbers"),
    Command(
        CommandName.AUDIT,
        "audit ID",
        "show who did what to a request",
        request_id=IdArgument.REQUIRED,
    ),
    Command(
        CommandName.APPROVALS_HERE,
        "approvals here",
        "make this channel the approvers' channel",
        approvers_only=True,
    ),
    Command(CommandName.HELP, "help", "show this list", aliases=("?",)),
)

_BY_NAME: Final = {c.name: c for c in COMMANDS}
_EXAMPLE_ID: Final = "PD-7K3Q"
# Close enough to be a typo of a command rather than another word.
_TYPO_CUTOFF: Final = 0.6


@dataclass(frozen=True)
class ParsedCommand:
    name: CommandName
    request_id: str | None = None
    """Normalised (``PD-7K3Q``) for commands that take an id."""
    argument_text: str = ""
    """Whatever followed the command, case and quotes kept: ``request``'s one-shot answers."""


class CommandErrorKind(StrEnum):
    UNKNOWN = "unknown"
    MISSING_ID = "missing_id"
    BAD_ID = "bad_id"
    NOT_ALLOWED = "not_allowed"


@dataclass(frozen=True)
class CommandError:
    kind: CommandErrorKind
    message: str
    """Markdown for the chat; user text in it is escaped."""
    suggestions: tuple[str, ...] = ()
    did_you_mean: CommandName | None = None


def commands_for(role: Role) -> list[Command]:
    return [c for c in COMMANDS if role is Role.APPROVER or not c.approvers_only]


def help_text(role: Role, *, approvals_channel_registered: bool = True) -> str:
    lines = ["Here is what I can do:"]
    lines += [f"- `{c.usage}`: {c.summary}" for c in commands_for(role)]
    lines.append(f"Request ids look like `{_EXAMPLE_ID}`; `7k3q` works too.")
    if role is Role.APPROVER and not approvals_channel_registered:
        lines.append(
            "No approvers' channel is registered yet, so approval cards go to each "
            "requester's chat. To choose a channel, @mention me there with `approvals here`."
        )
    return "\n".join(lines)


def _phrases(role: Role) -> dict[str, CommandName]:
    phrases: dict[str, CommandName] = {}
    for command in commands_for(role):
        for phrase in (command.name.value, *command.aliases):
            phrases[phrase] = command.name
    return phrases


def _rest_after(text: str, word_count: int) -> str:
    match = re.match(rf"\s*(?:\S+(?:\s+|$)){{{word_count}}}", text)
    return text[match.end() :].strip() if match else ""


def _match_phrase(words: list[str], phrases: dict[str, CommandName]) -> tuple[str, int] | None:
    for length in (2, 1):
        candidate = " ".join(words[:length])
        if len(words) >= length and candidate in phrases:
            return candidate, length
    return None


def _suggest(words: list[str], phrases: dict[str, CommandName]) -> tuple[str, int] | None:
    """The phrase a mistyped command most likely meant, and how many words it replaces."""
    two_word = [p for p in phrases if " " in p]
    if len(words) >= 2:
        close = difflib.get_close_matches(" ".join(words[:2]), two_word, n=1, cutoff=0.75)
        if close:
            return close[0], 2
    # A lone first word of a two-word phrase ("approvals", "new") suggests the whole phrase.
    by_first_word = {p.split()[0]: p for p in two_word}
    vocabulary = by_first_word | {p: p for p in phrases if " " not in p}
    close = difflib.get_close_matches(words[0], list(vocabulary), n=1, cutoff=_TYPO_CUTOFF)
    if close:
        return vocabulary[close[0]], 1
    return None


def parse_command(text: str, role: Role = Role.REQUESTER) -> ParsedCommand | CommandError:
    """Read one chat message as a command.

    Case, extra spaces, a leading ``/`` and trailing ``?``/``.`` are ignored. An empty
    message is ``help``.
    """
    stripped = text.strip().lstrip("/").strip()
    words = [strip_trailing_punctuation(fold(w)) for w in stripped.split()]
    words = [w for w in words if w] or (["?"] if stripped.startswith("?") else [])
    if not words:
        return ParsedCommand(CommandName.HELP)

    everyone = _phrases(Role.APPROVER)
    allowed = _phrases(role)
    matched = _match_phrase(words, everyone)
    if matched is None:
        return _unknown(stripped, words, allowed)
    phrase, length = matched
    command = _BY_NAME[everyone[phrase]]
    rest = _rest_after(stripped, length)

    if command.name not in allowed.values():
        return CommandError(
            CommandErrorKind.NOT_ALLOWED,
            f"`{command.name.value}` is only for approvers. Type `help` to see what you can do.",
            suggestions=("help",),
        )
    if command.request_id is IdArgument.NONE:
        return ParsedCommand(command.name, argument_text=rest)
    if not rest:
        if command.request_id is IdArgument.OPTIONAL:
            return ParsedCommand(command.name)
        return CommandError(
            CommandErrorKind.MISSING_ID,
            f"`{command.name.value}` needs a request id: `{command.name.value} {_EXAMPLE_ID}`. "
            "Type `mine` to see your requests and their ids.",
            suggestions=("mine",),
        )
    candidate = strip_trailing_punctuation(rest.split()[0])
    try:
        request_id = parse_request_id(candidate)
    except ValueError:
        return CommandError(
            CommandErrorKind.BAD_ID,
            escape_markdown(
                f"{plain_quote(candidate, 20)} is not a request id; ids look like {_EXAMPLE_ID}."
            )
            + f" Usage: `{command.usage}`.",
            suggestions=("mine",),
        )
    return ParsedCommand(command.name, request_id=request_id, argument_text=rest)


def _unknown(text: str, words: list[str], allowed: dict[str, CommandName]) -> CommandError:
    quoted = escape_markdown(plain_quote(text, 40))
    suggestion = _suggest(words, allowed)
    if suggestion is None:
        return CommandError(
            CommandErrorKind.UNKNOWN,
            f"Sorry, I don't know {quoted}. Type `help` to see what I can do.",
            suggestions=("help",),
        )
    phrase, replaced = suggestion
    rest = _rest_after(text, replaced)
    corrected = f"{phrase} {rest}".strip()
    return CommandError(
        CommandErrorKind.UNKNOWN,
        f"Sorry, I don't know {quoted}. Did you mean `{phrase}`?",
        suggestions=tuple(dict.fromkeys((corrected, "help"))),
        did_you_mean=allowed[phrase],
    )
