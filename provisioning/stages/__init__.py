"""The four provisioning stages and their undo, as idempotent passes over the tenant.

``runner`` runs one stage (or the undo) to its end; ``acquire``, ``account``, ``license``
and ``bind`` are the stages, ``undo`` their reversal. ``context`` is one run's deadline and
backoff, ``timing`` what the process learned about the tenant's delays, and ``journal``
what the stages keep in the store between passes.
"""

from provisioning.stages.acquire import order_name
from provisioning.stages.context import StageContext
from provisioning.stages.journal import WORKFLOW_ACTOR
from provisioning.stages.outcomes import (
    DeadlinePassed,
    NeedsHuman,
    StageCancelled,
    StageOutcome,
    UndoOutcome,
)
from provisioning.stages.runner import Provisioner
from provisioning.stages.timing import DelayFloor

__all__ = [
    "WORKFLOW_ACTOR",
    "DeadlinePassed",
    "DelayFloor",
    "NeedsHuman",
    "Provisioner",
    "StageCancelled",
    "StageContext",
    "StageOutcome",
    "UndoOutcome",
    "order_name",
]
