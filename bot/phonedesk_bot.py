"""The Teams activity handler: turns activities into calls on dialogs/ and the service, and back.

Messages (personal chat, group chat, channels with an @mention) and card clicks
(``adaptiveCard/action`` invokes) both end up in one place: the user's saved dialog state
is loaded, ``dialogs.handle_turn`` answers the turn, the new state is saved, and what it
asked for (a submission, a command) is done through the service. Invokes answer with the
updated card in the same HTTP response; provisioning itself continues in the workflow.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from collections.abc import AsyncIterator, Callable, Hashable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from botbuilder.core import InvokeResponse, TurnContext
from botbuilder.core.teams import TeamsActivityHandler
from botbuilder.schema import (
    ActionTypes,
    Activity,
    ActivityTypes,
    AdaptiveCardInvokeResponse,
    CardAction,
    SuggestedActions,
)
from pydantic import JsonValue

from bot.activities import (
    channel_id,
    conversation_key,
    in_channel,
    is_personal,
    message_text,
    person_of,
    reference_json,
    tenant_id,
)
from bot.approvals_channel import load_approvals_channel
from bot.cards import (
    ADAPTIVE_CARD_CONTENT_TYPE,
    REASON_INPUT_ID,
    VERB_APPROVE,
    VERB_CANCEL,
    VERB_DIALOG,
    VERB_REFRESH,
    VERB_REJECT,
    VERB_RETRY,
    confirmation_card,
    request_form_card,
)
from bot.commands import Answer, Caller, CommandRunner
from bot.notifier import CardNotifier
from bot.offers import OfferCache, OfferUnavailable
from bot.proactive import ProactiveMessenger, card_attachment
from bot.request_posts import RequestPosts
from bot.views import view_for, with_notice
from dialogs import (
    CardSpec,
    ConfirmationCardSpec,
    DialogContext,
    Reply,
    Role,
    Submitted,
    Turn,
    TurnResult,
    escape_markdown,
    handle_turn,
    is_dialog_action,
    load_state,
)
from provisioning.domain import (
    Person,
    Request,
    parse_request_id,
    utc_now,
)
from provisioning.persistence.store import Store
from provisioning.service import Outcome, ProvisioningService, RequestNotFound
from provisioning.settings import Settings

__all__ = ["PhoneDeskBot"]

log = logging.getLogger(__name__)

ADAPTIVE_CARD_ACTION: Final = "adaptiveCard/action"
MESSAGE_RESPONSE_TYPE: Final = "application/vnd.microsoft.activity.message"
ERROR_RESPONSE_TYPE: Final = "application/vnd.microsoft.error"
_REQUEST_VERBS: Final = frozenset(
    {VERB_APPROVE, VERB_REJECT, VERB_CANCEL, VERB_RETRY, VERB_REFRESH}
)
_MARKDOWN_ESCAPE: Final = re.compile(r"\\(.)")
_NO_IDENTITY: Final = (
    "I can only help people signed in to Microsoft Teams with a work account, "
    "and I couldn't tell who you are."
)
_OFFER_UNAVAILABLE: Final = (
    "I couldn't reach Microsoft 365 to see which numbers can be ordered. Nothing you sent "
    "was lost; please try again in a minute."
)


@dataclass(frozen=True)
class _Exchange:
    """What one turn produced, before it is rendered as chat messages or an invoke answer."""

    replies: tuple[Reply, ...] = ()
    submission: Outcome | None = None
    answer: Answer | None = None
    dialog_open: bool = False
    """A request dialog is still waiting for the user's next answer."""


class _KeyedLocks:
    """One lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class _InvokeBody(AdaptiveCardInvokeResponse):  # type: ignore[misc]
    """The invoke response body: a card, a message or an error.

    botbuilder's model types ``value`` as a mapping, which cannot carry a message
    response's text. It is handed over as a model, not a dict, because CloudAdapter
    serializes the body itself and ActivityHandler's helper would serialize it twice.
    """

    _attribute_map: Final = {
        "status_code": {"key": "statusCode", "type": "int"},
        "type": {"key": "type", "type": "str"},
        "value": {"key": "value", "type": "object"},
    }


def _invoke_response(status: int, kind: str, value: object) -> InvokeResponse:
    return InvokeResponse(status=200, body=_InvokeBody(status_code=status, type=kind, value=value))


def _card_response(card: Mapping[str, Any]) -> InvokeResponse:
    return _invoke_response(200, ADAPTIVE_CARD_CONTENT_TYPE, dict(card))


def _message_response(text: str) -> InvokeResponse:
    return _invoke_response(200, MESSAGE_RESPONSE_TYPE, text)


def _error_response(status: int, code: str, message: str) -> InvokeResponse:
    return _invoke_response(status, ERROR_RESPONSE_TYPE, {"code": code, "message": message})


def _plain(markdown: str) -> str:
    """Markdown that PhoneDesk wrote, as plain text for a client notification."""
    text = _MARKDOWN_ESCAPE.sub(r"\1", markdown.replace("**", "").replace("`", ""))
    return html.unescape(" ".join(text.split()))


def _suggested(incoming: Activity, suggestions: Sequence[str]) -> SuggestedActions | None:
    # Teams shows suggested actions only in one-to-one chats; elsewhere they are dropped.
    if not suggestions or not is_personal(incoming):
        return None
    return SuggestedActions(
        actions=[CardAction(type=ActionTypes.im_back, title=s, value=s) for s in suggestions]
    )


def _spec_card(spec: CardSpec) -> dict[str, Any]:
    if isinstance(spec, ConfirmationCardSpec):
        return confirmation_card(spec)
    return request_form_card(spec)


class PhoneDeskBot(TeamsActivityHandler):  # type: ignore[misc]
    def __init__(
        self,
        *,
        settings: Settings,
        service: ProvisioningService,
        store: Store,
        notifier: CardNotifier,
        messenger: ProactiveMessenger,
        offers: OfferCache | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._service = service
        self._store = store
        self._notifier = notifier
        self._offers = offers or OfferCache(service)
        self._now = now
        self._posts = RequestPosts(
            store, messenger, notifier, approvers=settings.approvers, now=now
        )
        self._commands = CommandRunner(service, store, notifier, now=now)
        self._locks = _KeyedLocks()
        self._saved_references: dict[str, dict[str, JsonValue]] = {}

    # -- every activity -----------------------------------------------------------------------

    async def on_turn(self, turn_context: TurnContext) -> None:
        await self._remember_conversation(turn_context.activity)
        await super().on_turn(turn_context)

    async def _remember_conversation(self, activity: Activity) -> None:
        if activity.conversation is None or not activity.conversation.id:
            return
        reference = reference_json(activity)
        # Proactive posts must not thread under whichever message happened to come last.
        reference.pop("activityId", None)
        key = conversation_key(activity)
        if self._saved_references.get(key) == reference:
            return
        await self._posts.remember_reference(key, reference)
        self._saved_references[key] = reference

    # -- messages ------------------------------------------------------------------------------

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        person = person_of(activity)
        if person is None:
            await turn_context.send_activity(_NO_IDENTITY)
            return
        data = activity.value if isinstance(activity.value, Mapping) else None
        exchange = await self._converse(activity, person, text=message_text(activity), data=data)
        for reply in exchange.replies:
            await turn_context.send_activity(self._reply_activity(activity, reply))
        if exchange.submission is not None:
            await self._show_submission(turn_context, person, exchange.submission)
        if exchange.answer is not None:
            await self._show_answer(turn_context, exchange.answer)

    def _reply_activity(self, incoming: Activity, reply: Reply) -> Activity:
        attachments = [card_attachment(_spec_card(reply.card))] if reply.card else None
        return Activity(
            type=ActivityTypes.message,
            text=reply.text,
            text_format="markdown",
            suggested_actions=_suggested(incoming, reply.suggestions),
            attachments=attachments,
        )

    async def _show_submission(
        self, turn_context: TurnContext, person: Person, outcome: Outcome
    ) -> None:
        activity = turn_context.activity
        request = outcome.request
        attachments = [card_attachment(self._posts.card(request))] if request else None
        sent = await turn_context.send_activity(
            Activity(
                type=ActivityTypes.message,
                text=escape_markdown(outcome.message),
                text_format="markdown",
                attachments=attachments,
            )
        )
        if request is None or not outcome.ok:
            return
        if sent is not None and sent.id:
            await self._posts.track(request, conversation_key(activity), sent.id)
        await self._posts.announce(request, requested_in=conversation_key(activity))

    async def _show_answer(self, turn_context: TurnContext, answer: Answer) -> None:
        activity = turn_context.activity
        request = answer.request
        sent = await turn_context.send_activity(
            Activity(
                type=ActivityTypes.message,
                text=answer.text,
                text_format="markdown",
                suggested_actions=_suggested(activity, answer.suggestions),
                attachments=[card_attachment(self._posts.card(request))] if request else None,
            )
        )
        if request is not None and sent is not None and sent.id:
            await self._posts.track(request, conversation_key(activity), sent.id)

    # -- the dialog ----------------------------------------------------------------------------

    async def _converse(
        self,
        activity: Activity,
        person: Person,
        *,
        text: str | None,
        data: Mapping[str, object] | None,
    ) -> _Exchange:
        conversation = conversation_key(activity)
        is_approver = self._service.is_approver(person)
        async with self._locks.hold((conversation, person.aad_object_id)):
            stored = await asyncio.to_thread(
                self._store.load_dialog_state, conversation, person.aad_object_id
            )
            try:
                context = await self._dialog_context()
            except OfferUnavailable:
                log.warning("no number offer for a dialog turn; Microsoft 365 unreachable")
                return _Exchange(
                    replies=(Reply(_OFFER_UNAVAILABLE),), dialog_open=stored is not None
                )
            turn = Turn(
                now=self._now(),
                text=text,
                data=data,
                role=Role.APPROVER if is_approver else Role.REQUESTER,
                in_channel=in_channel(activity),
            )
            result = handle_turn(load_state(stored), turn, context)
            submission = None
            if isinstance(result.outcome, Submitted):
                # Submitted before the state is dropped: if this fails, the user's answers
                # are still there to submit again.
                submission = await self._submit(person, result.outcome)
            await self._save_state(conversation, person, result, had_state=stored is not None)
        answer = None
        if result.command is not None:
            caller = Caller(
                person=person,
                is_approver=is_approver,
                conversation_key=conversation,
                channel_id=channel_id(activity),
                tenant_id=tenant_id(activity),
                reference=reference_json(activity),
            )
            answer = await self._commands.run(result.command, caller)
        return _Exchange(
            replies=result.replies,
            submission=submission,
            answer=answer,
            dialog_open=result.state is not None,
        )

    async def _save_state(
        self, conversation: str, person: Person, result: TurnResult, *, had_state: bool
    ) -> None:
        if result.state is None:
            if had_state:
                await asyncio.to_thread(
                    self._store.delete_dialog_state, conversation, person.aad_object_id
                )
            return
        state = result.state.model_dump(mode="json")
        await asyncio.to_thread(
            self._store.save_dialog_state, conversation, person.aad_object_id, state
        )

    async def _dialog_context(self) -> DialogContext:
        offer = await self._offers.get()
        taken = await self._service.taken_upns()
        registered = await load_approvals_channel(self._store) is not None
        return DialogContext(
            offer=offer,
            upn_domain=self._settings.effective_upn_domain,
            is_upn_taken=lambda upn: upn.casefold() in taken,
            approvals_channel_registered=registered,
        )

    async def _submit(self, person: Person, submitted: Submitted) -> Outcome:
        """Hand a confirmed draft to the service, once: a second click finds the first."""
        marker = f"submitted-draft/{person.aad_object_id}/{submitted.draft_id}"
        earlier = await asyncio.to_thread(self._store.get_kv, marker)
        if isinstance(earlier, str):
            try:
                request = await self._service.get(earlier)
            except RequestNotFound:
                request = None
            if request is not None:
                return Outcome(
                    ok=False,
                    message=f"This was already submitted as {request.id}.",
                    request=request,
                )
        outcome = await self._service.submit(person, submitted.request)
        if outcome.ok and outcome.request is not None:
            await asyncio.to_thread(self._store.set_kv, marker, outcome.request.id)
        return outcome

    # -- card clicks ---------------------------------------------------------------------------

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        if turn_context.activity.name != ADAPTIVE_CARD_ACTION:
            response: InvokeResponse = await super().on_invoke_activity(turn_context)
            if response is not None and response.status == 501:
                # botbuilder's "not implemented" reads as a server fault; it is the client's.
                name = str(turn_context.activity.name or "")[:40]
                return _error_response(400, "NotSupported", f"PhoneDesk does not handle {name!r}.")
            return response
        try:
            return await self._card_action(turn_context)
        except Exception:
            log.exception("a card action failed")
            return _error_response(
                500,
                "InternalError",
                "Something went wrong on my side and nothing changed. Please try again.",
            )

    async def _card_action(self, turn_context: TurnContext) -> InvokeResponse:
        activity = turn_context.activity
        value = activity.value if isinstance(activity.value, Mapping) else {}
        action = value.get("action")
        if not isinstance(action, Mapping) or action.get("type") != "Action.Execute":
            return _error_response(400, "BadRequest", "Expected an Action.Execute.")
        verb = action.get("verb")
        if not isinstance(verb, str):
            return _error_response(400, "BadRequest", "The action's verb must be a string.")
        raw_data = action.get("data")
        data: Mapping[str, object] = raw_data if isinstance(raw_data, Mapping) else {}
        person = person_of(activity)
        if person is None:
            return _error_response(401, "Unauthorized", _NO_IDENTITY)
        if verb == VERB_DIALOG or is_dialog_action(data):
            return await self._dialog_action(turn_context, person, data)
        if verb in _REQUEST_VERBS:
            return await self._request_action(person, str(verb), data)
        return _error_response(400, "NotSupported", f"Unknown action '{str(verb)[:40]}'.")

    async def _request_action(
        self, person: Person, verb: str, data: Mapping[str, object]
    ) -> InvokeResponse:
        try:
            request_id = parse_request_id(str(data.get("requestId", "")))
        except ValueError:
            return _error_response(400, "BadRequest", "The card names no valid request.")
        service = self._service
        outcome: Outcome | None
        try:
            if verb == VERB_APPROVE:
                outcome = await service.approve(request_id, person)
            elif verb == VERB_REJECT:
                reason = data.get(REASON_INPUT_ID)
                outcome = await service.reject(
                    request_id, person, reason.strip() if isinstance(reason, str) else ""
                )
            elif verb == VERB_CANCEL:
                outcome = await service.cancel(request_id, person)
            elif verb == VERB_RETRY:
                outcome = await service.retry(request_id, person)
            else:
                outcome = None
            request = (
                outcome.request
                if outcome is not None and outcome.request is not None
                else await service.get(request_id)
            )
        except RequestNotFound:
            return _error_response(404, "NotFound", f"No request {request_id}.")
        card = self._card_for(person, request)
        if outcome is not None:
            card = with_notice(card, outcome.message, tone="good" if outcome.ok else "attention")
            if outcome.ok:
                self._notifier.publish(request)
        return _card_response(card)

    def _card_for(self, person: Person, request: Request) -> dict[str, Any]:
        view = view_for(person, request, is_approver=self._service.is_approver(person))
        return self._posts.card(request, view)

    async def _dialog_action(
        self, turn_context: TurnContext, person: Person, data: Mapping[str, object]
    ) -> InvokeResponse:
        activity = turn_context.activity
        exchange = await self._converse(activity, person, text=None, data=data)
        if exchange.submission is not None:
            return await self._submission_response(turn_context, person, exchange.submission)
        card_reply = next((reply for reply in exchange.replies if reply.card), None)
        if card_reply is not None and card_reply.card is not None:
            # The card the user clicked is replaced by the next one (the form with its
            # errors, the summary again); its words are on the card.
            return _card_response(_spec_card(card_reply.card))
        if not exchange.dialog_open:
            # The dialog is over (cancelled, stale, expired): a short note on the card is all.
            note = exchange.replies[0].text if exchange.replies else "Done."
            return _message_response(_plain(note))
        # The dialog goes on in the chat (Edit asks what to change there).
        for reply in exchange.replies:
            await turn_context.send_activity(self._reply_activity(activity, reply))
        return _message_response("I asked you in the chat.")

    async def _submission_response(
        self, turn_context: TurnContext, person: Person, outcome: Outcome
    ) -> InvokeResponse:
        activity = turn_context.activity
        request = outcome.request
        if request is None:
            return _message_response(outcome.message)
        card = with_notice(
            self._card_for(person, request),
            outcome.message,
            tone="good" if outcome.ok else "attention",
        )
        if not outcome.ok:
            return _card_response(card)
        conversation = conversation_key(activity)
        if activity.reply_to_id:
            # The clicked form or summary becomes the request's card, kept up to date. The
            # invoke response only reaches the clicker; everyone else in the conversation
            # gets the request card through this update (and their own view by refresh).
            await self._posts.track(request, conversation, activity.reply_to_id, shown=False)
        else:
            sent = await turn_context.send_activity(
                Activity(
                    type=ActivityTypes.message,
                    attachments=[card_attachment(self._posts.card(request))],
                )
            )
            if sent is not None and sent.id:
                await self._posts.track(request, conversation, sent.id)
        await self._posts.announce(request, requested_in=conversation)
        return _card_response(card)
