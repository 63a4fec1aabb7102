from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from provisioning.domain import (
    AuditAction,
    AuditResult,
    Decision,
    Failure,
    NumberRequest,
    Person,
    ProvisioningResult,
    Request,
    RequestStatus,
    Stage,
    StageJournal,
    StageState,
    StageStatus,
)
from provisioning.persistence.store import (
    SCHEMA_VERSION,
    InvalidTransition,
    RequestNotFound,
    SchemaVersionError,
    Store,
    StoreError,
    default_database_url,
    metadata,
)

S = RequestStatus
START = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)
ANN = Person(aad_object_id="ann-oid", display_name="Ann Requester")
BOB = Person(aad_object_id="bob-oid", display_name="Bob Requester")
APPROVER = Person(aad_object_id="approver-oid", display_name="Ada Approver")
OTHER_APPROVER = Person(aad_object_id="approver2-oid", display_name="Max Approver")
SPEC = NumberRequest(country="US", area_code="425", display_name="Contoso Support")


class Clock:
    """A settable clock, so time-dependent queries are tested without sleeping."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def url(tmp_path: Path) -> str:
    return default_database_url(tmp_path / "data")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(url: str, clock: Clock) -> Iterator[Store]:
    with Store(url, clock=clock) as opened:
        yield opened


@pytest.fixture
def second_store(url: str, clock: Clock, store: Store) -> Iterator[Store]:
    """Another process's view of the same database file."""
    with Store(url, clock=clock) as opened:
        yield opened


def submit(store: Store, requester: Person = ANN, spec: NumberRequest = SPEC) -> Request:
    return store.create_request(tenant_id="tenant", requester=requester, spec=spec)


def approve(store: Store, request_id: str, approver: Person = APPROVER) -> Request | None:
    decision = Decision(approved=True, by=approver, at=START)
    return store.transition(request_id, S.PENDING_APPROVAL, S.APPROVED, decision=decision)


def reject(store: Store, request_id: str, approver: Person = OTHER_APPROVER) -> Request | None:
    decision = Decision(approved=False, by=approver, at=START, reason="Not budgeted")
    return store.transition(request_id, S.PENDING_APPROVAL, S.REJECTED, decision=decision)


# --- requests ----------------------------------------------------------------------------


def test_created_request_round_trips(store: Store) -> None:
    created = submit(store)

    assert created.status is S.PENDING_APPROVAL
    assert created.requester == ANN
    assert (created.country, created.area_code, created.display_name) == (
        "US",
        "425",
        "Contoso Support",
    )
    assert created.created_at == created.updated_at == START
    assert store.get_request(created.id) == created


def test_unknown_request_is_none(store: Store) -> None:
    assert store.get_request("PD-2222") is None


def test_colliding_request_id_is_redrawn(url: str) -> None:
    ids = iter(["PD-AAAA", "PD-AAAA", "PD-AAAA", "PD-BBBB"])
    with Store(url, new_id=lambda: next(ids)) as store:
        first = submit(store)
        second = submit(store)
    assert (first.id, second.id) == ("PD-AAAA", "PD-BBBB")


def test_timestamps_come_back_utc_aware_from_sqlite(url: str) -> None:
    tokyo = timezone(timedelta(hours=9))
    with Store(url, clock=lambda: datetime(2026, 11, 26, 16, 0, tzinfo=tokyo)) as store:
        created = submit(store)
    with Store(url) as reopened:
        loaded = reopened.get_request(created.id)
    assert loaded is not None
    assert loaded.created_at == START
    assert loaded.created_at.tzinfo is UTC


def test_list_requests_filters_and_puts_newest_first(store: Store, clock: Clock) -> None:
    first = submit(store, ANN)
    clock.advance(timedelta(minutes=1))
    second = submit(store, BOB)
    clock.advance(timedelta(minutes=1))
    third = submit(store, ANN)
    approve(store, third.id)

    assert [r.id for r in store.list_requests()] == [third.id, second.id, first.id]
    assert [r.id for r in store.list_requests(requester_id=ANN.aad_object_id)] == [
        third.id,
        first.id,
    ]
    assert [r.id for r in store.list_requests(status=S.PENDING_APPROVAL)] == [
        second.id,
        first.id,
    ]
    assert [r.id for r in store.list_requests(status=[S.APPROVED, S.REJECTED])] == [third.id]
    assert [r.id for r in store.list_requests(limit=1)] == [third.id]
    assert store.list_requests(tenant_id="another-tenant") == []


def test_transition_applies_changes_atomically(store: Store, clock: Clock) -> None:
    request = submit(store)
    clock.advance(timedelta(seconds=30))

    approved = approve(store, request.id)

    assert approved is not None
    assert approved.status is S.APPROVED
    assert approved.decision is not None
    assert approved.decision.by == APPROVER
    assert approved.updated_at == START + timedelta(seconds=30)
    assert store.get_request(request.id) == approved


def test_second_decider_loses_cleanly(store: Store, second_store: Store) -> None:
    request = submit(store)

    assert approve(store, request.id) is not None
    assert reject(second_store, request.id) is None

    stored = store.get_request(request.id)
    assert stored is not None
    assert stored.status is S.APPROVED
    assert stored.decision is not None
    assert stored.decision.by == APPROVER


def test_concurrent_decisions_have_exactly_one_winner(store: Store, second_store: Store) -> None:
    request = submit(store)
    deciders = 8
    barrier = threading.Barrier(deciders)
    outcomes: list[Request | None] = []
    lock = threading.Lock()

    def decide(index: int) -> None:
        target = store if index % 2 else second_store
        barrier.wait()
        outcome = approve(target, request.id) if index % 3 else reject(target, request.id)
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(deciders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [o for o in outcomes if o is not None]
    assert len(outcomes) == deciders
    assert len(winners) == 1
    assert store.get_request(request.id) == winners[0]


def test_transition_refuses_what_the_lifecycle_forbids(store: Store) -> None:
    request = submit(store)
    with pytest.raises(InvalidTransition, match="pending_approval -> completed"):
        store.transition(request.id, S.PENDING_APPROVAL, S.COMPLETED)
    stored = store.get_request(request.id)
    assert stored is not None
    assert stored.status is S.PENDING_APPROVAL


def test_transition_on_unknown_request_raises(store: Store) -> None:
    with pytest.raises(RequestNotFound):
        store.transition("PD-2222", S.PENDING_APPROVAL, S.CANCELLED)


def test_transition_cannot_rewrite_who_asked(store: Store) -> None:
    request = submit(store)
    with pytest.raises(TypeError, match="requester"):
        store.transition(request.id, S.PENDING_APPROVAL, S.CANCELLED, requester=BOB)
    with pytest.raises(TypeError, match="no field"):
        store.transition(request.id, S.PENDING_APPROVAL, S.CANCELLED, colour="blue")


def test_failure_then_retry_clears_the_failure(store: Store) -> None:
    request = submit(store)
    approve(store, request.id)
    store.transition(request.id, S.APPROVED, S.PROVISIONING)
    failure = Failure(stage=Stage.ASSIGN_LICENSE, reason="No units left", retryable=False)
    failed = store.transition(request.id, S.PROVISIONING, S.FAILED, failure=failure)
    assert failed is not None
    assert failed.failure == failure

    retried = store.transition(request.id, S.FAILED, S.PROVISIONING, failure=None)

    assert retried is not None
    assert retried.failure is None
    assert retried.status is S.PROVISIONING


def test_update_request_records_results_while_status_holds(store: Store) -> None:
    request = submit(store)
    approve(store, request.id)
    store.transition(request.id, S.APPROVED, S.PROVISIONING)
    result = ProvisioningResult(telephone_number="+14255550100", order_id="order-1")

    updated = store.update_request(request.id, expected=S.PROVISIONING, result=result)
    assert updated is not None
    assert updated.result == result

    store.transition(request.id, S.PROVISIONING, S.CANCELLED)
    late = ProvisioningResult(telephone_number="+14255550199")
    assert store.update_request(request.id, expected=S.PROVISIONING, result=late) is None
    stored = store.get_request(request.id)
    assert stored is not None
    assert stored.result == result


def test_merge_result_sets_fields_in_any_status_and_keeps_the_others(store: Store) -> None:
    request = submit(store)
    store.merge_result(request.id, order_id="order-1")
    reject(store, request.id)

    merged = store.merge_result(request.id, telephone_number="+14255550100")

    assert merged.status is S.REJECTED
    assert merged.result == ProvisioningResult(telephone_number="+14255550100", order_id="order-1")
    assert store.get_request(request.id) == merged


def test_concurrent_merges_of_different_fields_lose_none(store: Store, second_store: Store) -> None:
    """A stage and the account it starts early write the same request at the same time."""
    request = submit(store)
    fields = ["telephone_number", "order_id", "account_id", "upn", "sku_id", "operation_id"]
    rounds = 5
    barrier = threading.Barrier(len(fields))

    def write(index: int, field: str) -> None:
        target = store if index % 2 else second_store
        for n in range(rounds):
            barrier.wait()
            value = f"+1425555{index}{n:03d}" if field == "telephone_number" else f"{field}-{n}"
            target.merge_result(request.id, **{field: value})

    threads = [threading.Thread(target=write, args=(i, f)) for i, f in enumerate(fields)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    stored = store.get_request(request.id)
    assert stored is not None
    last = rounds - 1
    assert stored.result.model_dump(exclude={"sku_part_number"}) == {
        field: f"+1425555{i}{last:03d}" if field == "telephone_number" else f"{field}-{last}"
        for i, field in enumerate(fields)
    }


# --- stages ------------------------------------------------------------------------------


def test_record_stage_updates_the_request_and_appends_history(store: Store, clock: Clock) -> None:
    request = submit(store)
    running = StageState(
        stage=Stage.ACQUIRE_NUMBER, status=StageStatus.RUNNING, started_at=clock.now
    )
    store.record_stage(request.id, running)
    clock.advance(timedelta(seconds=5))
    done = running.model_copy(
        update={
            "status": StageStatus.DONE,
            "finished_at": clock.now,
            "detail": "+14255550100 from inventory",
        }
    )

    updated = store.record_stage(request.id, done)

    assert updated.stage(Stage.ACQUIRE_NUMBER) == done
    assert updated.stage(Stage.CREATE_ACCOUNT).status is StageStatus.WAITING
    assert updated.updated_at == clock.now
    assert store.get_request(request.id) == updated


def test_record_stage_for_unknown_request_raises(store: Store) -> None:
    with pytest.raises(RequestNotFound):
        store.record_stage("PD-2222", StageState(stage=Stage.BIND_NUMBER))


# --- audit -------------------------------------------------------------------------------


def test_audit_is_append_only_and_ordered(store: Store, clock: Clock) -> None:
    request = submit(store)
    submitted = store.append_audit(actor=ANN.aad_object_id, action="submit", request_id=request.id)
    clock.advance(timedelta(seconds=1))
    store.append_audit(actor="workflow", action="number.claimed", request_id="PD-9999")
    clock.advance(timedelta(seconds=1))
    refused = store.append_audit(
        actor=ANN.aad_object_id,
        action="approve",
        request_id=request.id,
        result=AuditResult.REFUSED,
        details={"why": "requester cannot approve own request", "attempt": 1},
    )

    entries = store.list_audit(request.id)

    assert entries == [submitted, refused]
    assert entries[1].details == {"why": "requester cannot approve own request", "attempt": 1}
    assert [e.action for e in store.list_audit()] == ["submit", "number.claimed", "approve"]
    assert [e.action for e in store.list_audit(limit=2)] == ["number.claimed", "approve"]
    audit_api = {name for name in dir(Store) if "audit" in name and not name.startswith("_")}
    # audit_once appends too, or not at all; nothing updates or deletes an entry.
    assert audit_api == {"append_audit", "audit_once", "list_audit"}


# --- the stages' journal -----------------------------------------------------------------


def test_the_journal_keeps_what_the_stages_asked_for_across_a_restart(
    store: Store, url: str, clock: Clock
) -> None:
    request = submit(store)
    assert store.load_journal(request.id) == StageJournal()
    store.update_journal(request.id, orders_asked=2, account_asked_upn="a@contoso.test")
    store.update_journal(request.id, synced_account_id="acc-1")

    with Store(url, clock=clock) as reopened:
        journal = reopened.load_journal(request.id)
    assert journal.orders_asked == 2
    assert journal.account_asked_upn == "a@contoso.test"
    assert journal.synced_account_id == "acc-1"


def test_an_effect_is_audited_once_however_often_a_pass_repeats_it(store: Store) -> None:
    request = submit(store)
    first = store.append_audit(
        actor="workflow",
        action=AuditAction.ACCOUNT_CREATED,
        request_id=request.id,
        details={"upn": "a@contoso.test", "account_id": "acc-1"},
    )
    again = store.audit_once(
        actor="workflow",
        action=AuditAction.ACCOUNT_CREATED,
        request_id=request.id,
        details={"upn": "a@contoso.test", "account_id": "acc-1"},
    )
    other = store.audit_once(
        actor="workflow",
        action=AuditAction.ACCOUNT_CREATED,
        request_id=request.id,
        details={"upn": "b@contoso.test", "account_id": "acc-2"},
    )

    assert again is None
    assert other is not None
    assert store.list_audit(request.id) == [first, other]


def test_the_journal_of_an_unknown_request_cannot_be_written(store: Store) -> None:
    with pytest.raises(RequestNotFound):
        store.update_journal("PD-9999", orders_asked=1)


def test_upgrading_from_schema_1_recovers_the_journal_from_the_audit_trail(
    url: str, clock: Clock
) -> None:
    # A request in flight while PhoneDesk is upgraded must not forget what it asked for.
    with Store(url, clock=clock) as old:
        request = submit(old)
        for action, details in [
            ("order.requested", {"order": f"phonedesk-{request.id}-1"}),
            ("order.requested", {"order": f"phonedesk-{request.id}-2"}),
            ("account.create.requested", {"upn": "a@contoso.test"}),
            ("account.create.refused", {"upn": "a@contoso.test"}),
            ("account.create.requested", {"upn": "b@contoso.test"}),
            ("account.created", {"upn": "b@contoso.test", "account_id": "acc-2"}),
            ("account.synced", {"account_id": "acc-2"}),
        ]:
            old.append_audit(
                actor="workflow", action=action, request_id=request.id, details=details
            )
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as raw:
        raw.execute("DROP TABLE request_journal")
        raw.execute("UPDATE schema_version SET version = 1")

    with Store(url, clock=clock) as upgraded:
        journal = upgraded.load_journal(request.id)
        assert upgraded.schema_version() == SCHEMA_VERSION
        assert journal.orders_asked == 2
        assert journal.account_asked_upn == "b@contoso.test"
        assert journal.synced_account_id == "acc-2"
        assert "account.created:acc-2" in journal.audited
        assert (
            upgraded.audit_once(
                actor="workflow",
                action=AuditAction.ACCOUNT_SYNCED,
                request_id=request.id,
                details={"account_id": "acc-2"},
            )
            is None
        )


# --- number claims -----------------------------------------------------------------------


def test_same_number_cannot_be_claimed_by_two_requests(store: Store, second_store: Store) -> None:
    first = submit(store)
    second = submit(second_store, BOB)

    assert store.claim_number("+14255550100", first.id)
    assert not second_store.claim_number("+14255550100", second.id)
    assert second_store.claimed_by("+14255550100") == first.id


def test_reclaiming_by_the_same_request_is_idempotent(store: Store) -> None:
    request = submit(store)
    assert store.claim_number("+14255550100", request.id)
    assert store.claim_number("+14255550100", request.id)
    assert store.list_claims() == {"+14255550100": request.id}


def test_released_number_can_be_claimed_again(store: Store) -> None:
    first = submit(store)
    second = submit(store, BOB)
    store.claim_number("+14255550100", first.id)

    assert not store.release_claim("+14255550100", second.id)
    assert store.release_claim("+14255550100", first.id)

    assert store.claimed_by("+14255550100") is None
    assert store.claim_number("+14255550100", second.id)
    assert store.list_claims(second.id) == {"+14255550100": second.id}


def test_claim_for_unknown_request_raises(store: Store) -> None:
    with pytest.raises(RequestNotFound):
        store.claim_number("+14255550100", "PD-2222")


def test_claim_refuses_a_number_that_is_not_e164(store: Store) -> None:
    request = submit(store)
    with pytest.raises(ValueError, match=r"E\.164"):
        store.claim_number("425 555 0100", request.id)


# --- chat state --------------------------------------------------------------------------


def test_dialog_state_round_trip_and_delete(store: Store) -> None:
    assert store.load_dialog_state("conv-1", "ann-oid") is None
    store.save_dialog_state("conv-1", "ann-oid", {"step": "country", "slots": {}})
    store.save_dialog_state("conv-1", "ann-oid", {"step": "area_code", "slots": {"c": "US"}})
    store.save_dialog_state("conv-1", "bob-oid", {"step": "country", "slots": {}})

    assert store.load_dialog_state("conv-1", "ann-oid") == {
        "step": "area_code",
        "slots": {"c": "US"},
    }
    assert store.delete_dialog_state("conv-1", "ann-oid")
    assert not store.delete_dialog_state("conv-1", "ann-oid")
    assert store.load_dialog_state("conv-1", "ann-oid") is None
    assert store.load_dialog_state("conv-1", "bob-oid") == {"step": "country", "slots": {}}


def test_idle_dialogs_expire_and_recent_ones_stay(store: Store, clock: Clock) -> None:
    store.save_dialog_state("conv-1", "ann-oid", {"step": "country"})
    clock.advance(timedelta(minutes=10))
    store.save_dialog_state("conv-2", "bob-oid", {"step": "country"})
    clock.advance(timedelta(minutes=10))
    store.save_dialog_state("conv-3", "cy-oid", {"step": "country"})
    clock.advance(timedelta(minutes=10))

    assert store.expire_dialog_states(timedelta(minutes=15)) == 2

    assert store.load_dialog_state("conv-1", "ann-oid") is None
    assert store.load_dialog_state("conv-2", "bob-oid") is None
    assert store.load_dialog_state("conv-3", "cy-oid") == {"step": "country"}
    assert store.expire_dialog_states(timedelta(minutes=15)) == 0


def test_conversation_reference_is_replaced_on_save(store: Store) -> None:
    store.save_conversation_ref("conv-1", {"serviceUrl": "https://old", "conversation": {}})
    store.save_conversation_ref("conv-1", {"serviceUrl": "https://new", "conversation": {}})
    assert store.load_conversation_ref("conv-1") == {
        "serviceUrl": "https://new",
        "conversation": {},
    }
    assert store.load_conversation_ref("conv-2") is None


def test_a_request_has_one_card_per_conversation(store: Store, clock: Clock) -> None:
    request = submit(store)
    store.add_card_activity(request.id, "ann-chat", "activity-1")
    clock.advance(timedelta(seconds=1))
    store.add_card_activity(request.id, "approvers-channel", "activity-2")
    clock.advance(timedelta(seconds=1))
    store.add_card_activity(request.id, "ann-chat", "activity-3")

    cards = store.list_card_activities(request.id)

    assert {(c.conversation_key, c.activity_id) for c in cards} == {
        ("ann-chat", "activity-3"),
        ("approvers-channel", "activity-2"),
    }
    assert store.list_card_activities("PD-2222") == []


def test_settings_kv_round_trip(store: Store) -> None:
    assert store.get_kv("approvers_channel") is None
    store.set_kv("approvers_channel", {"conversation_id": "19:abc@thread.tacv2"})
    store.set_kv("approvers_channel", {"conversation_id": "19:def@thread.tacv2"})
    assert store.get_kv("approvers_channel") == {"conversation_id": "19:def@thread.tacv2"}


# --- the database file -------------------------------------------------------------------


def test_everything_survives_reopening(url: str, clock: Clock) -> None:
    with Store(url, clock=clock) as store:
        request = submit(store)
        approve(store, request.id)
        store.record_stage(request.id, StageState(stage=Stage.ACQUIRE_NUMBER))
        store.claim_number("+14255550100", request.id)
        entry = store.append_audit(actor="ann-oid", action="submit", request_id=request.id)
        store.save_dialog_state("conv-1", "ann-oid", {"step": "country"})
        store.set_kv("approvers_channel", "19:abc@thread.tacv2")
        saved = store.get_request(request.id)

    with Store(url, clock=clock) as reopened:
        assert reopened.get_request(request.id) == saved
        assert reopened.claimed_by("+14255550100") == request.id
        assert reopened.list_audit(request.id) == [entry]
        assert reopened.load_dialog_state("conv-1", "ann-oid") == {"step": "country"}
        assert reopened.get_kv("approvers_channel") == "19:abc@thread.tacv2"
        assert reopened.schema_version() == SCHEMA_VERSION


def test_sqlite_file_is_shared_safely_in_wal_mode(store: Store, url: str) -> None:
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as raw:
        (mode,) = raw.execute("PRAGMA journal_mode").fetchone()
    assert mode == "wal"


def test_newer_schema_is_refused_with_a_clear_message(url: str) -> None:
    Store(url).close()
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as raw:
        raw.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))

    with pytest.raises(SchemaVersionError, match=rf"schema version {SCHEMA_VERSION + 1}.*upgrade"):
        Store(url)


def test_unsupported_database_is_refused() -> None:
    with pytest.raises(StoreError, match="unsupported database"):
        Store("mysql://localhost/phonedesk")


def test_in_memory_sqlite_is_refused() -> None:
    with pytest.raises(StoreError, match="in-memory"):
        Store("sqlite://")


def test_schema_compiles_for_postgresql() -> None:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    ddl = [str(CreateTable(table).compile(dialect=dialect)) for table in metadata.sorted_tables]
    requests_ddl = next(statement for statement in ddl if "CREATE TABLE requests" in statement)
    assert "created_at TIMESTAMP WITH TIME ZONE NOT NULL" in requests_ddl


def test_taken_upns_are_those_of_requests_that_hold_one(store: Store) -> None:
    pending = submit(store)
    rejected = submit(store)
    store.assign_upn(pending.id, lambda taken: "Contoso.Support@contoso.test")
    store.assign_upn(rejected.id, lambda taken: "other@contoso.test")
    store.transition(
        rejected.id,
        S.PENDING_APPROVAL,
        S.REJECTED,
        decision=Decision(approved=False, by=APPROVER, at=START, reason="duplicate"),
    )

    # Casefolded, because Entra compares UPNs without case; a rejected request frees its UPN.
    assert store.taken_upns() == {"contoso.support@contoso.test"}
    assert store.taken_upns(besides=pending.id) == frozenset()


def test_assigning_a_upn_sees_the_ones_other_requests_hold(store: Store) -> None:
    first, second = submit(store), submit(store)
    seen: list[frozenset[str]] = []

    def choose(taken: frozenset[str]) -> str:
        seen.append(taken)
        return f"line{len(taken) + 1}@contoso.test"

    store.assign_upn(first.id, choose)
    updated = store.assign_upn(second.id, choose)

    assert seen == [frozenset(), {"line1@contoso.test"}]
    assert updated.result.upn == "line2@contoso.test"
