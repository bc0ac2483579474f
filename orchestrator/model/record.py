"""The run record: a versioned JSON document per apply, verify, rollout or assess, kept in the
history.

Schema `patchring.run/v1`. Fields may be added within a version; renames bump it. An `assess`
record carries the optional `patching` section (per host: pending updates, reboot, open CVEs);
records of the other kinds leave it out, so readers of older records see nothing new.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from orchestrator.model.base import Frozen
from orchestrator.model.notification import NotificationDelivery
from orchestrator.model.patching import Classification, Urgency
from orchestrator.model.results import HostResult
from orchestrator.model.verification import HostVerification

RUN_SCHEMA = "patchring.run/v1"
RunKind = Literal["apply", "verify", "rollout", "assess"]
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


RestartKind = Literal["reboot", "restart"]
RestartStatus = Literal[
    "needed", "waiting", "started", "completed", "timed-out", "restarted", "failed"
]


class RestartEvent(Frozen):
    """A reboot or a service restart after apply, or one that was needed and not done:
    `needed` (reported: the ring does not ask for it), `waiting` (for a maintenance window),
    `started`, then `completed` / `restarted`, `timed-out` (the host did not come back) or
    `failed`. `reason` says why (the packages that asked for it); `seconds` how long the host
    took to come back (or the services to restart)."""

    kind: RestartKind
    status: RestartStatus
    host: str = ""
    ring: str = ""
    batch: int = 0
    reason: str = ""
    packages: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    started_at: datetime | None = None
    seconds: float | None = None
    boot_id: str = ""
    error: str = ""
    at: datetime | None = None


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
    change_ticket: str | None = None
    gates: tuple[GateEntry, ...] = ()
    approvals: tuple[ApprovalEntry, ...] = ()
    events: tuple[HostEvent, ...] = ()
    restarts: tuple[RestartEvent, ...] = Field(
        (), description="Reboots and service restarts after apply, and those only reported."
    )


class PendingPackage(Frozen):
    """One pending update on a host, as `assess` classified it."""

    package: str
    installed_version: str | None = None
    candidate_version: str
    classification: Classification


class OpenCve(Frozen):
    """One CVE open on one host, from the security tracker data."""

    cve: str
    source: str = Field(description="The source package the tracker lists it under.")
    installed_source_version: str
    urgency: Urgency
    status: Literal["resolved", "open", "undetermined"]
    fixed_version: str | None = Field(None, description="First fixed source version, if any.")
    fix_available: bool = Field(
        description="A pending candidate from the host's repositories carries the fix."
    )
    fixed_by: tuple[str, ...] = Field((), description="`package version` of those candidates.")


class HostPatching(Frozen):
    """One host's patch state at the time of the assessment."""

    host: str
    ring: str | None = None
    status: Literal["assessed", "unreachable", "failed"]
    error: str | None = None
    codename: str = ""
    pending: tuple[PendingPackage, ...] = ()
    reboot_required: bool = False
    open_cves: tuple[OpenCve, ...] | None = Field(
        None, description="None without security data (unknown, not none)."
    )
    accepted_cves: tuple[str, ...] = Field(
        (), description="CVEs an exception accepts as a risk: not open, not fixed."
    )

    @property
    def security_updates(self) -> int:
        return sum(p.classification == "security" for p in self.pending)

    @property
    def other_updates(self) -> int:
        return sum(p.classification == "other" for p in self.pending)


class PatchingSection(Frozen):
    """What an `assess` run found: the rings in inventory order and every host's state."""

    security_data: str | None = Field(None, description="The tracker file or URL read, if any.")
    rings: tuple[str, ...] = ()
    hosts: tuple[HostPatching, ...] = ()


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
    change_ticket: str | None = None  # a rollout's `--change-ticket`
    apply: tuple[HostResult, ...] = ()
    verify: tuple[HostVerification, ...] = ()
    rings: tuple[RingOutcome, ...] = ()
    rollout: RolloutLog | None = None  # a rollout's record: the whole rollout, from its ledger
    patching: PatchingSection | None = None  # an assess record's findings
    notifications: tuple[NotificationDelivery, ...] = ()  # webhooks told about rollout events
