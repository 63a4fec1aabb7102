"""The card notifier alone: coalescing, ordering, throttling and 429s, with a fake sender."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import JsonValue

from bot.notifier import CardNotifier
from bot.throttle import ConnectorThrottled, RateLimiter
from provisioning.domain import NumberRequest, ProgressUpdate, Request, RequestStatus
from provisioning.persistence.store import Store
from tests.provisioning.conftest import APPROVER, REQUESTER

WAIT_S = 5.0


@dataclass
class FakeTime:
    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@dataclass
class Sent:
    conversation: str
    activity_id: str
    status: str


class FakeUpdater:
    """Records each update; can hold the first one back, or fail the next few."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.failures: list[Exception] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def update_card(
        self, reference: Mapping[str, JsonValue], activity_id: str, card: Mapping[str, Any]
    ) -> None:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)
        conversation = str(reference["conversation"]["id"])  # type: ignore[index, call-overload]
        status = str(card["fallbackText"]).split(": ", 1)[1]
        self.sent.append(Sent(conversation, activity_id, status))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'bot.sqlite3'}") as opened:
        yield opened


def new_request(store: Store, *conversations: str) -> Request:
    request = store.create_request(
        tenant_id="tenant-1",
        requester=REQUESTER,
        spec=NumberRequest(country="US", area_code="425", display_name="Contoso Support"),
    )
    for n, conversation in enumerate(conversations, start=1):
        store.save_conversation_ref(conversation, {"conversation": {"id": conversation}})
        store.add_card_activity(request.id, conversation, f"{request.id}-card-{n}")
    return request


def later(request: Request, status: RequestStatus, seconds: int) -> Request:
    return request.model_copy(
        update={"status": status, "updated_at": request.updated_at + timedelta(seconds=seconds)}
    )


async def settle(notifier: CardNotifier) -> None:
    async with asyncio.timeout(WAIT_S):
        await notifier.wait_idle()


def make_notifier(store: Store, updater: FakeUpdater, time: FakeTime | None = None) -> CardNotifier:
    time = time or FakeTime()
    return CardNotifier(
        store,
        updater,
        approvers=[APPROVER.aad_object_id],
        limiter=RateLimiter(clock=time.clock),
        sleep=time.sleep,
    )


async def test_every_stored_card_of_the_request_is_updated(store: Store) -> None:
    request = new_request(store, "a:rita", "19:approvals;messageid=1")
    updater = FakeUpdater()
    notifier = make_notifier(store, updater)

    async with notifier.running():
        await notifier.on_progress(
            ProgressUpdate(request=later(request, RequestStatus.APPROVED, 1))
        )
        await settle(notifier)

    assert sorted((s.conversation, s.activity_id, s.status) for s in updater.sent) == [
        ("19:approvals;messageid=1", f"{request.id}-card-2", "approved, starting"),
        ("a:rita", f"{request.id}-card-1", "approved, starting"),
    ]


async def test_updates_queued_behind_one_in_flight_collapse_into_the_latest(store: Store) -> None:
    request = new_request(store, "a:rita")
    updater = FakeUpdater()
    updater.gate = asyncio.Event()
    notifier = make_notifier(store, updater)

    async with notifier.running():
        notifier.publish(later(request, RequestStatus.APPROVED, 1))
        async with asyncio.timeout(WAIT_S):
            await updater.entered.wait()
        for step, status in enumerate(
            (RequestStatus.PROVISIONING, RequestStatus.FAILED, RequestStatus.COMPLETED), start=2
        ):
            notifier.publish(later(request, status, step))
        updater.gate.set()
        await settle(notifier)

    assert [s.status for s in updater.sent] == ["approved, starting", "completed"]


async def test_an_older_state_never_replaces_a_newer_one(store: Store) -> None:
    request = new_request(store, "a:rita")
    updater = FakeUpdater()
    notifier = make_notifier(store, updater)

    async with notifier.running():
        notifier.publish(later(request, RequestStatus.COMPLETED, 5))
        await settle(notifier)
        notifier.publish(later(request, RequestStatus.PROVISIONING, 2))
        await settle(notifier)

    assert [s.status for s in updater.sent] == ["completed"]


async def test_a_429_is_retried_after_its_retry_after_capped(store: Store) -> None:
    request = new_request(store, "a:rita")
    updater = FakeUpdater()
    updater.failures = [ConnectorThrottled(retry_after=3.0), ConnectorThrottled(retry_after=900)]
    time = FakeTime()
    notifier = make_notifier(store, updater, time)

    async with notifier.running():
        notifier.publish(later(request, RequestStatus.APPROVED, 1))
        await settle(notifier)

    assert [s.status for s in updater.sent] == ["approved, starting"]
    assert time.slept[:2] == [3.0, 30.0]


async def test_a_card_that_cannot_be_updated_is_logged_not_raised(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    request = new_request(store, "a:rita")
    updater = FakeUpdater()
    updater.failures = [RuntimeError("connector is down")]
    notifier = make_notifier(store, updater)

    async with notifier.running():
        with caplog.at_level(logging.ERROR, logger="bot.notifier"):
            notifier.publish(later(request, RequestStatus.APPROVED, 1))
            await settle(notifier)
        notifier.publish(later(request, RequestStatus.PROVISIONING, 2))
        await settle(notifier)

    assert "could not update its card" in caplog.text
    assert [s.status for s in updater.sent][-1].startswith("provisioning")


async def test_the_eighth_update_in_a_second_to_one_conversation_waits(store: Store) -> None:
    requests = [new_request(store, "a:busy") for _ in range(9)]
    updater = FakeUpdater()
    time = FakeTime()
    notifier = make_notifier(store, updater, time)

    async with notifier.running():
        for request in requests:
            notifier.publish(later(request, RequestStatus.APPROVED, 1))
        async with asyncio.timeout(WAIT_S):
            while True:
                if len(updater.sent) >= 7:
                    break
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        assert len(updater.sent) == 7
        time.now += 1.0
        await settle(notifier)

    assert len(updater.sent) == 9
