"""A saved plan (`plan --out FILE`): what was planned, from which commit, inputs and host states.

Plain JSON, validated with these models when loaded (never executed). `apply FILE` and `rollout
--plan FILE` apply it only while the commit, the input files' hashes, each host's desired
state and each host's observed state are those the plan was computed from. Pure data.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from orchestrator.drift.changes import ResourceChange
from orchestrator.drift.observed import Observation
from orchestrator.model.base import Frozen
from orchestrator.model.results import HostPlanStatus

SAVED_PLAN_SCHEMA: Literal["patchring.saved-plan/v1"] = "patchring.saved-plan/v1"


class PlanSource(Frozen):
    commit: str | None = Field(description="The commit checked out when the plan was made.")
    dirty: bool | None = Field(description="Whether the working tree differed from it.")


class PlannedHost(Frozen):
    host: str
    ring: str | None = None
    status: HostPlanStatus
    desired_sha256: str = Field(description="Digest of the host's resolved desired state.")
    observed_sha256: str | None = Field(
        None, description="Digest of what the probe saw; None when the host was not read."
    )
    observed: Observation | None = Field(
        None, description="What the probe saw (file contents left out), to name drift later."
    )
    changes: tuple[ResourceChange, ...] = ()
    error: str | None = None


class SavedPlan(Frozen):
    schema_: Literal["patchring.saved-plan/v1"] = Field(SAVED_PLAN_SCHEMA, alias="schema")
    tool_version: str
    created: datetime
    source: PlanSource
    inventory: str = Field(description="The --inventory the plan was made with.")
    inputs: dict[str, str] = Field(description="sha256 of every file the plan used.")
    hosts: tuple[PlannedHost, ...]
