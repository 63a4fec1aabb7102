"""Provisioning benchmarks against the simulator: one request's overhead, and a bulk run.

    .venv/bin/python -m bench.provisioning                      # both figures
    .venv/bin/python -m bench.provisioning overhead --repeat 7
    .venv/bin/python -m bench.provisioning bulk --requests 100 --rps 20

Overhead: the wall time from ``approve`` to the "completed" progress update, divided by
the delays the tenant itself imposes on that request: the number search, the account's
propagation (as the simulator drew it, read from ``/_sim/state``), the Teams sync and the
assignment operation, at the time scale used. PhoneDesk's poll settings are its defaults
scaled by the same factor, so the ratio is the one a real tenant would show, except for
per-call costs (HTTP, SQLite, DBOS) that do not shrink with the time scale.

Bulk: N requests under the simulator's rate limit, submitted and approved one after
another as ``phonedesk bulk FILE.csv --approve-as …`` does, timed from the first submit to
the last outcome (``--approve-at-once``: all submitted first, then all approved together,
timed from the approvals). The lower bound is the time the rate limit needs to admit the
calls N requests make (counted per API on unthrottled requests), or one request's inherent
delay if that is longer.

The engine, the clients and the store are the real ones, wired as the server wires them;
the simulator runs in this process with a middleware that counts the calls reaching it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import httpx
from aiohttp import web
from aiohttp.typedefs import Handler

from provisioning.domain import NumberRequest, Person, ProgressUpdate, Request, RequestStatus, Stage
from provisioning.engine.launch import TenantApis, open_engine
from provisioning.microsoft.auth import SimulatorTokenProvider
from provisioning.microsoft.base import ApiClient
from provisioning.microsoft.connect import connect_microsoft
from provisioning.microsoft.graph import GRAPH_SCOPE, GraphClient
from provisioning.microsoft.retry import RetryPolicy
from provisioning.microsoft.teams_admin import TEAMS_ADMIN_SCOPE, TeamsAdminClient
from provisioning.persistence.store import Store
from provisioning.service import ProvisioningService
from provisioning.settings import EmbeddedSimulatorConfig, Settings, load_settings
from provisioning.simulator.app import create_simulator_app
from provisioning.simulator.config import NO_TENANT_DELAYS, StockOverride
from provisioning.simulator.wire import ADMIN_PREFIX, AUTH_PREFIX, GRAPH_PREFIX, TEAMS_PREFIX

REQUESTER: Final = Person(aad_object_id="0b0e7a1c-0000-4000-8000-00000000be01", display_name="Bea")
APPROVER: Final = Person(aad_object_id="0b0e7a1c-0000-4000-8000-00000000be02", display_name="Ben")
COUNTRY: Final = "US"
# Seattle has no free numbers in the tenant's inventory, so every request orders one: the
# full four stages, search included.
AREA_CODE: Final = "206"
APIS: Final = {GRAPH_PREFIX: "graph", TEAMS_PREFIX: "teams"}
SETTLED: Final = frozenset({RequestStatus.COMPLETED, RequestStatus.FAILED})
# A workflow parks in its approval wait this soon after submit; an approval that arrives
# earlier is picked up without waiting, which would flatter the figure.
PARK_S: Final = 0.5
WATCH_S: Final = 10.0

log = logging.getLogger("bench.provisioning")


# --- instruments -----------------------------------------------------------------------


def api_prefix(api: str) -> str:
    return next(prefix for prefix, name in APIS.items() if name == api)


class Traffic:
    """Counts the calls that reach the simulator's Microsoft APIs: admitted and throttled."""

    def __init__(self) -> None:
        self.admitted: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.routes: Counter[str] = Counter()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        api = next((name for prefix, name in APIS.items() if request.path.startswith(prefix)), None)
        response = await handler(request)
        if api is not None:
            (self.throttled if response.status == 429 else self.admitted)[api] += 1
            if response.status != 429:
                resource = request.match_info.route.resource
                route = resource.canonical if resource else request.path
                self.routes[f"{request.method} {route.removeprefix(api_prefix(api))}"] += 1
        return response

    def since(self, before: Counter[str]) -> Counter[str]:
        return self.admitted - before


class Timeline:
    """A progress listener that notes when each request reached each stage and status."""

    def __init__(self) -> None:
        self.marks: dict[str, dict[str, float]] = {}
        self._settled: dict[str, asyncio.Event] = {}

    async def on_progress(self, update: ProgressUpdate) -> None:
        now = time.monotonic()
        request = update.request
        if update.event is not None:
            key = f"{update.event.stage.value}:{update.event.status.value}"
        else:
            key = request.status.value
        self.marks.setdefault(request.id, {}).setdefault(key, now)
        if request.status in SETTLED:
            self._event(request.id).set()

    def _event(self, request_id: str) -> asyncio.Event:
        return self._settled.setdefault(request_id, asyncio.Event())

    def is_settled(self, request_id: str) -> bool:
        return self._event(request_id).is_set()

    async def settled(self, request_id: str) -> None:
        await self._event(request_id).wait()

    def stage_seconds(self, request_id: str, stage: Stage) -> float:
        marks = self.marks[request_id]
        return marks[f"{stage.value}:done"] - marks[f"{stage.value}:running"]


# --- the system under test --------------------------------------------------------------


@asynccontextmanager
async def running_simulator(
    config: EmbeddedSimulatorConfig, traffic: Traffic
) -> AsyncIterator[str]:
    app = create_simulator_app(config)
    app.middlewares.insert(0, traffic.middleware)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def simulator_config(
    time_scale: float,
    seed: int,
    requests: int,
    *,
    rps: float | None = None,
    without_delays: bool = False,
) -> EmbeddedSimulatorConfig:
    delays: dict[str, float] = {}
    if rps is not None:
        # The time scale compresses the tenant's delays but not its rate limit, so a
        # throttled run lasts far more simulated time than it would take for real. The
        # reservation keeps its real 16 minutes, or orders would expire only in the bench.
        delays["reservation_expiry_s"] = 16 * 60 / time_scale
    if without_delays:
        delays = dict(NO_TENANT_DELAYS)
    return EmbeddedSimulatorConfig(
        time_scale=time_scale,
        seed=seed,
        rate_limit_rps=rps,
        phone_resource_units=requests + 10,
        stock_overrides=(
            StockOverride(
                country_code=COUNTRY,
                number_type="AutoAttendantToll",
                area_code=AREA_CODE,
                quantity=requests + 10,
            ),
        ),
        **delays,
    )


@dataclass(frozen=True)
class Variant:
    """How a run departs from the shipped configuration; the default departs in nothing."""

    scale_polls: bool = False
    """Poll intervals times the time scale, so waits compress like the tenant's delays."""
    max_attempts: int | None = None
    """Another attempt budget for the clients' retries (an experiment, not the product)."""
    in_flight: int | None = None
    """Bulk run: approve a request only while fewer than this many are in flight."""
    at_once: bool = False
    """Bulk run: submit every request first, then approve them all together."""

    def describe(self) -> str:
        parts = [
            "all approved at once" if self.at_once else "submitted and approved row by row",
            "poll intervals time-scaled" if self.scale_polls else "shipped poll intervals",
        ]
        if self.max_attempts is not None:
            parts.append(f"client max_attempts={self.max_attempts} (experiment)")
        if self.in_flight is not None:
            parts.append(f"at most {self.in_flight} requests in flight (experiment)")
        return ", ".join(parts)


def bench_settings(
    data_dir: Path, simulator_url: str, config: EmbeddedSimulatorConfig, variant: Variant
) -> Settings:
    overrides: dict[str, Any] = {}
    if variant.scale_polls:
        defaults = Settings.model_fields
        for name in ("poll_interval_s", "poll_max_interval_s"):
            overrides[name] = defaults[name].default * config.time_scale
    settings = load_settings(
        data_dir=data_dir,
        simulator_url=simulator_url,
        simulator=config,
        approvers=[APPROVER.aad_object_id],
        **overrides,
    )
    if not settings.uses_simulator:
        raise SystemExit("bench: a Microsoft 365 tenant is configured; unset PHONEDESK_TENANT_ID")
    return settings


@dataclass(frozen=True)
class Clients:
    graph: GraphClient
    teams_admin: TeamsAdminClient


@asynccontextmanager
async def connect(settings: Settings, variant: Variant) -> AsyncIterator[TenantApis]:
    """The server's own wiring, unless the variant asks for another retry policy."""
    if variant.max_attempts is None:
        async with connect_microsoft(settings) as microsoft:
            yield microsoft
        return
    assert settings.simulator_url is not None
    base = settings.simulator_url
    policy = RetryPolicy(max_attempts=variant.max_attempts)
    async with httpx.AsyncClient(timeout=httpx.Timeout(settings.http_timeout_s)) as http:
        tokens = SimulatorTokenProvider(
            http,
            token_url=f"{base}{AUTH_PREFIX}/{settings.simulator.tenant_id}/oauth2/v2.0/token",
            client_id=settings.simulator.client_id,
            client_secret=settings.simulator.client_secret,
        )

        def api(prefix: str, scope: str) -> ApiClient:
            return ApiClient(
                http=http, base_url=base + prefix, scope=scope, tokens=tokens, policy=policy
            )

        yield Clients(
            graph=GraphClient(api(GRAPH_PREFIX, GRAPH_SCOPE)),
            teams_admin=TeamsAdminClient(api(TEAMS_PREFIX, TEAMS_ADMIN_SCOPE)),
        )


@asynccontextmanager
async def running_engine(
    settings: Settings, timeline: Timeline, variant: Variant
) -> AsyncIterator[ProvisioningService]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with connect(settings, variant) as microsoft:
        with Store(settings.effective_database_url) as store:
            async with open_engine(settings, microsoft, store, timeline) as service:
                yield service


@dataclass
class System:
    service: ProvisioningService
    timeline: Timeline
    traffic: Traffic
    admin: httpx.AsyncClient


@asynccontextmanager
async def running_system(
    config: EmbeddedSimulatorConfig, data_dir: Path, variant: Variant
) -> AsyncIterator[System]:
    traffic = Traffic()
    timeline = Timeline()
    async with running_simulator(config, traffic) as url:
        settings = bench_settings(data_dir, url, config, variant)
        async with (
            running_engine(settings, timeline, variant) as service,
            httpx.AsyncClient(base_url=url + ADMIN_PREFIX, timeout=30.0) as admin,
        ):
            yield System(service, timeline, traffic, admin)


async def submit(service: ProvisioningService, name: str) -> Request:
    outcome = await service.submit(
        REQUESTER, NumberRequest(country=COUNTRY, area_code=AREA_CODE, display_name=name)
    )
    if outcome.request is None:
        raise RuntimeError(f"submit refused: {outcome.message}")
    return outcome.request


async def approve(service: ProvisioningService, request_id: str) -> None:
    outcome = await service.approve(request_id, APPROVER)
    if not outcome.ok:
        raise RuntimeError(f"approve refused: {outcome.message}")


# --- the tenant's own delays ------------------------------------------------------------


@dataclass(frozen=True)
class Inherent:
    """What the tenant makes one request wait, in real seconds at the bench's time scale."""

    search: float
    propagation: float
    sync: float
    operation: float

    @property
    def total(self) -> float:
        """The delays one after another, as a workflow that waits for each must meet them."""
        return self.search + self.propagation + self.sync + self.operation

    @property
    def strict(self) -> float:
        """The critical path: the account propagates while the number is searched for, and
        an assignment started right after the sync ends as the sync lands."""
        return max(self.search, self.propagation) + max(self.sync, self.operation)

    @classmethod
    def of(cls, request: Request, tenant: Mapping[str, Any]) -> Inherent:
        scale = float(tenant["timeScale"])
        knobs = tenant["knobs"]
        account = next(
            a for a in tenant["accounts"] if a["userPrincipalName"] == request.result.upn
        )
        propagation = _instant(account["propagatedAt"]) - _instant(account["createdDateTime"])
        return cls(
            search=knobs["search_delay_s"] * scale if request.result.order_id else 0.0,
            propagation=propagation.total_seconds(),
            sync=knobs["sync_delay_s"] * scale,
            operation=knobs["operation_delay_s"] * scale,
        )


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- the two figures ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    request: Request
    wall: float
    inherent: Inherent
    approval_latency: float
    stages: dict[Stage, float]
    calls: Counter[str]

    @property
    def ratio(self) -> float:
        return self.wall / self.inherent.total

    @property
    def strict_ratio(self) -> float:
        return self.wall / self.inherent.strict


@dataclass
class OverheadResult:
    samples: list[Sample] = field(default_factory=list)


@dataclass(frozen=True)
class Needs:
    """The calls one request makes when the tenant never makes it wait: what it needs."""

    per_api: dict[str, float]
    per_route: Counter[str]


async def measure_needs(system: System, repeat: int) -> Needs:
    made: list[Counter[str]] = []
    routes: list[Counter[str]] = []
    for index in range(1, repeat + 1):
        request = await submit(system.service, f"Bench Count {index:03d}")
        before = system.traffic.admitted.copy()
        routes_before = system.traffic.routes.copy()
        await approve(system.service, request.id)
        await system.timeline.settled(request.id)
        made.append(system.traffic.since(before))
        routes.append(system.traffic.routes - routes_before)
    fewest = min(range(repeat), key=lambda i: sum(made[i].values()))
    return Needs({api: float(made[fewest][api]) for api in APIS.values()}, routes[fewest])


async def measure_overhead(system: System, repeat: int) -> OverheadResult:
    result = OverheadResult()
    for index in range(1, repeat + 1):
        request = await submit(system.service, f"Bench Line {index:03d}")
        await asyncio.sleep(PARK_S)
        before = system.traffic.admitted.copy()
        started = time.monotonic()
        await approve(system.service, request.id)
        await system.timeline.settled(request.id)
        done = await system.service.get(request.id)
        if done.status is not RequestStatus.COMPLETED:
            raise RuntimeError(f"{done.id} ended {done.status.value}: {done.failure}")
        marks = system.timeline.marks[request.id]
        tenant = (await system.admin.get("/state")).json()
        sample = Sample(
            request=done,
            wall=marks[RequestStatus.COMPLETED.value] - started,
            inherent=Inherent.of(done, tenant),
            approval_latency=marks[f"{Stage.ACQUIRE_NUMBER.value}:running"] - started,
            stages={stage: system.timeline.stage_seconds(done.id, stage) for stage in Stage},
            calls=system.traffic.since(before),
        )
        result.samples.append(sample)
        log.info("%s: %.3f s for %.3f s inherent", done.id, sample.wall, sample.inherent.total)
    return result


@dataclass(frozen=True)
class BulkResult:
    requests: int
    rps: float
    elapsed: float
    needs: Needs
    calls_made: Counter[str]
    routes_made: Counter[str]
    throttled: Counter[str]
    inherent: float
    failed: list[Request]
    unfinished: int

    @property
    def rate_bound(self) -> float:
        # The bucket starts full: its first second's worth of calls costs no waiting.
        return max(
            max(0.0, self.requests * per_request - self.rps) / self.rps
            for per_request in self.needs.per_api.values()
        )

    @property
    def bound(self) -> float:
        return max(self.rate_bound, self.inherent)

    @property
    def ratio(self) -> float:
        return self.elapsed / self.bound


async def measure_bulk(
    system: System,
    requests: int,
    rps: float,
    needs: Needs,
    deadline: float,
    variant: Variant,
) -> BulkResult:
    names = [f"Bulk Line {index:03d}" for index in range(1, requests + 1)]
    submitted: list[Request] = []
    if variant.at_once:
        submitted = [await submit(system.service, name) for name in names]
        await asyncio.sleep(PARK_S)
    admitted_before = system.traffic.admitted.copy()
    throttled_before = system.traffic.throttled.copy()
    routes_before = system.traffic.routes.copy()
    admission = asyncio.Semaphore(variant.in_flight or requests)

    async def provision(request: Request) -> None:
        async with admission:
            await approve(system.service, request.id)
            await system.timeline.settled(request.id)

    async def row_by_row() -> None:
        # As `phonedesk bulk --approve-as` does: each row submitted, then approved, in turn.
        for name in names:
            request = await submit(system.service, name)
            submitted.append(request)
            await approve(system.service, request.id)
        await asyncio.gather(*(system.timeline.settled(r.id) for r in submitted))

    started = time.monotonic()
    watch = asyncio.create_task(_watch(system, submitted, started))
    try:
        async with asyncio.timeout(deadline):
            if variant.at_once:
                await asyncio.gather(*(provision(r) for r in submitted))
            else:
                await row_by_row()
    except TimeoutError:
        log.warning("bulk run given up after %.0f s", deadline)
    finally:
        watch.cancel()
    _log_stage_times(system.timeline, [r.id for r in submitted], started)
    settled = [r for r in submitted if system.timeline.is_settled(r.id)]
    unfinished = requests - len(settled)
    if unfinished:
        elapsed = time.monotonic() - started
    else:
        elapsed = max(max(system.timeline.marks[r.id].values()) for r in submitted) - started
    calls_made = system.traffic.admitted - admitted_before
    routes_made = system.traffic.routes - routes_before
    throttled = system.traffic.throttled - throttled_before
    done = [await system.service.get(r.id) for r in settled]
    tenant = (await system.admin.get("/state")).json()
    completed = [r for r in done if r.status is RequestStatus.COMPLETED]
    return BulkResult(
        requests=requests,
        rps=rps,
        elapsed=elapsed,
        needs=needs,
        calls_made=calls_made,
        routes_made=routes_made,
        throttled=throttled,
        inherent=max((Inherent.of(r, tenant).strict for r in completed), default=0.0),
        failed=[r for r in done if r.status is not RequestStatus.COMPLETED],
        unfinished=unfinished,
    )


def _log_stage_times(timeline: Timeline, request_ids: list[str], started: float) -> None:
    """When the requests were announced approved and provisioning, and entered and left
    each stage (first, every fifth, last): to see how long start-up takes, and whether they
    move through the stages one after another or all together."""
    keys = [RequestStatus.APPROVED.value, RequestStatus.PROVISIONING.value] + [
        f"{stage.value}:{status}" for stage in Stage for status in ("running", "done")
    ]
    marks = [timeline.marks.get(r, {}) for r in request_ids]
    for key in keys:
        times = sorted(m[key] - started for m in marks if key in m)
        if times:
            picks = [times[min(len(times) - 1, len(times) * q // 10)] for q in range(0, 11, 2)]
            log.warning("%-22s %s", key, " ".join(f"{t:5.1f}" for t in picks))


async def _watch(system: System, requests: list[Request], started: float) -> None:
    """Log where the requests are every few seconds, to see a stall as it happens."""
    while True:
        await asyncio.sleep(WATCH_S)
        where: Counter[str] = Counter()
        for request_id in (r.id for r in requests):
            marks = system.timeline.marks.get(request_id, {})
            stage = next(
                (s.value for s in reversed(Stage) if f"{s.value}:running" in marks),
                "approved",
            )
            where["settled" if system.timeline.is_settled(request_id) else stage] += 1
        log.warning(
            "%5.1f s: %s; admitted %s, throttled %s",
            time.monotonic() - started,
            dict(sorted(where.items())),
            dict(system.traffic.admitted),
            dict(system.traffic.throttled),
        )


# --- report ------------------------------------------------------------------------------


def _spread(values: Sequence[float]) -> str:
    return (
        f"median {statistics.median(values):.3f}, "
        f"min {min(values):.3f}, max {max(values):.3f}, n={len(values)}"
    )


def report_overhead(result: OverheadResult, time_scale: float) -> None:
    print(f"## Overhead (time scale {time_scale:g})")
    print()
    header = (
        "| request | wall s | inherent s | ratio | strict | approval s | "
        "acquire s (search) | account s (propagation) | license s | bind s (sync+op) | "
        "graph calls | teams calls |"
    )
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for s in result.samples:
        inh = s.inherent
        print(
            f"| {s.request.id} | {s.wall:.3f} | {inh.total:.3f} | {s.ratio:.3f} | "
            f"{s.strict_ratio:.3f} | {s.approval_latency:.3f} | "
            f"{s.stages[Stage.ACQUIRE_NUMBER]:.3f} ({inh.search:.3f}) | "
            f"{s.stages[Stage.CREATE_ACCOUNT]:.3f} ({inh.propagation:.3f}) | "
            f"{s.stages[Stage.ASSIGN_LICENSE]:.3f} | "
            f"{s.stages[Stage.BIND_NUMBER]:.3f} ({inh.sync + inh.operation:.3f}) | "
            f"{s.calls['graph']} | {s.calls['teams']} |"
        )
    print()
    ratios = [s.ratio for s in result.samples]
    strict = [s.strict_ratio for s in result.samples]
    print(f"ratio (wall / search+propagation+sync+operation): {_spread(ratios)}")
    print(f"strict ratio (the critical path, see Inherent.strict): {_spread(strict)}")
    print()


def report_bulk(result: BulkResult, variant: Variant) -> None:
    n = result.requests
    print(f"## Bulk ({n} requests, rate limit {result.rps:g} calls/s per API)")
    print()
    print(f"- configuration: {variant.describe()}")
    for api in APIS.values():
        print(
            f"- {api}: {result.needs.per_api[api]:.0f} calls per request needed "
            f"(no waits), {result.calls_made[api] / n:.1f} made; "
            f"{result.throttled[api]} answered 429"
        )
    print(
        f"- lower bound: {result.bound:.2f} s (rate limit {result.rate_bound:.2f} s, "
        f"one request's inherent delay {result.inherent:.2f} s)"
    )
    if result.unfinished:
        print(
            f"- NOT FINISHED: {result.unfinished} of {n} still running after {result.elapsed:.0f} s"
        )
        print(f"- ratio: > {result.ratio:.3f}")
    else:
        print(f"- elapsed: {result.elapsed:.2f} s")
        print(f"- ratio: {result.ratio:.3f}")
    print(f"- failed: {len(result.failed)}")
    for request in result.failed:
        print(f"  - {request.id} {request.status.value}: {request.failure}")
    print()
    print("| call | needed per request | made per request |")
    print("|---|---|---|")
    for route in sorted(set(result.needs.per_route) | set(result.routes_made)):
        made = result.routes_made[route] / n
        print(f"| `{route}` | {result.needs.per_route[route]} | {made:.1f} |")
    print()


# --- command line ------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="phonedesk-bench-") as scratch:
        root = Path(scratch)
        if args.figure in ("all", "overhead"):
            config = simulator_config(args.time_scale, args.seed, args.repeat)
            async with running_system(
                config, root / "overhead", Variant(scale_polls=True)
            ) as system:
                overhead = await measure_overhead(system, args.repeat)
            report_overhead(overhead, args.time_scale)
        if args.figure == "overhead":
            return 0
        if args.in_flight is not None and not args.approve_at_once:
            raise SystemExit("bench: --in-flight needs --approve-at-once")
        variant = Variant(
            scale_polls=args.scale_polls,
            max_attempts=args.max_attempts,
            in_flight=args.in_flight,
            at_once=args.approve_at_once,
        )
        config = simulator_config(args.time_scale, args.seed, 3, without_delays=True)
        async with running_system(config, root / "needs", variant) as system:
            needs = await measure_needs(system, 3)
        config = simulator_config(args.time_scale, args.seed, args.requests, rps=args.rps)
        async with running_system(config, root / "bulk", variant) as system:
            bulk = await measure_bulk(
                system, args.requests, args.rps, needs, args.deadline, variant
            )
        report_bulk(bulk, variant)
        return 1 if bulk.failed or bulk.unfinished else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.provisioning", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("figure", nargs="?", choices=("all", "overhead", "bulk"), default="all")
    parser.add_argument(
        "--time-scale", type=float, default=0.01, help="simulated seconds to real (default 0.01)"
    )
    parser.add_argument(
        "--repeat", type=int, default=7, help="single requests measured (default 7)"
    )
    parser.add_argument(
        "--requests", type=int, default=100, help="requests in the bulk run (default 100)"
    )
    parser.add_argument(
        "--rps", type=float, default=20.0, help="rate limit per API in the bulk run (default 20)"
    )
    parser.add_argument(
        "--deadline", type=float, default=600.0, help="give the bulk run up after (default 600 s)"
    )
    parser.add_argument(
        "--scale-polls",
        action="store_true",
        help="bulk run: time-scale the poll intervals too (the overhead run always does)",
    )
    parser.add_argument(
        "--max-attempts",
        type=int,
        help="bulk run: another client retry budget, as an experiment (shipped: 6)",
    )
    parser.add_argument(
        "--approve-at-once",
        action="store_true",
        help="bulk run: submit every request first, then approve them all together",
    )
    parser.add_argument(
        "--in-flight",
        type=int,
        help="with --approve-at-once: approve only while fewer are in flight, as an experiment",
    )
    parser.add_argument("--seed", type=int, default=1, help="simulator seed (default 1)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: Iterable[str] | None = None) -> int:
    args = _parser().parse_args(None if argv is None else list(argv))
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # The simulator warning and every throttled retry would drown the report.
        for noisy in ("provisioning.microsoft.connect", "provisioning.microsoft.base"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
