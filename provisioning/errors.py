"""The root of the provisioning domain's errors."""

from __future__ import annotations

from typing import Any


def _rebuild(cls: type[ProvisioningError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ProvisioningError(Exception):
    """Anything that stops a provisioning step; subclasses say what and whether to retry."""

    def __reduce__(self) -> tuple[Any, ...]:
        # DBOS pickles the exception a step raises. The default reduction calls
        # cls(*self.args), which breaks for subclasses with keyword-only constructors,
        # so rebuild from args and attributes without calling __init__.
        return (_rebuild, (type(self), self.args, self.__dict__))
