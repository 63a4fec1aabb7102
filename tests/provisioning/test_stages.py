from __future__ import annotations

import random
from pathlib import Path
from typing import cast

import pytest

from provisioning.domain import NumberRequest, Person
from provisioning.microsoft.errors import CODE_ACCOUNT_NOT_READY, BadRequest
from provisioning.microsoft.graph import GraphClient, LongRunningOperation, OperationStatus
from provisioning.microsoft.pacing import current_call_priority
from provisioning.microsoft.teams_admin import ApplicationInstance, TeamsAdminClient
from provisioning.persistence.store import Store
from provisioning.stages import DeadlinePassed, DelayFloor, Provisioner, StageContext
from tests.provisioning.conftest import make_settings


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def context(sleeps: Sleeps, *, deadline: float = 3600.0) -> StageContext:
    return StageContext(
        "PD-TEST",
        deadline=deadline,
        budget_s=deadline,
        poll_interval_s=2.0,
        poll_max_interval_s=60.0,
        clock=lambda: 0.0,
        rng=random.Random(0),
        sleep=sleeps,
    )


async def test_throttling_waits_its_retry_after_and_leaves_the_poll_backoff_alone() -> None:
    sleeps = Sleeps()
    ctx = context(sleeps)

    for _ in range(6):
        await ctx.wait_out_throttling("HTTP 429 TooManyRequests", 0.05)
    await ctx.pause("account not ready")

    assert sleeps.delays[:6] == [0.05] * 6
    # The first poll after the throttling is as short as the first poll ever is.
    assert 1.6 <= sleeps.delays[6] <= 2.0


async def test_pauses_for_a_slow_tenant_do_grow() -> None:
    sleeps = Sleeps()
    ctx = context(sleeps)

    for _ in range(4):
        await ctx.pause("account not ready")

    assert sleeps.delays == sorted(sleeps.delays)
    assert sleeps.delays[-1] > 2.0 * 1.6**2


async def test_throttling_without_retry_after_waits_one_poll_interval() -> None:
    sleeps = Sleeps()
    await context(sleeps).wait_out_throttling("HTTP 503 ServiceUnavailable", None)
    assert sleeps.delays == [2.0]


async def test_throttling_past_the_deadline_ends_the_wait() -> None:
    sleeps = Sleeps()
    with pytest.raises(DeadlinePassed, match="429"):
        await context(sleeps, deadline=-1.0).wait_out_throttling("HTTP 429", 0.05)
    assert sleeps.delays == []


# --- the first look at a new account ------------------------------------------------------


def test_the_first_look_waits_for_the_quickest_recent_account_shaded_by_the_margin() -> None:
    floor = DelayFloor(keep=3, margin=0.9)
    assert floor.first_look(at_least=2.0) == 2.0

    for seconds in (1000.0, 950.0, 1100.0):
        floor.observed(seconds)
    assert floor.first_look(at_least=2.0) == pytest.approx(855.0)

    # Only recent accounts count: the quick one has aged out after three more.
    for seconds in (1200.0, 1150.0, 1300.0):
        floor.observed(seconds)
    assert floor.first_look(at_least=2.0) == pytest.approx(1035.0)
    # And never sooner than the first poll would have been.
    assert floor.first_look(at_least=2000.0) == 2000.0


def test_looks_that_came_too_early_move_the_first_look_halfway_towards_them() -> None:
    floor = DelayFloor(keep=3, margin=1.0)
    # Found done on a look two seconds in (one poll interval): all that says is "by then".
    floor.observed(2.0)
    assert floor.first_look(at_least=0.0) == 2.0

    # A look 0.1 s in was too early, so the next first look tries halfway.
    floor.too_early(0.1)
    assert floor.first_look(at_least=0.0) == pytest.approx(1.05)
    floor.observed(1.05)
    assert floor.first_look(at_least=0.0) == pytest.approx(0.575)
    floor.too_early(0.575)
    # Not yet at 0.575, done by 1.05: it closes in from both sides.
    assert floor.first_look(at_least=0.0) == pytest.approx(0.8125)

    # Durations that vary can give a "not yet" later than a "done": the quickest done wins.
    floor.too_early(5.0)
    assert floor.first_look(at_least=0.0) == pytest.approx(1.05)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class SlowTeams:
    """Setting the ApplicationId is refused until the account has propagated."""

    def __init__(self, clock: Clock, ready_after: dict[str, float]) -> None:
        self._clock = clock
        self._ready_at = dict(ready_after)
        self.looks: list[tuple[str, float]] = []

    async def set_application_id(self, account_id: str, application_id: str) -> None:
        self.looks.append((account_id, self._clock.now))
        if self._clock.now < self._ready_at[account_id]:
            raise BadRequest(400, CODE_ACCOUNT_NOT_READY, "We can't save changes to it.")


def on_clock(clock: Clock) -> StageContext:
    """A stage run with the shipped poll intervals, on a clock the test moves."""
    return StageContext(
        "PD-TEST",
        deadline=1e9,
        budget_s=1e9,
        poll_interval_s=2.0,
        poll_max_interval_s=60.0,
        clock=clock,
        rng=random.Random(0),
        sleep=clock.sleep,
    )


def on_fakes(
    tmp_path: Path, clock: Clock, *, graph: object = None, teams: object = None
) -> Provisioner:
    """A provisioner on the test's clock, calling only the fake APIs a test passes."""
    return Provisioner(
        make_settings(tmp_path),
        cast(GraphClient, graph),
        cast(TeamsAdminClient, teams),
        cast(Store, None),
        monotonic=clock,
    )


async def wait_ready(
    provisioner: Provisioner, clock: Clock, account_id: str, created_at: float
) -> None:
    provisioner.timings.created[account_id] = created_at
    ctx = on_clock(clock)
    await provisioner.accounts.wait_ready(ctx, account_id, f"{account_id}@contoso.test", "app")


async def test_a_new_account_is_first_looked_at_when_earlier_ones_were_ready(
    tmp_path: Path,
) -> None:
    clock = Clock()
    teams = SlowTeams(clock, {"first": 900.0, "second": 1900.0})
    provisioner = on_fakes(tmp_path, clock, teams=teams)

    await wait_ready(provisioner, clock, "first", created_at=0.0)
    first_looks = [at for account, at in teams.looks if account == "first"]
    # Nothing known yet: polled with backoff from the first poll interval.
    assert first_looks[0] == pytest.approx(2.0, abs=0.5)
    assert len(first_looks) > 10

    clock.now = 1000.0
    await wait_ready(provisioner, clock, "second", created_at=1000.0)
    second_looks = [at - 1000.0 for account, at in teams.looks if account == "second"]
    # The first took about 900 s, so the second is not looked at before 90% of that.
    assert second_looks[0] == pytest.approx(0.9 * (first_looks[-1]), abs=0.01)
    assert second_looks[-1] >= 900.0
    assert len(second_looks) < len(first_looks) / 2


class SlowOperations:
    """Number assignments that take ``duration`` seconds to finish."""

    def __init__(self, clock: Clock, duration: float) -> None:
        self._clock = clock
        self._duration = duration
        self.started: dict[str, float] = {}
        self.looks: list[float] = []

    async def get_operation(self, operation_id: str) -> LongRunningOperation:
        age = self._clock.now - self.started[operation_id]
        self.looks.append(age)
        status = OperationStatus.SUCCEEDED if age >= self._duration else OperationStatus.RUNNING
        return LongRunningOperation(id=operation_id, status=status)


async def test_operations_are_first_looked_at_near_how_long_recent_ones_took(
    tmp_path: Path,
) -> None:
    clock = Clock()
    graph = SlowOperations(clock, duration=0.3)
    provisioner = on_fakes(tmp_path, clock, graph=graph)
    ctx = on_clock(clock)
    looks_per_operation = []
    for n in range(12):
        graph.started[f"op-{n}"] = clock.now
        before = len(graph.looks)
        operation = await provisioner.timings.wait_operation(
            ctx,
            cast(GraphClient, graph),
            f"op-{n}",
            started=clock.now,
            floor=provisioner.timings.assignment,
        )
        assert operation.status is OperationStatus.SUCCEEDED
        looks_per_operation.append(graph.looks[before:])
        clock.now += 10.0

    # The first is looked at at once, then a poll interval later: that is all it knows.
    assert looks_per_operation[0][0] == 0.0
    assert len(looks_per_operation[0]) == 2
    # Later ones close in on the 0.3 s it really takes instead of keeping ~2 s ...
    assert all(0.3 <= looks[-1] < 0.6 for looks in looks_per_operation[-4:])
    # ... and mostly need one look.
    assert sum(len(looks) for looks in looks_per_operation[-6:]) <= 8


class RecordingTeams:
    """Creates accounts, noting the priority each creation waited by under throttling."""

    def __init__(self) -> None:
        self.priorities: list[float] = []

    async def create_application_instance(
        self, *, upn: str, display_name: str, application_id: str
    ) -> ApplicationInstance:
        self.priorities.append(current_call_priority())
        return ApplicationInstance.model_validate(
            {
                "objectId": f"id-{len(self.priorities)}",
                "userPrincipalName": upn,
                "displayName": display_name,
                "applicationId": application_id,
            }
        )


async def test_creating_an_account_goes_ahead_of_every_other_call_oldest_request_first(
    tmp_path: Path,
) -> None:
    # Propagation is the long pole: under throttling an account creation waits behind
    # no other request's calls, and creations among themselves go oldest request first.
    teams = RecordingTeams()
    with Store(f"sqlite:///{tmp_path / 'store.sqlite3'}") as store:
        provisioner = Provisioner(
            make_settings(tmp_path), cast(GraphClient, None), cast(TeamsAdminClient, teams), store
        )
        ages: list[float] = []
        for name in ("Older Line", "Younger Line"):
            request = store.create_request(
                tenant_id="contoso",
                requester=Person(aad_object_id="0b0e7a1c-0000-4000-8000-0000000000a1"),
                spec=NumberRequest(country="US", area_code="206", display_name=name),
            )
            ctx = StageContext(
                request.id,
                deadline=1e12,
                budget_s=1e12,
                poll_interval_s=2.0,
                poll_max_interval_s=60.0,
                priority=request.created_at.timestamp(),
            )
            ages.append(request.created_at.timestamp())
            await provisioner.accounts.find_or_create(
                ctx, request, f"{name.split()[0].lower()}@contoso.test", "app"
            )

    older, younger = teams.priorities
    assert older < younger < min(ages)
