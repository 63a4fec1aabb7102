"""Card JSON templates kept next to this module, filled with values computed in code.

A template is plain Adaptive Card JSON in which a string that is exactly ``{{name}}`` is
a slot. Filling replaces the whole slot with the value given for it (text, a list, an
object), so no value is ever spliced into another string and nothing needs re-escaping.
A slot filled with ``None`` disappears: from an object its key is dropped, from a list the
item is dropped. Every slot must be filled and every value must have a slot, so a typo on
either side fails loudly instead of rendering a half-empty card.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any, Final

__all__ = ["fill", "render"]

_SLOT: Final = re.compile(r"\{\{([a-z_]+)\}\}")
_DROP: Final = object()


@cache
def _file(name: str) -> dict[str, Any]:
    # Loaded through importlib.resources so it works from a wheel or a zip, not only from
    # a source checkout; cached because the files never change while running.
    text = resources.files(__package__).joinpath(f"{name}.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def render(file: str, name: str, /, **values: Any) -> dict[str, Any]:
    """The object named ``name`` in ``file``.json, filled with ``values``; always a new copy."""
    filled = fill(_file(file)[name], **values)
    if not isinstance(filled, dict):
        raise TypeError(f"{file}.json: {name} is not an object")
    return filled


def fill(template: Any, /, **values: Any) -> Any:
    """A fresh copy of ``template`` with each ``{{slot}}`` replaced by its value."""
    used: set[str] = set()
    filled = _fill(template, values, used)
    unused = values.keys() - used
    if unused:
        raise KeyError(f"no slot for {sorted(unused)} in this template")
    return filled


def _fill(node: Any, values: dict[str, Any], used: set[str]) -> Any:
    if isinstance(node, str):
        match = _SLOT.fullmatch(node)
        if match is None:
            return node
        name = match.group(1)
        if name not in values:
            raise KeyError(f"no value for slot {{{{{name}}}}}")
        used.add(name)
        value = values[name]
        return _DROP if value is None else value
    if isinstance(node, dict):
        filled_dict = {key: _fill(item, values, used) for key, item in node.items()}
        return {key: item for key, item in filled_dict.items() if item is not _DROP}
    if isinstance(node, list):
        filled_list = [_fill(item, values, used) for item in node]
        return [item for item in filled_list if item is not _DROP]
    return node
