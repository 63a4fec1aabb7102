"""The dependency rules of DESIGN.md, checked on the source itself.

bot -> dialogs, provisioning; dialogs -> provisioning.domain; nothing outside bot/
imports botbuilder, so a move to another bot SDK only touches bot/.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(package: str) -> Iterator[tuple[Path, str]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, alias.name
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield path, node.module


def top(module: str) -> str:
    return module.split(".", 1)[0]


@pytest.mark.parametrize("package", ["dialogs", "provisioning"])
def test_botbuilder_is_imported_only_in_bot(package: str) -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {module}"
        for path, module in imported_modules(package)
        if top(module) in {"botbuilder", "botframework", "bot"}
    ]
    assert offenders == []


def test_dialogs_is_pure_logic() -> None:
    io_modules = {"aiohttp", "httpx", "sqlalchemy", "dbos", "msal", "socket", "requests"}
    offenders = [
        f"{path.relative_to(ROOT)}: {module}"
        for path, module in imported_modules("dialogs")
        if top(module) in io_modules
        or (top(module) == "provisioning" and module != "provisioning.domain")
    ]
    assert offenders == []


def test_the_checks_above_see_the_source() -> None:
    # Guards against the rules passing vacuously because nothing was scanned.
    assert any(module.startswith("botbuilder") for _, module in imported_modules("bot"))
    assert any(module == "provisioning.domain" for _, module in imported_modules("provisioning"))
