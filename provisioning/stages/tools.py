"""What every stage works with: the settings, the two Microsoft APIs, the journal, the timings."""

from __future__ import annotations

from dataclasses import dataclass

from provisioning.microsoft.graph import GraphClient
from provisioning.microsoft.teams_admin import TeamsAdminClient
from provisioning.settings import Settings
from provisioning.stages.journal import Journal
from provisioning.stages.timing import Timings

__all__ = ["StageTools"]


@dataclass(frozen=True)
class StageTools:
    settings: Settings
    graph: GraphClient
    teams: TeamsAdminClient
    journal: Journal
    timings: Timings
