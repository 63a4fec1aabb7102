"""The request dialog: asks for what is missing, checks each answer, confirms, submits.

Shaped like python-telegram-bot's ConversationHandler. Each ``Step`` has one handler that
returns the next state; the fallbacks (cancel, back, help, start over) are listed once in
``_FALLBACKS`` and apply at every step. The bot keys saved state by conversation and user
(``DialogKey``) and calls ``handle_turn`` once per message or card click.

Answers are checked again each time the dialog moves on, not only when given: stock runs
out and names get taken between turns, and a stale answer is re-asked with the reason
rather than submitted.

Editing from the confirmation asks which answer to change and asks only that question
(changing the country may also re-ask the area code when it is not offered there), then
shows the summary again. ``back`` always returns to the question before the current one in
the order country, area code, display name, confirmation, clearing that answer; from the
edit menu or the number/account type questions it returns to the summary.

While a question other than the display name is open, a message that is a complete
command (``status PD-7K3Q``, ``mine``) is handed back to the bot to run and the dialog
waits, and a one-shot ``request …`` starts over with its answers. While the display name
is asked, everything but the fallbacks is taken as the name.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

from dialogs.commands import (
    CommandError,
    CommandName,
    ParsedCommand,
    Role,
    help_text,
    parse_command,
)
from dialogs.context import DialogContext
from dialogs.form import new_form, validate_form
from dialogs.outcomes import Cancelled, Expired, Outcome, Submitted
from dialogs.replies import (
    ACTION_FIELD,
    SNAPSHOT_FIELD,
    CardAction,
    ConfirmationCardSpec,
    Reply,
    SummaryField,
    is_dialog_action,
)
from dialogs.slots import (
    ACCOUNT_TYPE_LABELS,
    MAX_SUGGESTIONS,
    NUMBER_TYPE_LABELS,
    SlotError,
    area_code_suggestions,
    check_account_type,
    check_area_code,
    check_display_name,
    check_number_type,
    match_country,
    number_type_choices,
    stock_sentence,
)
from dialogs.state import DialogState, PendingAnswers, Slots, Step
from dialogs.text import escape_markdown, fold, split_words, strip_trailing_punctuation
from provisioning.domain import NumberRequest

__all__ = ["Turn", "TurnResult", "handle_turn", "parse_one_shot"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Turn:
    """One incoming message or card click, as the bot saw it."""

    now: datetime
    text: str | None = None
    data: Mapping[str, object] | None = None
    """Card data from Action.Submit or Action.Execute; takes precedence over ``text``."""
    role: Role = Role.REQUESTER
    in_channel: bool = False


@dataclass(frozen=True)
class TurnResult:
    state: DialogState | None
    """Save this (``None``: delete the saved state)."""
    replies: tuple[Reply, ...] = ()
    outcome: Outcome | None = None
    command: ParsedCommand | None = None
    """A command for the bot to run (status, mine, cancel ID, …); the dialog is unaffected."""


@dataclass(frozen=True)
class _Env:
    turn: Turn
    ctx: DialogContext


_Handler = Callable[[DialogState, str, _Env], TurnResult]

_SUBMIT_WORDS: Final = frozenset({"submit", "yes", "y", "ok", "okay", "confirm", "send", "go"})
_EDIT_WORDS: Final = frozenset({"edit", "change", "no", "n", "modify"})
_DONE_WORDS: Final = frozenset({"nothing", "none", "done", "keep"})
_EDIT_TARGETS: Final[Mapping[str, Step]] = {
    "country": Step.COUNTRY,
    "area code": Step.AREA_CODE,
    "area": Step.AREA_CODE,
    "code": Step.AREA_CODE,
    "display name": Step.DISPLAY_NAME,
    "name": Step.DISPLAY_NAME,
    "number type": Step.NUMBER_TYPE,
    "type": Step.NUMBER_TYPE,
    "account type": Step.ACCOUNT_TYPE,
    "account": Step.ACCOUNT_TYPE,
}
_EDIT_MENU: Final = ("Country", "Area code", "Display name", "Number type", "Account type")
_PREVIOUS: Final[Mapping[Step, Step]] = {
    Step.AREA_CODE: Step.COUNTRY,
    Step.DISPLAY_NAME: Step.AREA_CODE,
    Step.CONFIRM: Step.DISPLAY_NAME,
}
# Commands the dialog answers itself instead of handing them to the bot.
_DIALOG_COMMANDS: Final = frozenset(
    {CommandName.HELP, CommandName.REQUEST, CommandName.REQUEST_FORM}
)


def handle_turn(state: DialogState | None, turn: Turn, ctx: DialogContext) -> TurnResult:
    """Answer one turn: the new state to save, the replies to send, and how it ended."""
    if turn.now.tzinfo is None:
        raise ValueError("Turn.now must be timezone-aware")
    env = _Env(turn, ctx)
    data = turn.data
    if data is not None and data.get(ACTION_FIELD) == CardAction.FORM_SUBMIT:
        return _submit_form(state, data, env)
    result = _route(state, env)
    if result.state is None:
        return result
    return replace(result, state=result.state.model_copy(update={"last_activity": turn.now}))


def _route(state: DialogState | None, env: _Env) -> TurnResult:
    turn = env.turn
    if state is not None and turn.now - state.last_activity > env.ctx.idle_limit:
        return _expire(state, env)
    if turn.data is not None:
        return _card_action(state, turn.data, env)
    if state is None:
        return _command(turn.text or "", env)
    return _answer(state, turn.text or "", env)


# --- outside a dialog: commands ----------------------------------------------------------


def _command(text: str, env: _Env) -> TurnResult:
    parsed = parse_command(text, env.turn.role)
    if isinstance(parsed, CommandError):
        return TurnResult(None, (Reply(parsed.message, parsed.suggestions),))
    return _run(parsed, env)


def _run(parsed: ParsedCommand, env: _Env) -> TurnResult:
    if parsed.name is CommandName.HELP:
        text = help_text(
            env.turn.role, approvals_channel_registered=env.ctx.approvals_channel_registered
        )
        return TurnResult(None, (Reply(text, ("request", "mine", "status")),))
    if parsed.name is CommandName.REQUEST_FORM or (
        parsed.name is CommandName.REQUEST and env.turn.in_channel and not parsed.argument_text
    ):
        return _form(env)
    if parsed.name is CommandName.REQUEST:
        return _start(parsed.argument_text, env)
    return TurnResult(None, command=parsed)


def _form(env: _Env) -> TurnResult:
    spec = new_form(env.ctx, env.turn.now)
    return TurnResult(None, (Reply("Fill in the form and press Submit.", card=spec),))


def _submit_form(state: DialogState | None, data: Mapping[str, object], env: _Env) -> TurnResult:
    # The form stands apart from any chat dialog, which is left exactly as it was.
    checked = validate_form(data, env.ctx, env.turn.now)
    if isinstance(checked, Submitted):
        return TurnResult(state, outcome=checked)
    return TurnResult(state, (Reply("Please fix the fields marked on the form.", card=checked),))


def parse_one_shot(text: str) -> PendingAnswers:
    """Split ``US 425 "Contoso Support"`` into answers for the country, area and name.

    The first word that is digits (or ``any``) is the area code; the words before it are
    the country and the words after it the display name. Without an area code, a quoted
    word starts the display name, and so does the word after a leading two-letter code
    (``US Contoso Support``); otherwise it is all country.
    """
    words = split_words(text)
    if not words:
        return PendingAnswers()
    area_at = next(
        (
            i
            for i, w in enumerate(words)
            if w.text.strip("()").isdigit() or (not w.quoted and fold(w.text) == "any")
        ),
        None,
    )

    def joined(start: int, end: int | None = None) -> str | None:
        return " ".join(w.text for w in words[start:end]) or None

    if area_at is not None:
        return PendingAnswers(
            country=joined(0, area_at),
            area=words[area_at].text,
            display_name=joined(area_at + 1),
        )
    name_at = next((i for i, w in enumerate(words) if i > 0 and w.quoted), None)
    if name_at is None and len(words) > 1 and len(words[0].text) == 2 and not words[0].quoted:
        name_at = 1
    if name_at is None:
        return PendingAnswers(country=joined(0))
    return PendingAnswers(country=joined(0, name_at), display_name=joined(name_at))


def _start(argument_text: str, env: _Env, intro: str | None = None) -> TurnResult:
    now = env.turn.now
    state = DialogState(
        step=Step.COUNTRY,
        pending=parse_one_shot(argument_text),
        started_at=now,
        last_activity=now,
    )
    if intro is None and not argument_text:
        intro = "Let's request a phone number. Say `back` or `cancel` at any time."
    return _advance(state, env.ctx, intro)


def _expire(state: DialogState, env: _Env) -> TurnResult:
    expired = Expired(last_activity=state.last_activity)
    note = (
        f"Your number request expired after {_duration(env.ctx.idle_limit)} without an "
        "answer, so nothing was submitted."
    )
    if env.turn.data is None:
        parsed = parse_command(env.turn.text or "", env.turn.role)
        if isinstance(parsed, ParsedCommand):
            result = _run(parsed, env)
            return replace(result, replies=(Reply(note), *result.replies), outcome=expired)
    return TurnResult(
        None, (Reply(f"{note} Type `request` to start again.", ("request",)),), expired
    )


def _duration(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    if minutes >= 60 and minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    if minutes >= 1:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    seconds = int(span.total_seconds())
    return f"{seconds} second{'s' if seconds != 1 else ''}"


# --- inside a dialog: answers ------------------------------------------------------------


def _key(text: str) -> str:
    folded = fold(text)
    return strip_trailing_punctuation(folded) or folded


def _answer(state: DialogState, text: str, env: _Env) -> TurnResult:
    fallback = _FALLBACKS.get(_key(text))
    if fallback is not None:
        return fallback(state, text, env)
    if state.step is not Step.DISPLAY_NAME:
        parsed = parse_command(text, env.turn.role)
        if isinstance(parsed, ParsedCommand):
            if parsed.name is CommandName.REQUEST and parsed.argument_text:
                return _start(parsed.argument_text, env, intro="Starting over.")
            if parsed.name not in _DIALOG_COMMANDS:
                return TurnResult(state, command=parsed)
    return _STEP_HANDLERS[state.step](state, text, env)


def _answer_country(state: DialogState, text: str, env: _Env) -> TurnResult:
    return _advance(_with_pending(state, country=text), env.ctx)


def _answer_area_code(state: DialogState, text: str, env: _Env) -> TurnResult:
    return _advance(_with_pending(state, area=text), env.ctx)


def _answer_display_name(state: DialogState, text: str, env: _Env) -> TurnResult:
    return _advance(_with_pending(state, display_name=text), env.ctx)


def _answer_confirm(state: DialogState, text: str, env: _Env) -> TurnResult:
    key = _key(text)
    if key in _SUBMIT_WORDS:
        return _submit(state, env)
    if key in _EDIT_WORDS:
        return _question(_at(state, Step.CHOOSE_EDIT), env.ctx)
    target = _edit_target(key)
    if target is not None:
        return _edit(state, target, env)
    return _advance(
        state,
        env.ctx,
        "Reply **Submit** to send the request for approval, **Edit** to change something, "
        "or `cancel`.",
    )


def _answer_choose_edit(state: DialogState, text: str, env: _Env) -> TurnResult:
    key = _key(text)
    if key in _SUBMIT_WORDS:
        return _submit(state, env)
    if key in _DONE_WORDS:
        return _advance(state, env.ctx)
    target = _edit_target(key)
    if target is None:
        return _question(
            state, env.ctx, ["Choose what to change, or say `back` to keep it as it is."]
        )
    return _edit(state, target, env)


def _answer_number_type(state: DialogState, text: str, env: _Env) -> TurnResult:
    slots = state.slots
    country = env.ctx.offer.country(slots.country) if slots.country else None
    if _key(text) in _DONE_WORDS:
        return _advance(state, env.ctx)
    chosen = check_number_type(text, country, slots.number_type)
    if isinstance(chosen, SlotError):
        return _reprompt(state, chosen, env.ctx)
    return _advance(_with_slots(state, number_type=chosen), env.ctx)


def _answer_account_type(state: DialogState, text: str, env: _Env) -> TurnResult:
    if _key(text) in _DONE_WORDS:
        return _advance(state, env.ctx)
    chosen = check_account_type(text)
    if isinstance(chosen, SlotError):
        return _reprompt(state, chosen, env.ctx)
    return _advance(_with_slots(state, account_type=chosen), env.ctx)


_STEP_HANDLERS: Final[Mapping[Step, _Handler]] = {
    Step.COUNTRY: _answer_country,
    Step.AREA_CODE: _answer_area_code,
    Step.DISPLAY_NAME: _answer_display_name,
    Step.CONFIRM: _answer_confirm,
    Step.CHOOSE_EDIT: _answer_choose_edit,
    Step.NUMBER_TYPE: _answer_number_type,
    Step.ACCOUNT_TYPE: _answer_account_type,
}


# --- fallbacks: the same at every step ---------------------------------------------------


def _cancel(state: DialogState, text: str, env: _Env) -> TurnResult:
    return TurnResult(
        None, (Reply("Cancelled; nothing was submitted.", ("request",)),), Cancelled()
    )


def _back(state: DialogState, text: str, env: _Env) -> TurnResult:
    if state.step is Step.COUNTRY:
        return _repeat(state, env.ctx, ["This is the first question; say `cancel` to stop."])
    previous = _PREVIOUS.get(state.step)
    if previous is None:
        return _advance(state, env.ctx)
    return _advance(_cleared(state, previous), env.ctx)


def _help(state: DialogState, text: str, env: _Env) -> TurnResult:
    return _repeat(
        state,
        env.ctx,
        [
            "You're in the middle of requesting a phone number. Say `back` for the previous "
            "question or `cancel` to stop; other commands such as `status` still work."
        ],
    )


def _restart(state: DialogState, text: str, env: _Env) -> TurnResult:
    return _start("", env, intro="Starting over.")


def _switch_to_form(state: DialogState, text: str, env: _Env) -> TurnResult:
    return replace(_form(env), outcome=Cancelled())


_FALLBACKS: Final[Mapping[str, _Handler]] = {
    "cancel": _cancel,
    "stop": _cancel,
    "quit": _cancel,
    "exit": _cancel,
    "abort": _cancel,
    "never mind": _cancel,
    "nevermind": _cancel,
    "back": _back,
    "go back": _back,
    "previous": _back,
    "help": _help,
    "?": _help,
    "request": _restart,
    "new number": _restart,
    "start over": _restart,
    "restart": _restart,
    "request form": _switch_to_form,
}


# --- card buttons ------------------------------------------------------------------------


def _card_action(state: DialogState | None, data: Mapping[str, object], env: _Env) -> TurnResult:
    if state is None:
        return TurnResult(
            None,
            (
                Reply(
                    "That request is no longer open: it was submitted, cancelled or it "
                    "expired. Type `request` to start a new one.",
                    ("request",),
                ),
            ),
        )
    if not is_dialog_action(data):
        log.debug("ignoring card data that is not the request dialog's: %s", data.get(ACTION_FIELD))
        return TurnResult(state)
    action = data.get(ACTION_FIELD)
    if action == CardAction.CANCEL:
        return _cancel(state, "", env)
    fresh = state.step is Step.CONFIRM and data.get(SNAPSHOT_FIELD) == state.slots.fingerprint()
    if action == CardAction.SUBMIT and fresh:
        return _submit(state, env)
    if action == CardAction.EDIT and fresh:
        return _question(_at(state, Step.CHOOSE_EDIT), env.ctx)
    return _repeat(state, env.ctx, ["That card is out of date; here is where your request is now."])


# --- moving on ---------------------------------------------------------------------------


def _at(state: DialogState, step: Step) -> DialogState:
    return state.model_copy(update={"step": step})


def _with_slots(state: DialogState, **changes: object) -> DialogState:
    return state.model_copy(update={"slots": state.slots.model_copy(update=changes)})


def _with_pending(state: DialogState, **changes: str | None) -> DialogState:
    return state.model_copy(update={"pending": state.pending.model_copy(update=changes)})


def _cleared(state: DialogState, step: Step) -> DialogState:
    """Forget the answer to one of the asked-for slots, so it is asked again."""
    if step is Step.COUNTRY:
        return _with_pending(_with_slots(state, country=None), country=None)
    if step is Step.AREA_CODE:
        return _with_pending(_with_slots(state, area=None), area=None)
    if step is Step.DISPLAY_NAME:
        cleared = _with_slots(state, display_name=None, upn=None, taken_upn=None)
        return _with_pending(cleared, display_name=None)
    raise ValueError(f"{step} has a default and cannot be cleared")


def _edit(state: DialogState, target: Step, env: _Env) -> TurnResult:
    if target in (Step.COUNTRY, Step.AREA_CODE, Step.DISPLAY_NAME):
        return _advance(_cleared(state, target), env.ctx)
    return _question(_at(state, target), env.ctx)


def _edit_target(key: str) -> Step | None:
    for verb in ("edit ", "change "):
        key = key.removeprefix(verb)
    key = key.removeprefix("the ")
    if key in _EDIT_TARGETS:
        return _EDIT_TARGETS[key]
    close = difflib.get_close_matches(key, list(_EDIT_TARGETS), n=1, cutoff=0.75)
    return _EDIT_TARGETS[close[0]] if close else None


def _advance(state: DialogState, ctx: DialogContext, note: str | None = None) -> TurnResult:
    """Check every answer in order and stop at the first one missing or no longer valid.

    Pending (one-shot or just typed) answers are checked before saved ones; with all
    three valid the dialog shows the confirmation.
    """
    notes = [note] if note else []
    pending, slots = state.pending, state.slots

    country_text = pending.country if pending.country is not None else slots.country
    if country_text is None:
        return _question(_at(state, Step.COUNTRY), ctx, notes)
    country = match_country(country_text, ctx.offer)
    state = _with_pending(state, country=None)
    if isinstance(country, SlotError):
        return _reprompt(_at(_with_slots(state, country=None), Step.COUNTRY), country, ctx, notes)
    state = _with_slots(state, country=country.iso_code)

    area_text = pending.area if pending.area is not None else _area_text(slots)
    if area_text is None:
        return _question(_at(state, Step.AREA_CODE), ctx, notes)
    area = check_area_code(area_text, country, state.slots.number_type)
    state = _with_pending(state, area=None)
    if isinstance(area, SlotError):
        return _reprompt(_at(_with_slots(state, area=None), Step.AREA_CODE), area, ctx, notes)
    state = _with_slots(state, area=area)

    name_text = pending.display_name if pending.display_name is not None else slots.display_name
    if name_text is None:
        return _question(_at(state, Step.DISPLAY_NAME), ctx, notes)
    name = check_display_name(name_text, ctx)
    state = _with_pending(state, display_name=None)
    if isinstance(name, SlotError):
        unnamed = _with_slots(state, display_name=None, upn=None, taken_upn=None)
        return _reprompt(_at(unnamed, Step.DISPLAY_NAME), name, ctx, notes)
    state = _with_slots(
        state, display_name=name.display_name, upn=name.upn, taken_upn=name.taken_upn
    )
    return _confirmation(_at(state, Step.CONFIRM), ctx, notes)


def _area_text(slots: Slots) -> str | None:
    return slots.area.label if slots.area is not None else None


def _submit(state: DialogState, env: _Env) -> TurnResult:
    checked = _advance(state, env.ctx)
    request = _request(state.slots)
    if (
        checked.state is not None
        and checked.state.step is Step.CONFIRM
        and checked.state.slots == state.slots
        and request is not None
        and state.slots.upn is not None
    ):
        submitted = Submitted(request=request, upn=state.slots.upn, draft_id=state.draft_id)
        return TurnResult(None, outcome=submitted)
    return _prefixed(checked, "Something changed since the summary was shown:")


def _request(slots: Slots) -> NumberRequest | None:
    if slots.country is None or slots.area is None or slots.display_name is None:
        return None
    return NumberRequest(
        country=slots.country,
        area_code=slots.area.code,
        display_name=slots.display_name,
        number_type=slots.number_type,
        account_type=slots.account_type,
    )


def _prefixed(result: TurnResult, note: str) -> TurnResult:
    if not result.replies:
        return replace(result, replies=(Reply(note),))
    first, *rest = result.replies
    return replace(result, replies=(replace(first, text=f"{note}\n\n{first.text}"), *rest))


# --- what the dialog says ----------------------------------------------------------------


def _question(state: DialogState, ctx: DialogContext, notes: list[str] | None = None) -> TurnResult:
    text, suggestions = _prompt(state, ctx)
    return TurnResult(state, (Reply("\n\n".join([*(notes or []), text]), suggestions),))


def _repeat(state: DialogState, ctx: DialogContext, notes: list[str]) -> TurnResult:
    """Ask the open question again; the slot questions re-check what is already answered."""
    if state.step in (Step.CHOOSE_EDIT, Step.NUMBER_TYPE, Step.ACCOUNT_TYPE):
        return _question(state, ctx, notes)
    return _advance(state, ctx, "\n\n".join(notes))


def _reprompt(
    state: DialogState, error: SlotError, ctx: DialogContext, notes: list[str] | None = None
) -> TurnResult:
    question, suggestions = _prompt(state, ctx, short=True)
    text = "\n\n".join([*(notes or []), escape_markdown(error.reason), question])
    return TurnResult(state, (Reply(text, error.suggestions or suggestions),))


def _prompt(
    state: DialogState, ctx: DialogContext, *, short: bool = False
) -> tuple[str, tuple[str, ...]]:
    """The question for the state's step, and the suggested answers to offer with it."""
    slots = state.slots
    country = ctx.offer.country(slots.country) if slots.country else None
    if state.step is Step.COUNTRY:
        question = "Which country should the number be in?"
        detail = "Reply with a name or a code, e.g. United States or US."
        suggestions = tuple(c.name for c in ctx.offer.countries[:MAX_SUGGESTIONS])
    elif state.step is Step.AREA_CODE:
        if country is None:
            raise ValueError("the area code is asked only once the country is known")
        question = f"Which area code in {escape_markdown(country.name)}?"
        detail = escape_markdown(stock_sentence(country, slots.number_type))
        suggestions = area_code_suggestions(country, slots.number_type)
    elif state.step is Step.DISPLAY_NAME:
        question = "What should the resource account be called?"
        detail = (
            "This is the display name people see, e.g. Contoso Support (up to 256 "
            "characters); its user name is made from it."
        )
        suggestions = ()
    elif state.step is Step.NUMBER_TYPE:
        labels = tuple(NUMBER_TYPE_LABELS[t] for t in number_type_choices(country))
        question = "Which type of number?"
        detail = f"It is now {NUMBER_TYPE_LABELS[slots.number_type]}; say `back` to keep it."
        suggestions = labels
    elif state.step is Step.ACCOUNT_TYPE:
        question = "What will answer calls on this number?"
        detail = f"It is now {ACCOUNT_TYPE_LABELS[slots.account_type]}; say `back` to keep it."
        suggestions = tuple(ACCOUNT_TYPE_LABELS.values())
    elif state.step is Step.CHOOSE_EDIT:
        question = "What would you like to change?"
        detail = "Say `back` to keep the request as it is."
        suggestions = _EDIT_MENU
    else:
        raise ValueError(f"{state.step} is shown as the confirmation, not asked")
    return (question if short else f"{question} {detail}"), suggestions


def _confirmation(state: DialogState, ctx: DialogContext, notes: list[str]) -> TurnResult:
    slots = state.slots
    if slots.country is None or slots.area is None or slots.display_name is None or not slots.upn:
        raise ValueError("confirmation needs every answer")
    area = slots.area.code or "any (the service chooses)"
    fields = (
        SummaryField("Country", f"{ctx.offer.name_of(slots.country)} ({slots.country})"),
        SummaryField("Area code", area),
        SummaryField("Display name", slots.display_name),
        SummaryField("User name (UPN)", slots.upn),
        SummaryField("Number type", NUMBER_TYPE_LABELS[slots.number_type]),
        SummaryField("Account type", ACCOUNT_TYPE_LABELS[slots.account_type]),
    )
    snapshot = slots.fingerprint()
    card = ConfirmationCardSpec(
        fields=fields,
        upn=slots.upn,
        taken_upn=slots.taken_upn,
        submit_data={ACTION_FIELD: CardAction.SUBMIT.value, SNAPSHOT_FIELD: snapshot},
        edit_data={ACTION_FIELD: CardAction.EDIT.value, SNAPSHOT_FIELD: snapshot},
        cancel_data={ACTION_FIELD: CardAction.CANCEL.value, SNAPSHOT_FIELD: snapshot},
    )
    lines = list(notes)
    if slots.taken_upn:
        lines.append(
            f"`{slots.taken_upn}` is already in use, so the account will be `{slots.upn}`."
        )
    lines.append(
        f"Please check your request for {escape_markdown(slots.display_name)}, then "
        "**Submit** it for approval or **Edit** it."
    )
    return TurnResult(state, (Reply("\n\n".join(lines), ("Submit", "Edit", "Cancel"), card),))
