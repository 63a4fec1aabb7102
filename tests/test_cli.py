"""The `phonedesk` CLI with no server running: it embeds the engine for each command.

The tenant is an "external" simulator (started in-process here, reached through
PHONEDESK_SIMULATOR_URL the way `phonedesk simulator` would be), so its state outlives
each command, as it must for a request made by one command and approved by the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from provisioning.domain import NumberRequest, Request, RequestStatus
from provisioning.engine.launch import (
    EngineAlreadyRunning,
    EngineLock,
    engine_lock_path,
    open_engine,
)
from provisioning.interfaces.cli import ProgressDisplay, read_bulk_file, run
from provisioning.persistence.store import Store
from provisioning.settings import EmbeddedSimulatorConfig, Settings
from provisioning.simulator.server import RunningSimulator, start_simulator
from tests.provisioning.conftest import (
    APPROVER,
    FAST_PROPAGATION,
    REQUESTER,
    STRANGER,
    TIME_SCALE,
    make_settings,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
UPN_DOMAIN = "contoso.onmicrosoft.com"


@pytest.fixture
async def simulator() -> AsyncIterator[RunningSimulator]:
    config = EmbeddedSimulatorConfig(time_scale=TIME_SCALE, **FAST_PROPAGATION)
    async with start_simulator(config) as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path, simulator: RunningSimulator) -> Settings:
    return make_settings(tmp_path, simulator_url=simulator.base_url)


@pytest.fixture(autouse=True)
def as_requester(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHONEDESK_CLI_USER", REQUESTER.aad_object_id)
    monkeypatch.setenv("PHONEDESK_CLI_NAME", REQUESTER.display_name)


async def phonedesk(settings: Settings, *argv: str) -> tuple[int, str, str]:
    """Run one command in-process; its exit code, stdout and stderr.

    Fresh buffers rather than capsys: DBOS binds its log handler to whatever stderr is
    current when it first starts, and a capsys stream is closed after its test.
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = await run(list(argv), settings=settings)
    return code, out.getvalue(), err.getvalue()


def assert_one_clean_line(err: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("phonedesk:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err


async def submit(settings: Settings, name: str) -> str:
    code, out, err = await phonedesk(settings, "request", "US", "425", name, "--json")
    assert code == 0, err
    request_id: str = json.loads(out)["request"]["id"]
    return request_id


async def test_request_then_approve_provisions_and_status_shows_the_result(
    settings: Settings, simulator: RunningSimulator
) -> None:
    code, out, err = await phonedesk(settings, "request", "us", "425", "Contoso", "Support")
    assert code == 0, err
    assert "contoso.support@contoso.onmicrosoft.com" in out
    request_id = out.split()[0]
    assert f"phonedesk approve {request_id}" in err  # nobody else can approve meanwhile

    code, out, err = await phonedesk(
        settings, "approve", request_id, "--as", APPROVER.aad_object_id, "--name", "Abe"
    )

    assert code == 0, err
    assert f"{request_id} approved by Abe" in out
    assert f"{request_id} completed: +1425" in out
    assert simulator.state.counters.numbers_bound == 1
    code, out, err = await phonedesk(settings, "status", request_id)
    assert code == 0, err
    assert out.startswith(f"{request_id}  Completed")
    assert "contoso.support@contoso.onmicrosoft.com" in out
    assert "4 Bind number              done" in out


async def test_release_gives_back_the_number_license_and_account(
    settings: Settings, simulator: RunningSimulator
) -> None:
    request_id = await submit(settings, "Short Lived")
    code, _, err = await phonedesk(settings, "approve", request_id, "--as", APPROVER.aad_object_id)
    assert code == 0, err

    code, out, err = await phonedesk(settings, "release", request_id)

    assert code == 0, err
    assert f"{request_id} released." in out
    counters = simulator.state.counters
    assert (counters.numbers_unbound, counters.licenses_removed, counters.accounts_deleted) == (
        1,
        1,
        1,
    )


async def test_cancel_waits_until_the_request_is_wound_down(settings: Settings) -> None:
    request_id = await submit(settings, "Changed Mind")

    code, out, err = await phonedesk(settings, "cancel", request_id, "--reason", "not needed")

    assert code == 0, err
    assert f"{request_id} cancelled" in out
    _, status, _ = await phonedesk(settings, "status", request_id, "--json")
    assert {stage["status"] for stage in json.loads(status)["stages"]} == {"cancelled"}


async def test_json_output_of_every_read_command_parses(settings: Settings) -> None:
    request_id = await submit(settings, "Json Check")

    _, status, _ = await phonedesk(settings, "status", request_id, "--json")
    _, listing, _ = await phonedesk(settings, "list", "--mine", "--json")
    _, audit, _ = await phonedesk(settings, "audit", request_id, "--json")
    _, numbers, _ = await phonedesk(settings, "numbers", "--country", "US", "--json")

    assert Request.model_validate(json.loads(status)).status is RequestStatus.PENDING_APPROVAL
    assert [r["id"] for r in json.loads(listing)] == [request_id]
    assert [e["action"] for e in json.loads(audit)] == ["request.submitted"]
    assert all(n["country"] == "US" for n in json.loads(numbers))
    assert json.loads(numbers)


async def test_bulk_submits_approves_and_follows_every_row_to_completion(
    settings: Settings,
    simulator: RunningSimulator,
    tmp_path: Path,
) -> None:
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text(
        'country,area_code,display_name\nUS,425,Bulk One\nUS,any,Bulk Two\nUS,206,"Bulk, Three"\n'
    )

    code, out, err = await phonedesk(
        settings, "bulk", str(csv_file), "--approve-as", APPROVER.aad_object_id, "--json"
    )

    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True
    assert [r["line"] for r in report["requests"]] == [2, 3, 4]
    assert [r["status"] for r in report["requests"]] == ["completed"] * 3
    assert {r["result"]["upn"] for r in report["requests"]} == {
        f"bulk.one@{UPN_DOMAIN}",
        f"bulk.two@{UPN_DOMAIN}",
        f"bulk.three@{UPN_DOMAIN}",
    }
    assert simulator.state.counters.numbers_bound == 3
    assert "completed" in err  # progress went to stderr, not into the JSON


async def test_bulk_with_bad_rows_reports_each_line_and_submits_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text(
        "country,area_code,display_name\n"
        "US,425,Fine Row\n"
        "XX,425,Bad Country\n"
        "US,4a5,Bad Area\n"
        "\n"
        "US,425,fine row\n"
        "US,425\n"
    )

    code, _, err = await phonedesk(
        settings, "bulk", str(csv_file), "--approve-as", APPROVER.aad_object_id
    )

    assert code == 2
    assert "line 2:" not in err
    assert "line 3: country: 'XX' is not an ISO 3166" in err
    assert "line 4: area_code: area code '4a5' must be digits" in err
    assert "line 6: display name 'fine row' is already on line 2" in err
    assert "line 7: expected 3 fields" in err
    assert "nothing was submitted" in err
    with Store(settings.effective_database_url) as store:
        assert store.list_requests() == []


def test_bulk_file_takes_columns_in_any_order_with_a_byte_order_mark(tmp_path: Path) -> None:
    csv_file = tmp_path / "excel.csv"
    csv_file.write_text(
        '\ufeffDisplay Name,Country,Area Code\r\n"Sales, East",gb,any\r\n', encoding="utf-8"
    )

    rows = read_bulk_file(csv_file, UPN_DOMAIN)

    assert [(r.line, r.spec) for r in rows] == [
        (2, NumberRequest(country="GB", area_code=None, display_name="Sales, East"))
    ]


async def test_an_unknown_request_id_is_a_one_line_error(settings: Settings) -> None:
    code, out, err = await phonedesk(settings, "status", "PD-2222")

    assert code == 1
    assert out == ""
    assert_one_clean_line(err)
    assert "there is no request PD-2222" in err


async def test_a_malformed_request_id_is_a_usage_error(settings: Settings) -> None:
    code, _, err = await phonedesk(settings, "approve", "not-an-id")

    assert code == 2
    assert "'not-an-id' is not a request id such as PD-7K3Q" in err


async def test_approve_without_an_identity_says_how_to_give_one(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PHONEDESK_CLI_USER")

    code, _, err = await phonedesk(settings, "approve", "PD-2222")

    assert code == 2
    assert_one_clean_line(err)
    assert "--as OBJECT_ID" in err
    assert "PHONEDESK_CLI_USER" in err


async def test_the_service_refusal_is_shown_and_exits_non_zero(settings: Settings) -> None:
    request_id = await submit(settings, "Refused Approval")

    code, _, err = await phonedesk(settings, "approve", request_id, "--as", STRANGER.aad_object_id)

    assert code == 1
    assert err.strip() == "phonedesk: Only approvers can approve requests."
    _, out, _ = await phonedesk(settings, "status", request_id, "--json")
    assert json.loads(out)["status"] == "pending_approval"


async def test_request_wait_without_a_server_needs_someone_to_approve(settings: Settings) -> None:
    code, _, err = await phonedesk(settings, "request", "US", "425", "Waiter", "--wait")

    assert code == 2
    assert "--wait needs --approve-as" in err
    with Store(settings.effective_database_url) as store:
        assert store.list_requests() == []


async def test_a_second_engine_on_the_same_database_is_refused_naming_the_holder(
    settings: Settings,
) -> None:
    lock_path = engine_lock_path(f"sqlite:///{settings.data_dir / 'phonedesk-workflows.sqlite'}")
    assert lock_path is not None

    with EngineLock.acquire(lock_path, "phonedesk bulk jobs.csv"):
        store = Store(settings.effective_database_url)
        try:
            with pytest.raises(EngineAlreadyRunning) as refused:
                async with open_engine(settings, _NoTenant(), store):
                    pass
        finally:
            store.close()

    assert refused.value.holder is not None
    assert refused.value.holder.pid == os.getpid()
    assert f"in process {os.getpid()} (phonedesk bulk jobs.csv, since " in str(refused.value)


async def test_a_command_refuses_while_another_process_holds_the_engine(settings: Settings) -> None:
    lock_path = engine_lock_path(f"sqlite:///{settings.data_dir / 'phonedesk-workflows.sqlite'}")
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from pathlib import Path; from provisioning.engine.launch import EngineLock\n"
        f"lock = EngineLock.acquire(Path({str(lock_path)!r}), 'phonedesk bulk jobs.csv')\n"
        "print('ready', flush=True); sys.stdin.read()",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 30) == b"ready\n"

        code, _, err = await phonedesk(settings, "request", "US", "425", "Blocked")

        assert code == 1
        assert_one_clean_line(err.replace("phonedesk: note:", "note:"))
        assert f"process {holder.pid} (phonedesk bulk jobs.csv" in err
        with Store(settings.effective_database_url) as store:
            assert store.list_requests() == []
    finally:
        holder.kill()
        await holder.wait()


class _NoTenant:
    """The engine is refused before it would touch Microsoft 365."""

    @property
    def graph(self) -> Any:
        raise AssertionError("the refused engine reached for Graph")

    @property
    def teams_admin(self) -> Any:
        raise AssertionError("the refused engine reached for the Teams admin API")


def _request(request_id: str, status: RequestStatus) -> Request:
    return Request.model_validate(
        {
            "id": request_id,
            "tenant_id": "t",
            "requester": REQUESTER.model_dump(),
            "country": "US",
            "display_name": "Progress",
            "status": status,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }
    )


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_one_updating_line_on_a_terminal_and_plain_lines_otherwise() -> None:
    first = {"PD-2222": _request("PD-2222", RequestStatus.PROVISIONING)}
    second = {"PD-2222": _request("PD-2222", RequestStatus.COMPLETED)}
    terminal, log = _Terminal(), io.StringIO()
    for stream in (terminal, log):
        display = ProgressDisplay(stream, 1)
        display.update(first, [])
        display.update(first, [])
        display.update(second, ["PD-2222"])
        display.close()

    assert terminal.getvalue().count("\r") == 3
    assert terminal.getvalue().count("\n") == 1
    assert "[####################] 1/1 · 1 completed" in terminal.getvalue()
    assert log.getvalue() == "PD-2222  provisioning\nPD-2222  completed\n"
