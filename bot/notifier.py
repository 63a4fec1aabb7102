"""Keeps every posted request card up to date, in place, as the workflow moves on.

The workflow calls ``on_progress`` for every stage and status change. That call only
records the request's newest state and returns; a background task started with the app
does the sending:

- every card stored for the request (the requester's conversation, the approvers'
  channel) is updated with ``update_activity`` on its activity id;
- updates are coalesced: while a card waits, or while its previous update is still in
  flight, a newer state replaces an older one, so a card never goes backwards and a burst
  of stage events costs one message;
- sends are throttled to Teams' limits, and a 429 is retried after its Retry-After
  (capped); anything else that goes wrong is logged and dropped, never raised into the
  workflow.

Conversation references and card activity ids live in the store, so cards keep updating
after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from pydantic import JsonValue

from bot.cards import CardView
from bot.throttle import ConnectorThrottled, RateLimiter
from bot.views import render_request_card
from provisioning.domain import ProgressUpdate, Request, utc_now
from provisioning.persistence.store import Store

__all__ = ["CardNotifier", "CardUpdater"]

log = logging.getLogger(__name__)

_MAX_ATTEMPTS: Final = 5
_MAX_RETRY_AFTER_S: Final = 30.0
_FALLBACK_RETRY_S: Final = 1.0
_STOP_GRACE_S: Final = 5.0
_REMEMBERED_CARDS: Final = 10_000


class CardUpdater(Protocol):
    """Replaces the card in a message the bot posted (``ProactiveMessenger`` fits)."""

    async def update_card(
        self, reference: Mapping[str, JsonValue], activity_id: str, card: Mapping[str, Any]
    ) -> None: ...


@dataclass(frozen=True)
class _Card:
    request_id: str
    conversation_key: str
    activity_id: str


def _newer(candidate: Request, current: Request | None) -> bool:
    return current is None or candidate.updated_at >= current.updated_at


class CardNotifier:
    """The workflow's ``ProgressListener``: updates request cards in place, throttled."""

    def __init__(
        self,
        store: Store,
        updater: CardUpdater,
        *,
        approvers: Sequence[str],
        limiter: RateLimiter | None = None,
        max_attempts: int = _MAX_ATTEMPTS,
        max_retry_after_s: float = _MAX_RETRY_AFTER_S,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._updater = updater
        self._approvers = tuple(approvers)
        self._limiter = limiter or RateLimiter()
        self._max_attempts = max_attempts
        self._max_retry_after_s = max_retry_after_s
        self._sleep = sleep
        self._now = now
        self._requests: dict[str, Request] = {}
        self._pending: dict[_Card, Request] = {}
        self._in_flight: set[_Card] = set()
        self._sent: OrderedDict[_Card, datetime] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    # -- what the workflow and the bot call -------------------------------------------------

    async def on_progress(self, update: ProgressUpdate) -> None:
        self.publish(update.request)

    def publish(self, request: Request) -> None:
        """Bring every card of the request to this state, soon; returns at once."""
        if _newer(request, self._requests.get(request.id)):
            self._requests[request.id] = request
        self._idle.clear()
        self._wake.set()

    def showing(self, request: Request, conversation_key: str, activity_id: str) -> None:
        """A card was just posted showing this state: no update is due until it changes."""
        self._remember(_Card(request.id, conversation_key, activity_id), request.updated_at)

    async def wait_idle(self) -> None:
        """Until everything published so far has been sent or given up on."""
        await self._idle.wait()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[CardNotifier]:
        """Run the sender while the block runs; on exit, finish what is in flight."""
        loop_task = asyncio.create_task(self._run(), name="phonedesk-card-notifier")
        try:
            yield self
        finally:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_STOP_GRACE_S):
                    await self.wait_idle()
            loop_task.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(loop_task, *self._tasks, return_exceptions=True)
            if self._pending or self._requests:
                log.info(
                    "stopping with %d card update(s) unsent; the next change resends them",
                    len(self._pending) + len(self._requests),
                )

    # -- the sender -------------------------------------------------------------------------

    async def _run(self) -> None:
        delay: float | None = None
        while True:
            if not self._wake.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
            self._wake.clear()
            await self._expand()
            delay = self._dispatch()
            if not (self._requests or self._pending or self._in_flight):
                self._idle.set()

    async def _expand(self) -> None:
        """Turn published requests into one pending update per stored card."""
        requests, self._requests = self._requests, {}
        for request in requests.values():
            try:
                cards = await asyncio.to_thread(self._store.list_card_activities, request.id)
            except Exception:
                log.exception("%s: could not read its cards; skipping this update", request.id)
                continue
            for stored in cards:
                card = _Card(request.id, stored.conversation_key, stored.activity_id)
                if not self._already_sent(card, request) and _newer(
                    request, self._pending.get(card)
                ):
                    self._pending[card] = request

    def _dispatch(self) -> float | None:
        """Start every update the limits allow now; return how long until the next one may go."""
        next_delay: float | None = None
        for card, request in list(self._pending.items()):
            if card in self._in_flight:
                continue
            wait = self._limiter.reserve(card.conversation_key, request.tenant_id)
            if wait > 0:
                next_delay = wait if next_delay is None else min(next_delay, wait)
                continue
            del self._pending[card]
            self._in_flight.add(card)
            task = asyncio.create_task(self._deliver(card, request))
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._finished, card))
        return next_delay

    def _finished(self, card: _Card, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._in_flight.discard(card)
        self._wake.set()

    async def _deliver(self, card: _Card, request: Request) -> None:
        attempt = 1
        while True:
            if self._already_sent(card, request):
                return
            try:
                await self._send(card, request)
            except ConnectorThrottled as throttled:
                if attempt >= self._max_attempts:
                    log.warning(
                        "%s: card in %s still throttled after %d attempts; giving up",
                        card.request_id,
                        card.conversation_key,
                        attempt,
                    )
                    return
                delay = min(
                    throttled.retry_after
                    if throttled.retry_after is not None
                    else _FALLBACK_RETRY_S * attempt,
                    self._max_retry_after_s,
                )
                log.info("%s: card update throttled; retrying in %.2fs", card.request_id, delay)
                self._limiter.hold(card.conversation_key, delay)
                await self._sleep(delay)
                await self._acquire(card.conversation_key, request.tenant_id)
                attempt += 1
                # A newer state that arrived while we waited goes instead of the old one.
                newer = self._pending.get(card)
                if newer is not None and _newer(newer, request):
                    request = self._pending.pop(card)
                continue
            except Exception:
                log.exception(
                    "%s: could not update its card in %s", card.request_id, card.conversation_key
                )
                return
            self._remember(card, request.updated_at)
            return

    async def _acquire(self, conversation: str, tenant: str) -> None:
        while (wait := self._limiter.reserve(conversation, tenant)) > 0:
            await self._sleep(wait)

    async def _send(self, card: _Card, request: Request) -> None:
        reference = await asyncio.to_thread(
            self._store.load_conversation_ref, card.conversation_key
        )
        if reference is None:
            log.warning(
                "%s: no conversation reference for %s; its card cannot be updated",
                card.request_id,
                card.conversation_key,
            )
            return
        content = render_request_card(request, CardView.OBSERVER, self._approvers, self._now())
        await self._updater.update_card(reference, card.activity_id, content)

    def _already_sent(self, card: _Card, request: Request) -> bool:
        sent_at = self._sent.get(card)
        return sent_at is not None and request.updated_at <= sent_at

    def _remember(self, card: _Card, updated_at: datetime) -> None:
        self._sent[card] = updated_at
        self._sent.move_to_end(card)
        while len(self._sent) > _REMEMBERED_CARDS:
            self._sent.popitem(last=False)
