"""Pure conversation logic: command parsing, the request dialog, the form, and replies.

Nothing here does I/O, reads the clock or imports a bot SDK: the bot passes each turn in
(with the time) and renders the replies that come back.
"""

from dialogs.commands import (
    COMMANDS,
    Command,
    CommandError,
    CommandErrorKind,
    CommandName,
    ParsedCommand,
    Role,
    commands_for,
    help_text,
    parse_command,
)
from dialogs.context import DEFAULT_IDLE_LIMIT, DialogContext
from dialogs.form import new_form, validate_form
from dialogs.offer import AreaCodeStock, CountryOffer, Offer
from dialogs.outcomes import Cancelled, Expired, Outcome, Submitted
from dialogs.replies import (
    CardAction,
    CardSpec,
    Choice,
    ConfirmationCardSpec,
    FormField,
    FormValues,
    Reply,
    RequestFormSpec,
    SummaryField,
    is_dialog_action,
)
from dialogs.request_dialog import Turn, TurnResult, handle_turn
from dialogs.state import DialogKey, DialogState, Step, load_state
from dialogs.text import escape_markdown

__all__ = [
    "COMMANDS",
    "DEFAULT_IDLE_LIMIT",
    "AreaCodeStock",
    "Cancelled",
    "CardAction",
    "CardSpec",
    "Choice",
    "Command",
    "CommandError",
    "CommandErrorKind",
    "CommandName",
    "ConfirmationCardSpec",
    "CountryOffer",
    "DialogContext",
    "DialogKey",
    "DialogState",
    "Expired",
    "FormField",
    "FormValues",
    "Offer",
    "Outcome",
    "ParsedCommand",
    "Reply",
    "RequestFormSpec",
    "Role",
    "Step",
    "Submitted",
    "SummaryField",
    "Turn",
    "TurnResult",
    "commands_for",
    "escape_markdown",
    "handle_turn",
    "help_text",
    "is_dialog_action",
    "load_state",
    "new_form",
    "parse_command",
    "validate_form",
]
