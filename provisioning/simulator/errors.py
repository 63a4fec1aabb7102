"""The one exception the tenant logic raises; the HTTP layer renders it in the Graph shape."""

from __future__ import annotations


class SimError(Exception):
    """A failure the real service reports as an HTTP status plus a Graph error code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after_s = retry_after_s
