"""Starting the simulator for real, on loopback, and talking to it with httpx."""

from __future__ import annotations

import asyncio
import logging
import socket

import httpx
import pytest

from provisioning.simulator.config import SimulatorConfig
from provisioning.simulator.server import serve, start_simulator
from provisioning.simulator.wire import TEAMS_ADMIN_SCOPE


async def test_start_simulator_serves_on_a_free_port_and_logs_its_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = SimulatorConfig(time_scale=0.005)
    with caplog.at_level(logging.INFO, logger="provisioning.simulator"):
        async with start_simulator(config) as sim, httpx.AsyncClient() as http:
            assert sim.base_url.startswith("http://127.0.0.1:")
            assert sim.base_url in caplog.text
            resp = await http.post(
                sim.token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": config.client_id,
                    "client_secret": config.client_secret.get_secret_value(),
                    "scope": TEAMS_ADMIN_SCOPE,
                },
            )
            token = resp.json()["access_token"]
            resp = await http.get(
                f"{sim.teams_base_url}/Teams.TelephoneNumberManagement/v1/countries",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert resp.status_code == 200
            assert sim.state.counters.orders_created == 0
            resp = await http.get(f"{sim.admin_base_url}/counters")
            assert resp.json()["ordersCreated"] == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_serve_runs_until_cancelled() -> None:
    port = free_port()
    task = asyncio.create_task(serve(SimulatorConfig(), "127.0.0.1", port))
    async with httpx.AsyncClient() as http:
        async with asyncio.timeout(10):
            while True:
                try:
                    resp = await http.get(f"http://127.0.0.1:{port}/_sim/knobs")
                    break
                except httpx.ConnectError:
                    await asyncio.sleep(0.02)
        assert resp.status_code == 200
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/_sim/knobs")
