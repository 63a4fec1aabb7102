"""What the store raises."""

from __future__ import annotations

from provisioning.errors import ProvisioningError


class StoreError(ProvisioningError):
    """Root of the store's errors."""


class SchemaVersionError(StoreError):
    """The database was written by a newer PhoneDesk than this one."""


class RequestNotFound(StoreError, LookupError):
    def __init__(self, request_id: str) -> None:
        super().__init__(f"no request {request_id}")
        self.request_id = request_id


class InvalidTransition(StoreError, ValueError):
    """A caller asked for a status change the lifecycle does not allow: a programming error."""
