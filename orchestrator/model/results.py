"""Plans and results per host: what the engine returns and every report is built from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from orchestrator.drift.changes import ResourceChange
from orchestrator.drift.observed import Observation
from orchestrator.model.base import Frozen

HostPlanStatus = Literal["in-sync", "drifted", "unreachable", "failed"]
HostApplyStatus = Literal["unchanged", "changed", "failed", "unreachable"]
ResourceApplyStatus = Literal["changed", "unchanged", "failed", "skipped", "still-differs"]


class HostPlan(Frozen):
    """What converging one host would change (or why the host could not be read)."""

    host: str
    ring: str | None = None
    status: HostPlanStatus
    changes: tuple[ResourceChange, ...] = ()
    error: str | None = None
    remote_commands: int = 0
    observed: Observation | None = Field(
        None,
        exclude=True,
        repr=False,
        description="What the probe saw (the apply compiles "
        "partial file edits from it); not part of the plan's record.",
    )


class ResourceOutcome(Frozen):
    resource_id: str
    policy: str
    status: ResourceApplyStatus
    summary: str
    diff: str = ""
    error: str = ""


class HostResult(Frozen):
    """What applying did on one host."""

    host: str
    ring: str | None = None
    status: HostApplyStatus
    outcomes: tuple[ResourceOutcome, ...] = ()
    error: str | None = None
    remote_commands: int = 0
    seconds: float = 0.0
