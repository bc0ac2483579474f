"""The run record: a versioned JSON document per apply, verify or rollout, kept in the history.

Schema `patchring.run/v1`. Fields may be added within a version; renames bump it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from orchestrator.model.base import Frozen
from orchestrator.model.results import HostResult
from orchestrator.model.verification import HostVerification

RUN_SCHEMA = "patchring.run/v1"
RunKind = Literal["apply", "verify", "rollout"]
RunStatus = Literal["succeeded", "failed", "halted", "interrupted"]


class GitSource(Frozen):
    repo: str
    commit: str | None = None
    author: str | None = None
    date: str | None = None
    message: str | None = None
    dirty: bool | None = None


class Operator(Frozen):
    user: str
    hostname: str
    ci: dict[str, str] = {}


RingStatus = Literal["passed", "failed", "inconclusive", "in-progress", "not-started"]


class RingOutcome(Frozen):
    ring: str
    hosts: tuple[str, ...]
    status: RingStatus
    failed_hosts: tuple[str, ...] = ()
    reason: str = ""


class HostEvent(Frozen):
    """One host outcome of a rollout, as the ledger holds it (apply `started` is an attempt
    that has not finished, or never will: the process was killed)."""

    ring: str
    batch: int
    host: str
    phase: str
    status: str
    at: datetime


class GateEntry(Frozen):
    ring: str
    outcome: str
    reasons: tuple[str, ...] = ()
    at: datetime


class ApprovalEntry(Frozen):
    ring: str
    who: str
    reason: str
    at: datetime


class RolloutLog(Frozen):
    """A rollout as its ledger tells it: every invocation's host outcomes, gates, approvals."""

    id: str
    commit: str
    status: str
    started_by: str
    started_at: datetime
    updated_at: datetime
    emergency_reason: str | None = None
    gates: tuple[GateEntry, ...] = ()
    approvals: tuple[ApprovalEntry, ...] = ()
    events: tuple[HostEvent, ...] = ()


class RunRecord(Frozen):
    """Serialize with `model_dump(mode="json", by_alias=True)` so the version key reads `schema`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_: str = Field(RUN_SCHEMA, alias="schema")
    id: str
    kind: RunKind
    status: RunStatus
    started: datetime
    finished: datetime
    tool_version: str
    source: GitSource
    inputs: dict[str, str] = {}  # repo-relative path -> sha256 of policy, template, inventory files
    operator: Operator
    selection: dict[str, str | None] = {}
    emergency_reason: str | None = None
    apply: tuple[HostResult, ...] = ()
    verify: tuple[HostVerification, ...] = ()
    rings: tuple[RingOutcome, ...] = ()
    rollout: RolloutLog | None = None  # a rollout's record: the whole rollout, from its ledger
