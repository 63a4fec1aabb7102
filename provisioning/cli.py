"""The `phonedesk` command line."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from provisioning.settings import ConfigError, load_settings
from provisioning.simulator.config import describe_validation_error
from provisioning.simulator.server import serve

log = logging.getLogger("phonedesk.cli")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phonedesk",
        description="Get phone numbers for IVR bots in Microsoft 365: number, resource account, "
        "license and binding, with approval.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    simulator = commands.add_parser(
        "simulator",
        help="run the Microsoft 365 simulator on its own",
        description="Serve the Microsoft 365 simulator (token, Graph and Teams admin endpoints, "
        "plus /_sim admin endpoints) until interrupted. Knobs come from PHONEDESK_SIMULATOR__* "
        "variables.",
    )
    simulator.add_argument("--host", default="127.0.0.1", help="address to listen on")
    simulator.add_argument("--port", type=int, default=5081, help="port (default 5081)")
    simulator.add_argument("--time-scale", type=float, help="multiplier on simulated durations")
    simulator.add_argument("--seed", type=int, help="random seed for reproducible behaviour")
    return parser


def _run_simulator(args: argparse.Namespace) -> int:
    settings = load_settings()
    config = settings.simulator
    changes = {
        name: value
        for name, value in (("time_scale", args.time_scale), ("seed", args.seed))
        if value is not None
    }
    if changes:
        try:
            config = config.model_validate({**config.model_dump(), **changes})
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc)) from None
    try:
        asyncio.run(serve(config, host=args.host, port=args.port))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "simulator":
            return _run_simulator(args)
    except ConfigError as exc:
        print(f"phonedesk: {exc}", file=sys.stderr)
        return 2
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
