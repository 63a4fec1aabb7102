"""Running the simulator: in-process for the bot and tests, or standalone for the CLI."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from aiohttp import web

from provisioning.simulator.app import SIMULATOR, create_simulator_app
from provisioning.simulator.clock import TimeSource
from provisioning.simulator.config import SimulatorConfig
from provisioning.simulator.state import TenantState
from provisioning.simulator.wire import ADMIN_PREFIX, AUTH_PREFIX, GRAPH_PREFIX, TEAMS_PREFIX

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunningSimulator:
    base_url: str
    app: web.Application
    config: SimulatorConfig

    @property
    def state(self) -> TenantState:
        return self.app[SIMULATOR].state

    @property
    def graph_base_url(self) -> str:
        return self.base_url + GRAPH_PREFIX

    @property
    def teams_base_url(self) -> str:
        return self.base_url + TEAMS_PREFIX

    @property
    def admin_base_url(self) -> str:
        return self.base_url + ADMIN_PREFIX

    @property
    def authority_url(self) -> str:
        """Where a tenant's token endpoint lives: ``{authority}/oauth2/v2.0/token``."""
        return f"{self.base_url}{AUTH_PREFIX}/{self.config.tenant_id}"

    @property
    def token_url(self) -> str:
        return f"{self.authority_url}/oauth2/v2.0/token"


@asynccontextmanager
async def start_simulator(
    config: SimulatorConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    clock: TimeSource | None = None,
) -> AsyncIterator[RunningSimulator]:
    """Serves the simulator on ``host:port`` (0 picks a free port) until the block ends."""
    app = create_simulator_app(config, clock=clock)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        running = RunningSimulator(f"http://{url_host}:{bound_port}", app, config)
        logger.info(
            "Microsoft 365 simulator listening on %s (time scale %g, seed %d)",
            running.base_url,
            config.time_scale,
            config.seed,
        )
        yield running
    finally:
        await runner.cleanup()


async def serve(config: SimulatorConfig, host: str = "127.0.0.1", port: int = 5081) -> None:
    """Serves until cancelled."""
    async with start_simulator(config, host, port):
        await asyncio.Event().wait()
