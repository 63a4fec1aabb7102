"""What the workflow tells the front ends as a request moves on."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from provisioning.domain.requests import Request, StageEvent


class ProgressUpdate(BaseModel):
    """A request changed: its current state, and the stage event behind it if any."""

    model_config = ConfigDict(frozen=True)

    request: Request
    event: StageEvent | None = None
