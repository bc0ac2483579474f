"""The rollout ledger: the durable state of every rollout, behind one small `Ledger` interface.

This module holds the interface (`Ledger`), the frozen models it takes and returns, its errors, the
row <-> model conversion both backends share, and `open_ledger`, which picks the backend from a
location: a path or `sqlite:///path` is a SQLite file (`ledger_sqlite`), `postgresql://...` a
PostgreSQL database (`ledger_postgres`). The SQL lives only in those two modules. Imports the
standard library, pydantic, `model.base` and `errors`; never the CLI, the engine or the rollout
decisions (they call the ledger, not the reverse).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any, Literal, Protocol, get_args

from pydantic import AfterValidator, Field

from orchestrator.errors import UserInputError
from orchestrator.model.base import Frozen

SCHEMA_VERSION = 3
"""1: rollouts, batches, events, ring deployments. 2: adds `leases` (one driver per rollout).
3: adds the rollout's `change_ticket`."""

RolloutStatus = Literal[
    "running", "waiting", "paused", "halted", "completed", "aborted", "rolled-back"
]
ActiveStatus = Literal["running", "waiting", "paused", "halted"]
ACTIVE_STATUSES: tuple[str, ...] = get_args(ActiveStatus)
WaitReason = Literal["soak", "approval", "maintenance-window", "reboot-window"]
HostPhase = Literal["apply", "verify", "health", "rollback", "reboot", "restart"]
BatchState = Literal["started", "completed"]
GateOutcome = Literal["passed", "failed", "inconclusive"]


def _as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("a time without a time zone")
    return moment.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_as_utc)]
Text = Annotated[str, Field(min_length=1)]


class LedgerError(UserInputError):
    """The ledger cannot be opened, read or written; the hint says what to do."""


class UnknownRolloutError(LedgerError):
    """No rollout of that id in the ledger."""


class LedgerSchemaError(LedgerError):
    """The database was written by a newer patchring, or is not a patchring ledger at all."""


class ActiveRolloutError(LedgerError):
    """The fleet already has an active rollout; only one may be active per inventory."""

    def __init__(self, existing: Rollout) -> None:
        self.rollout_id = existing.id
        self.started_by = existing.started_by
        self.started_at = existing.started_at
        self.status = existing.status
        super().__init__(
            f"rollout {existing.id} is already {existing.status} for this inventory "
            f"(started by {existing.started_by} at {existing.started_at:%Y-%m-%d %H:%M:%S} UTC)",
            hint=f"resume or abort rollout {existing.id} first; "
            "only one rollout per inventory may be active",
        )


class RolloutChangedError(LedgerError):
    """Someone else (`pause`, `abort`, another driver) changed the rollout's status, so the
    write that expected it unchanged was refused; the driver stops."""

    def __init__(self, current: Rollout) -> None:
        self.rollout = current
        super().__init__(
            f"rollout {current.id} is now {current.status} (changed by another command)",
            hint="`patchring status` shows where it stands",
        )


class LeaseHolder(Frozen):
    """Who drives a rollout: a unique token, and for people the operator, host and pid.

    `scope` names the process-id space of the holder (a boot of one machine, one pid namespace)
    when it is known, so a process in the same scope can tell whether the holder still lives."""

    token: Text
    operator: Text
    hostname: Text
    pid: int = Field(ge=0)
    scope: str | None = None

    @property
    def display(self) -> str:
        return f"{self.operator}:{self.pid}"


class Lease(Frozen):
    """A rollout's driver lease as the ledger last saw it; `observed_at` is the ledger's clock
    when it was read, so `live` does not depend on the reader's clock."""

    rollout_id: Text
    holder: LeaseHolder
    taken_at: UtcTime
    heartbeat_at: UtcTime
    expires_at: UtcTime
    observed_at: UtcTime

    @property
    def live(self) -> bool:
        return self.expires_at > self.observed_at


class LeaseHeldError(LedgerError):
    """Another live process drives the rollout; nothing was done."""

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        ago = max(0, int((lease.observed_at - lease.heartbeat_at).total_seconds()))
        left = max(0, int((lease.expires_at - lease.observed_at).total_seconds()))
        super().__init__(
            f"rollout {lease.rollout_id} is being driven by {lease.holder.display} "
            f"since {lease.taken_at:%Y-%m-%d %H:%M:%S} UTC (last heartbeat {ago} s ago); "
            "nothing was done",
            hint="only one process may drive a rollout: wait for it (`patchring status`), or stop "
            "it with `patchring pause` or `patchring abort`; if that process died, its lease "
            f"expires in {left} s and the next `patchring rollout` takes over",
        )


class LeaseLostError(LedgerError):
    """This process no longer holds the rollout's lease (it expired and another took it)."""

    def __init__(self, rollout_id: str, now_held_by: Lease | None) -> None:
        self.lease = now_held_by
        who = (
            f"it is now driven by {now_held_by.holder.display}"
            if now_held_by is not None
            else "the lease was released"
        )
        super().__init__(
            f"this process lost the lease on rollout {rollout_id}: {who}",
            hint="the heartbeat stalled past the lease's expiry; this process stopped driving "
            "before its next step",
        )


class Position(Frozen):
    """Where a rollout stands: the ring index and the batch index within it (both from 0)."""

    ring: int = Field(0, ge=0)
    batch: int = Field(0, ge=0)


class PlannedRing(Frozen):
    name: Text
    batches: tuple[tuple[str, ...], ...]


class RolloutPlan(Frozen):
    """The rings with their batches of host names, fixed when the rollout starts."""

    rings: tuple[PlannedRing, ...]


class NewRollout(Frozen):
    """What the caller knows when a rollout starts; the ledger adds id, times and status."""

    inventory_key: Text
    commit: Text
    started_by: Text
    plan: RolloutPlan
    emergency_reason: str | None = None
    change_ticket: str | None = None


class Rollout(Frozen):
    id: Text
    inventory_key: Text
    commit: Text
    status: RolloutStatus
    wait_reason: WaitReason | None = None
    wait_until: UtcTime | None = None
    emergency_reason: str | None = None
    change_ticket: str | None = None
    started_by: Text
    started_at: UtcTime
    updated_at: UtcTime
    position: Position = Position()
    plan: RolloutPlan

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class HostOutcome(Frozen):
    rollout_id: Text
    ring: Text
    batch: int = Field(ge=0)
    host: Text
    phase: HostPhase
    status: Text
    detail: str = ""
    at: UtcTime


class GateRecord(Frozen):
    rollout_id: Text
    ring: Text
    outcome: GateOutcome
    reasons: tuple[str, ...] = ()
    at: UtcTime


class Approval(Frozen):
    rollout_id: Text
    ring: Text
    who: Text
    reason: str
    at: UtcTime


class RingDeployment(Frozen):
    """The last commit that passed `ring` on the fleet `inventory_key`, and which rollout did it."""

    inventory_key: Text
    ring: Text
    commit: Text
    rollout_id: Text
    at: UtcTime


class _Unset(Enum):
    UNSET = "unset"


UNSET = _Unset.UNSET
"""`update_rollout`'s default: leave the field as it is (`None` clears a wait)."""


class Ledger(Protocol):
    """Every write is one transaction, durable when the call returns."""

    def start_rollout(self, rollout: NewRollout) -> Rollout:
        """Record a new running rollout; ActiveRolloutError if the inventory has an active one."""
        ...

    def active_rollout(self, inventory_key: str) -> Rollout | None: ...

    def get_rollout(self, rollout_id: str) -> Rollout: ...

    def recent_rollouts(self, inventory_key: str, limit: int = 10) -> list[Rollout]:
        """Newest first."""
        ...

    def update_rollout(
        self,
        rollout_id: str,
        *,
        status: RolloutStatus | _Unset = UNSET,
        position: Position | _Unset = UNSET,
        wait_reason: WaitReason | _Unset | None = UNSET,
        wait_until: datetime | _Unset | None = UNSET,
        expect: Collection[str] | None = None,
    ) -> Rollout:
        """With `expect`, the write happens only if the status is still one of those
        (RolloutChangedError otherwise): a driver never overwrites a pause or abort."""
        ...

    def mark_batch(self, rollout_id: str, ring: str, batch: int, state: BatchState) -> None: ...

    def completed_batches(self, rollout_id: str) -> set[tuple[str, int]]: ...

    def record_host(
        self,
        rollout_id: str,
        ring: str,
        batch: int,
        host: str,
        phase: HostPhase,
        status: str,
        detail: str = "",
    ) -> None: ...

    def host_outcomes(self, rollout_id: str) -> list[HostOutcome]:
        """In the order they were recorded."""
        ...

    def record_gate(
        self, rollout_id: str, ring: str, outcome: GateOutcome, reasons: Sequence[str]
    ) -> None: ...

    def gate_results(self, rollout_id: str) -> list[GateRecord]: ...

    def record_gate_passed(
        self, rollout_id: str, inventory_key: str, ring: str, commit: str, reasons: Sequence[str]
    ) -> None:
        """The passed gate and the ring's new deployed commit, in one transaction."""
        ...

    def approve(self, rollout_id: str, ring: str, who: str, reason: str) -> Approval: ...

    def approvals(self, rollout_id: str) -> list[Approval]: ...

    def set_ring_deployment(
        self, inventory_key: str, ring: str, commit: str, rollout_id: str
    ) -> None: ...

    def ring_deployments(self, inventory_key: str) -> dict[str, RingDeployment]: ...

    def take_lease(
        self, rollout_id: str, holder: LeaseHolder, ttl: timedelta, *, replacing: str | None = None
    ) -> Lease:
        """Become the rollout's one driver, atomically: when nobody holds it, the lease has
        expired, `holder` holds it already, or its holder's token is `replacing` (a holder the
        caller knows is dead). LeaseHeldError names the live holder otherwise."""
        ...

    def renew_lease(self, rollout_id: str, token: str, ttl: timedelta) -> Lease:
        """Push the expiry `ttl` past now; LeaseLostError if `token` no longer holds it."""
        ...

    def release_lease(self, rollout_id: str, token: str) -> None:
        """Give the lease up (only if `token` still holds it)."""
        ...

    def lease(self, rollout_id: str) -> Lease | None: ...

    def close(self) -> None: ...

    def __enter__(self) -> Ledger: ...

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None: ...


def open_ledger(location: str | Path) -> Ledger:
    """The ledger at `location`, created on first use: a path or `sqlite:///path` (SQLite; note
    `sqlite:////abs/path` for an absolute path), or `postgresql://user@host:port/database`."""
    text = str(location)
    scheme = text.partition("://")[0].lower() if "://" in text else ""
    if scheme in {"postgresql", "postgres"}:
        from orchestrator.store.ledger_postgres import PostgresLedger

        return PostgresLedger(text)
    if scheme in {"", "sqlite"}:
        from orchestrator.store.ledger_sqlite import SqliteLedger

        if scheme and not text.startswith("sqlite:///"):
            raise LedgerError(
                f"unsupported ledger location '{text}'",
                hint="write sqlite:///relative/path or sqlite:////absolute/path, or just the path",
            )
        path = Path(text.removeprefix("sqlite:///")) if scheme else Path(location)
        return SqliteLedger(path.expanduser())
    raise LedgerError(
        f"unsupported ledger location '{text}'",
        hint="give a file path (SQLite) or a postgresql://user@host:port/database URL",
    )


# --- shared by the backends: clock, ids, rows <-> models -------------------------------------


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_rollout_id(now: datetime) -> str:
    """Sortable by start time: `20261127T031840Z-3fa2c1`."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def unknown_rollout(rollout_id: str, where: str) -> UnknownRolloutError:
    return UnknownRolloutError(
        f"no rollout '{rollout_id}' in the ledger {where}",
        hint="rollout ids look like 20261127T031840Z-3fa2c1; list recent rollouts to find one",
    )


def check_schema_version(found: int | None, where: str) -> None:
    """Refuse a ledger without a version, or of a version newer than this code knows."""
    if found is None:
        raise LedgerSchemaError(
            f"the ledger {where} has no schema version (damaged?)",
            hint="move it away to start a new ledger, or restore it from a backup",
        )
    if found > SCHEMA_VERSION:
        raise LedgerSchemaError(
            f"the ledger {where} has schema version {found}; "
            f"this patchring knows versions up to {SCHEMA_VERSION}",
            hint="upgrade patchring to the version that wrote it, or use another ledger location",
        )


def updated_rollout(
    current: Rollout,
    changes: Mapping[str, object],
    now: datetime,
    expect: Collection[str] | None = None,
) -> Rollout:
    """`current` with `changes` applied and validated, and a new `updated_at`; RolloutChangedError
    when `expect` is given and the current status is not in it."""
    if expect is not None and current.status not in expect:
        raise RolloutChangedError(current)
    fields = {name: value for name, value in changes.items() if value is not UNSET}
    document = {**current.model_dump(), **fields, "updated_at": now}
    return Rollout.model_validate(document)


def rollout_row(rollout: Rollout) -> dict[str, object]:
    return {
        "id": rollout.id,
        "inventory_key": rollout.inventory_key,
        "commit_sha": rollout.commit,
        "status": rollout.status,
        "wait_reason": rollout.wait_reason,
        "wait_until": rollout.wait_until,
        "emergency_reason": rollout.emergency_reason,
        "change_ticket": rollout.change_ticket,
        "started_by": rollout.started_by,
        "started_at": rollout.started_at,
        "updated_at": rollout.updated_at,
        "ring_index": rollout.position.ring,
        "batch_index": rollout.position.batch,
        "plan": rollout.plan.model_dump_json(),
    }


def rollout_from_row(row: Mapping[str, Any]) -> Rollout:
    fields = {k: v for k, v in row.items() if k not in {"commit_sha", "ring_index", "batch_index"}}
    fields["commit"] = row["commit_sha"]
    fields["position"] = {"ring": row["ring_index"], "batch": row["batch_index"]}
    fields["plan"] = _json_value(row["plan"])
    return Rollout.model_validate(fields)


def gate_row(gate: GateRecord) -> dict[str, object]:
    return {**gate.model_dump(), "reasons": json.dumps(list(gate.reasons))}


def gate_from_row(row: Mapping[str, Any]) -> GateRecord:
    return GateRecord.model_validate({**row, "reasons": _json_value(row["reasons"])})


def deployment_row(deployment: RingDeployment) -> dict[str, object]:
    fields: dict[str, object] = deployment.model_dump()
    fields["commit_sha"] = fields.pop("commit")
    return fields


def deployment_from_row(row: Mapping[str, Any]) -> RingDeployment:
    fields = {k: v for k, v in row.items() if k != "commit_sha"}
    return RingDeployment.model_validate({**fields, "commit": row["commit_sha"]})


def lease_row(rollout_id: str, holder: LeaseHolder) -> dict[str, object]:
    """The columns of a lease row that come from the holder (the times come from the ledger)."""
    return {"rollout_id": rollout_id, **holder.model_dump()}


def lease_from_row(row: Mapping[str, Any], observed_at: datetime) -> Lease:
    holder = {name: row[name] for name in LeaseHolder.model_fields}
    times = {name: row[name] for name in ("taken_at", "heartbeat_at", "expires_at")}
    return Lease.model_validate(
        {"rollout_id": row["rollout_id"], "holder": holder, "observed_at": observed_at, **times}
    )


def _json_value(value: object) -> object:
    """A JSON column: text from SQLite, already decoded from PostgreSQL's jsonb."""
    return json.loads(value) if isinstance(value, str | bytes) else value


class RolloutEventLog:
    """The append-only part of a ledger (host outcomes, gate results, approvals), written the
    same way by every backend: a backend supplies `_insert_for` and `_select_for`."""

    def _insert_for(self, rollout_id: str, table: str, row: Mapping[str, object]) -> None:
        raise NotImplementedError

    def _select_for(self, rollout_id: str, table: str) -> Sequence[Mapping[str, Any]]:
        raise NotImplementedError

    def record_host(
        self,
        rollout_id: str,
        ring: str,
        batch: int,
        host: str,
        phase: HostPhase,
        status: str,
        detail: str = "",
    ) -> None:
        outcome = HostOutcome(
            rollout_id=rollout_id,
            ring=ring,
            batch=batch,
            host=host,
            phase=phase,
            status=status,
            detail=detail,
            at=utc_now(),
        )
        self._insert_for(rollout_id, "host_outcomes", outcome.model_dump())

    def host_outcomes(self, rollout_id: str) -> list[HostOutcome]:
        rows = self._select_for(rollout_id, "host_outcomes")
        return [HostOutcome.model_validate(row) for row in rows]

    def record_gate(
        self, rollout_id: str, ring: str, outcome: GateOutcome, reasons: Sequence[str]
    ) -> None:
        gate = GateRecord(
            rollout_id=rollout_id, ring=ring, outcome=outcome, reasons=tuple(reasons), at=utc_now()
        )
        self._insert_for(rollout_id, "gate_results", gate_row(gate))

    def gate_results(self, rollout_id: str) -> list[GateRecord]:
        return [gate_from_row(row) for row in self._select_for(rollout_id, "gate_results")]

    def approve(self, rollout_id: str, ring: str, who: str, reason: str) -> Approval:
        approval = Approval(rollout_id=rollout_id, ring=ring, who=who, reason=reason, at=utc_now())
        self._insert_for(rollout_id, "approvals", approval.model_dump())
        return approval

    def approvals(self, rollout_id: str) -> list[Approval]:
        return [Approval.model_validate(row) for row in self._select_for(rollout_id, "approvals")]
