"""Run PhoneDesk and the Microsoft 365 Agents Playground together (``make playground``).

The bot starts first, anonymous and on loopback, with the Playground's mock approver in
``PHONEDESK_APPROVERS``; the Playground (npm ``@microsoft/m365agentsplayground``, from
``node_modules``) starts once the bot answers ``/healthz``. Both stop together: on
Ctrl-C, on SIGTERM, or as soon as either exits. The browser end-to-end test in
``tests/e2e/`` starts them through the same two context managers.

The Playground has no loopback-only option: its web UI and connector listen on every
interface of the machine while it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Final

__all__ = [
    "APPROVALS_CHANNEL",
    "APPROVALS_CHANNEL_NAME",
    "APPROVER",
    "CONFIG_PATH",
    "PERSONAL_CHAT_ID",
    "PLAYGROUND_CLI",
    "REPO",
    "REQUESTER",
    "TEAM_ID",
    "TEAM_NAME",
    "TENANT_ID",
    "LaunchError",
    "MockUser",
    "Running",
    "free_port",
    "main",
    "running_bot",
    "running_playground",
]

log = logging.getLogger("phonedesk.playground")

REPO: Final = Path(__file__).resolve().parent.parent
CONFIG_PATH: Final = REPO / ".m365agentsplayground.yml"
PLAYGROUND_CLI: Final = REPO / "node_modules" / "@microsoft" / "m365agentsplayground" / "cli.js"
APP_PATH: Final = REPO / "app.py"

DEFAULT_BOT_PORT: Final = 3978
DEFAULT_UI_PORT: Final = 56150
BOT_START_TIMEOUT_S: Final = 90.0
PLAYGROUND_START_TIMEOUT_S: Final = 30.0
STOP_TIMEOUT_S: Final = 15.0
_POLL_S: Final = 0.1
_LOG_TAIL_CHARS: Final = 4000
_SETTING_PREFIXES: Final = ("PHONEDESK_", "MICROSOFTAPP")


@dataclass(frozen=True)
class MockUser:
    """A user of ``.m365agentsplayground.yml``, as the bot sees them in ``from``."""

    id: str
    name: str
    aad_object_id: str

    @property
    def account(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "aadObjectId": self.aad_object_id}


# These mirror .m365agentsplayground.yml; tests/e2e/ checks that they still agree.
TENANT_ID: Final = "3f6c2a9e-8b41-4d7a-9c5e-1a2b3c4d5e6f"
REQUESTER: Final = MockUser(
    "29:playground-rita", "Rita Requester", "7e1f0c4a-0001-4a6b-9c1d-00000000a001"
)
APPROVER: Final = MockUser(
    "29:playground-abe", "Abe Approver", "7e1f0c4a-0002-4a6b-9c1d-00000000a002"
)
PERSONAL_CHAT_ID: Final = "a:playground-personal-rita"
TEAM_ID: Final = "19:playground-general@thread.tacv2"
TEAM_NAME: Final = "IT Telephony"
APPROVALS_CHANNEL: Final = "19:playground-phone-approvals@thread.tacv2"
APPROVALS_CHANNEL_NAME: Final = "Phone Approvals"


class LaunchError(Exception):
    """The bot or the Playground could not be started, or stopped on its own."""


@dataclass(frozen=True)
class Running:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path | None
    """Where its output goes; ``None`` when it writes to this terminal."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _check_free(port: int) -> None:
    # Given a busy port the Playground quietly takes a random one instead.
    with socket.socket() as probe:
        # As node does: connections of an earlier run lingering in TIME_WAIT don't count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            raise LaunchError(
                f"port {port} is in use; stop whatever uses it or pick another port"
            ) from None


def _tail(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    text = path.read_text(encoding="utf-8", errors="replace")
    return text[-_LOG_TAIL_CHARS:]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait_until_up(
    url: str, process: subprocess.Popen[bytes], what: str, timeout_s: float, logs: Sequence[Path]
) -> None:
    deadline = time.monotonic() + timeout_s
    while not _answers(url):
        if process.poll() is not None:
            raise LaunchError(_failure(f"{what} exited with code {process.returncode}", logs))
        if time.monotonic() > deadline:
            raise LaunchError(
                _failure(f"{what} did not answer {url} within {timeout_s:.0f} s", logs)
            )
        time.sleep(_POLL_S)
    # The Playground answers once before it validates its config and exits on a bad one.
    if process.poll() is not None:
        raise LaunchError(_failure(f"{what} exited with code {process.returncode}", logs))


def _failure(headline: str, logs: Sequence[Path]) -> str:
    parts = [headline]
    for path in logs:
        tail = _tail(path)
        if tail:
            parts.append(f"--- end of {path} ---\n{tail}")
    if len(parts) == 1 and not logs:
        parts.append("(its output is above)")
    return "\n".join(parts)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited in time; always reaped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.warning(
                "pid %d ignored SIGTERM for %.0f s; killing it", process.pid, STOP_TIMEOUT_S
            )
            process.kill()
    process.wait()


@contextlib.contextmanager
def _output(path: Path | None) -> Iterator[IO[bytes] | None]:
    if path is None:
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        yield stream


@contextlib.contextmanager
def running_bot(
    *,
    port: int,
    env: Mapping[str, str] | None = None,
    log_path: Path | None = None,
    cwd: Path | None = None,
    isolated: bool = False,
    timeout_s: float = BOT_START_TIMEOUT_S,
) -> Iterator[Running]:
    """PhoneDesk (``app.py``) on ``127.0.0.1:port`` with the Playground's approver.

    ``env`` adds to (and overrides) this process's environment; ``cwd`` decides which
    ``.env`` file, if any, the bot reads. ``isolated`` drops every PhoneDesk and Bot
    Framework setting this process inherited, so a developer's tenant never leaks in.
    """
    inherited = {
        name: value
        for name, value in os.environ.items()
        if not (isolated and name.upper().startswith(_SETTING_PREFIXES))
    }
    child_env = {
        **inherited,
        "PHONEDESK_HOST": "127.0.0.1",
        "PHONEDESK_PORT": str(port),
        "PHONEDESK_APPROVERS": APPROVER.aad_object_id,
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    url = f"http://127.0.0.1:{port}"
    with _output(log_path) as out:
        process = subprocess.Popen(
            [sys.executable, str(APP_PATH)],
            env=child_env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            # Out of the terminal's process group: Ctrl-C reaches this process alone,
            # which then stops the children in order.
            start_new_session=True,
        )
        try:
            logs = [log_path] if log_path else []
            _wait_until_up(f"{url}/healthz", process, "the PhoneDesk bot", timeout_s, logs)
            yield Running(url, process, log_path)
        finally:
            stop(process)


@contextlib.contextmanager
def _no_op_xdg_open() -> Iterator[Path]:
    """A directory whose ``xdg-open`` does nothing: the Playground quits if it cannot open one."""
    with tempfile.TemporaryDirectory(prefix="phonedesk-playground-bin-") as directory:
        stub = Path(directory) / "xdg-open"
        stub.write_text("#!/bin/sh\nexit 0\n", encoding="utf-8")
        stub.chmod(0o755)
        yield Path(directory)


def playground_command(bot_url: str, ui_port: int) -> list[str]:
    node = shutil.which("node")
    if node is None:
        raise LaunchError("node is not installed; the Agents Playground needs Node.js 18 or later")
    if not PLAYGROUND_CLI.exists():
        raise LaunchError(
            f"the Agents Playground is not installed ({PLAYGROUND_CLI} is missing); "
            "run `make e2e-deps` (or `npm ci`) in the repository"
        )
    # node itself, not npx: npx wraps it in npm and sh, and a SIGTERM to npx leaves node running.
    return [
        node,
        str(PLAYGROUND_CLI),
        "--app-endpoint",
        f"{bot_url}/api/messages",
        "--channel-id",
        "msteams",
        "--port",
        str(ui_port),
        # The default names localhost, which may resolve to ::1 while the UI is on 127.0.0.1.
        "--service-url",
        f"http://127.0.0.1:{ui_port}/_connector",
        "--disable-telemetry",
    ]


@contextlib.contextmanager
def running_playground(
    *,
    bot_url: str,
    port: int,
    log_dir: Path,
    timeout_s: float = PLAYGROUND_START_TIMEOUT_S,
) -> Iterator[Running]:
    """The Agents Playground on ``port``, talking to the bot at ``bot_url``."""
    command = playground_command(bot_url, port)
    _check_free(port)
    log_dir.mkdir(parents=True, exist_ok=True)
    output_path = log_dir / "playground.out"
    log_path = log_dir / "playground.log"
    with _no_op_xdg_open() as bin_dir, output_path.open("wb") as out:
        env = {
            **os.environ,
            "TEAMSAPPTESTER_BROWSER": "none",
            "M365_AGENTS_PLAYGROUND_CONFIG_PATH": str(CONFIG_PATH),
            "M365_AGENTS_PLAYGROUND_LOGFILE": str(log_path),
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        process = subprocess.Popen(
            command,
            env=env,
            cwd=log_dir,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            # Only answers once the server has mounted its API, after reading the config.
            url = f"http://127.0.0.1:{port}"
            _wait_until_up(
                f"{url}/_internal/v1/testConfig",
                process,
                "the Agents Playground",
                timeout_s,
                [output_path, log_path],
            )
            yield Running(url, process, log_path)
        finally:
            stop(process)


def _banner(ui_port: int) -> str:
    return "\n".join(
        [
            "",
            f"PhoneDesk is ready in the Agents Playground: open http://localhost:{ui_port}",
            "",
            f"  You are {REQUESTER.name}, the requester. In the personal chat type `help`,",
            "  then `request` and answer the questions; Submit sends it for approval.",
            f"  {APPROVER.name} is the approver (aadObjectId {APPROVER.aad_object_id}).",
            "  Approve from another terminal while the card is on screen:",
            f"      .venv/bin/phonedesk approve PD-XXXX --as {APPROVER.aad_object_id}",
            "  or as Abe in the Playground with Mock an Activity (see README.md).",
            "",
            "  The Playground listens on all interfaces, the bot only on loopback.",
            "  Press Ctrl-C to stop both.",
            "",
        ]
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tools.playground",
        description="Start PhoneDesk and the Microsoft 365 Agents Playground together.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_BOT_PORT, help="the bot's port")
    parser.add_argument(
        "--ui-port", type=int, default=DEFAULT_UI_PORT, help="the Playground's web UI port"
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=Path("data") / "playground",
        help="where the Playground's own logs go (the bot logs to this terminal)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Also when started with SIGINT ignored (a background job, nohup).
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with contextlib.ExitStack() as stack:
            bot = stack.enter_context(running_bot(port=args.port))
            playground = stack.enter_context(
                running_playground(
                    bot_url=bot.url, port=args.ui_port, log_dir=args.log_dir.resolve()
                )
            )
            log.info(_banner(args.ui_port))
            while True:
                for name, child in (("the bot", bot), ("the Playground", playground)):
                    if child.process.poll() is not None:
                        where = f"; see {child.log_path}" if child.log_path else ""
                        log.error("%s exited with code %d%s", name, child.process.returncode, where)
                        return 1
                time.sleep(0.5)
    except LaunchError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        log.info("Stopped the Playground and the bot.")
        return 0


if __name__ == "__main__":
    sys.exit(main())
