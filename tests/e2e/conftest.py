"""PhoneDesk, the Microsoft 365 Agents Playground and headless Chromium, for one test.

Each fixture starts a real process and always stops it, failed test or not: the bot
(``app.py``, on the embedded simulator at a fast time scale, loopback only), the
Playground (``node``; it listens on every interface, which it offers no way to change)
and Debian's Chromium through Playwright, with every non-loopback request aborted.

A missing Chromium or Playground fails the test instead of skipping it: ``make test``
installs both (``make e2e-deps``).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Final

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.e2e.playground_ui import PlaygroundUI
from tools.playground import (
    REPO,
    LaunchError,
    Running,
    free_port,
    running_bot,
    running_playground,
)

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# The UI asks a CDN for fonts; everything it needs is served by the Playground itself.
NOT_LOOPBACK: Final = re.compile(r"^(?!(https?|wss?)://(127\.0\.0\.1|localhost)[:/])")
VIEWPORT: Final = {"width": 1400, "height": 1150}
EXPECT_TIMEOUT_MS: Final = 20_000
ARTIFACTS: Final = REPO / "tests" / "e2e" / "artifacts"
_LOG_TAIL_LINES: Final = 40

# Fast enough that provisioning takes seconds; see tests/provisioning/conftest.py.
FAST_BOT_ENV: Final = {
    "PHONEDESK_LOG_LEVEL": "INFO",
    "PHONEDESK_SIMULATOR__TIME_SCALE": "0.001",
    "PHONEDESK_SIMULATOR__PROPAGATION_MIN_S": "60",
    "PHONEDESK_SIMULATOR__PROPAGATION_MAX_S": "120",
    "PHONEDESK_POLL_INTERVAL_S": "0.05",
    "PHONEDESK_POLL_MAX_INTERVAL_S": "0.2",
}

_CALL_REPORT: Final = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_REPORT] = report
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    node: pytest.Item = request.node
    if _CALL_REPORT not in node.stash:
        return True
    return node.stash[_CALL_REPORT].failed


def _tail(path: Path | None) -> str:
    if path is None or not path.exists():
        return "(no log)"
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-_LOG_TAIL_LINES:])


@pytest.fixture
def phonedesk(tmp_path: Path) -> Iterator[Running]:
    env = {**FAST_BOT_ENV, "PHONEDESK_DATA_DIR": str(tmp_path / "data")}
    with contextlib.ExitStack() as stack:
        try:
            bot = stack.enter_context(
                running_bot(
                    port=free_port(),
                    env=env,
                    log_path=tmp_path / "phonedesk.log",
                    # No .env file there, and nothing inherited: the embedded simulator.
                    cwd=tmp_path,
                    isolated=True,
                )
            )
        except LaunchError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield bot


@pytest.fixture
def playground(phonedesk: Running, tmp_path: Path) -> Iterator[Running]:
    with contextlib.ExitStack() as stack:
        try:
            running = stack.enter_context(
                running_playground(
                    bot_url=phonedesk.url, port=free_port(), log_dir=tmp_path / "playground"
                )
            )
        except LaunchError as exc:
            pytest.fail(f"{exc}\n(`make e2e-deps` installs the Playground)", pytrace=False)
        yield running


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    path = tmp_path / "screenshots"
    path.mkdir()
    return path


@pytest.fixture
def ui(
    request: pytest.FixtureRequest,
    phonedesk: Running,
    playground: Running,
    screenshots: Path,
) -> Iterator[PlaygroundUI]:
    """The Playground open in headless Chromium, as Rita Requester."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `make e2e-deps` installs Debian's chromium "
            "(apt-get install chromium)",
            pytrace=False,
        )
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
            context.set_default_timeout(EXPECT_TIMEOUT_MS)
            context.route(NOT_LOOPBACK, lambda route: route.abort())
            page = context.new_page()
            opened = PlaygroundUI(page, playground.url, screenshots)
            opened.open()
            yield opened
            if _failed(request):
                page.screenshot(path=screenshots / "failure.png")
        finally:
            browser.close()
            _keep(screenshots)
            if _failed(request):
                sys.stderr.write(
                    f"screenshots: {screenshots} (also {ARTIFACTS})\n"
                    f"--- PhoneDesk log, last lines ({phonedesk.log_path}) ---\n"
                    f"{_tail(phonedesk.log_path)}\n"
                    f"--- Playground log, last lines ({playground.log_path}) ---\n"
                    f"{_tail(playground.log_path)}\n"
                )


def _keep(screenshots: Path) -> None:
    """Copy the screenshots where a developer or CI finds them after the run."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    shutil.copytree(screenshots, ARTIFACTS)
