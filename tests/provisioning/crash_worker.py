"""A headless PhoneDesk worker for the crash test: the real engine and nothing else.

Run as ``python -m tests.provisioning.crash_worker``. It is configured like the server,
from PHONEDESK_* variables (PHONEDESK_SIMULATOR_URL points it at the test's simulator,
PHONEDESK_DATA_DIR at the store it shares with the test), resumes whatever workflows the
system database holds, and runs until it is killed, which is the point.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from provisioning.engine.launch import open_engine
from provisioning.microsoft.connect import connect_microsoft
from provisioning.persistence.store import Store
from provisioning.settings import ConfigError, Settings, load_settings

logger = logging.getLogger("phonedesk.crash_worker")

READY_MESSAGE = "crash worker ready"
_PARENT_CHECK_S = 0.5


async def _until_orphaned() -> None:
    # A test runner that dies without its teardown must not leave a worker behind.
    parent = os.getppid()
    while True:
        await asyncio.sleep(_PARENT_CHECK_S)
        if os.getppid() != parent:
            break
    logger.warning("the test runner is gone; stopping")


async def run(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with connect_microsoft(settings) as microsoft:
        with Store(settings.effective_database_url) as store:
            async with open_engine(settings, microsoft, store):
                logger.info(READY_MESSAGE)
                await _until_orphaned()


def main() -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        settings = load_settings()
    except ConfigError as exc:
        logger.error("%s", exc)
        return 2
    asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
