"""What a rollout workflow and its activities hand each other: small frozen dataclasses
(Temporal's default converter reads them), never per-host results: those stay in the ledger, so
the workflow's history stays small at any fleet size. Imports nothing but the standard library:
the workflow sandbox loads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SITE_QUEUE_PREFIX = "patchring-site-"
ROLLOUT_QUEUE = "patchring-rollouts"
"""The task queue of rollout workflows and of their central steps (ledger, gate, promotion)."""


def site_queue(site: str) -> str:
    """The task queue a site's worker polls (site names are validated labels)."""
    return f"{SITE_QUEUE_PREFIX}{site}"


def workflow_id(inventory_key: str) -> str:
    """One rollout workflow per inventory, as one active rollout per inventory in the ledger."""
    return f"rollout-{inventory_key}"


@dataclass(frozen=True)
class RolloutInput:
    """What a rollout workflow is started with: where the repository, inventory and ledger are
    (the same paths on every worker: a shared checkout, or a PostgreSQL ledger URL)."""

    repo: str
    inventory: str
    ledger: str
    ref: str | None
    operator: str
    emergency_reason: str | None = None
    change_ticket: str | None = None


@dataclass(frozen=True)
class RingPlan:
    name: str
    batches: list[dict[str, list[str]]]
    """Per batch: site -> its hosts of the batch, in batch order."""
    approval: bool


@dataclass(frozen=True)
class Begun:
    rollout_id: str
    commit: str
    status: str
    ring: int
    rings: list[RingPlan]
    completed: list[str] = field(default_factory=list)
    """`ring/batch` of every batch the ledger has completed (a workflow continuing a rollout)."""


@dataclass(frozen=True)
class Verdict:
    """A step's answer to the workflow: go on (`state` "running") or stop in `state`."""

    state: str
    message: str = ""
    wait_reason: str | None = None
    wait_seconds: float | None = None
    rollout_id: str | None = None
    """In the workflow's result: the ledger's rollout it drove."""


@dataclass(frozen=True)
class BatchDone:
    """One site's share of a batch: where its results are (`ref`) and how many of each."""

    ref: str
    counts: dict[str, int]


@dataclass(frozen=True)
class GateObserved:
    """One site's part of a gate: its ring hosts verified (in the ledger) and the gate's health
    checks on them (`HealthResult` JSON, for the central gate step to judge)."""

    ref: str
    counts: dict[str, int]
    health: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Approval:
    ring: str
    who: str
    reason: str


@dataclass(frozen=True)
class WorkflowStatus:
    """The `status` query's answer: what the workflow is doing now."""

    rollout_id: str | None
    state: str
    ring: str | None = None
    batch: int | None = None
    message: str = ""
    approved: list[str] = field(default_factory=list)
    batches_done: int = 0
