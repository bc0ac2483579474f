"""A rollout's record built from its ledger: every ring, batch and invocation, not one process's
memory, so a killed and resumed rollout reports every host it touched.

Pure: the ledger's rows in (the rollout, its host outcomes in the order recorded, gate results,
approvals), the parts of a run record out. Each host shows its latest apply and its latest
verification (the gate's, when the ring reached its gate); a verification older than the
host's latest apply attempt is stale and left out; an apply `started` with no result after it
is shown as interrupted. Imports the ledger's models, `model` and the standard library.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from orchestrator.model.base import Frozen
from orchestrator.model.outcome_detail import read_apply, read_verify
from orchestrator.model.record import (
    ApprovalEntry,
    GateEntry,
    HostEvent,
    RestartEvent,
    RingOutcome,
    RingStatus,
    RolloutLog,
    RunStatus,
)
from orchestrator.model.results import HostApplyStatus, HostResult
from orchestrator.model.verification import HostVerification, HostVerifyStatus
from orchestrator.store.ledger import Approval, GateRecord, HostOutcome, PlannedRing, Rollout

APPLY_STATUSES: tuple[str, ...] = get_args(HostApplyStatus)
VERIFY_STATUSES: tuple[str, ...] = get_args(HostVerifyStatus)


class RolloutHistory(Frozen):
    """What a rollout's run record holds, as its ledger tells it."""

    apply: tuple[HostResult, ...]
    verify: tuple[HostVerification, ...]
    rings: tuple[RingOutcome, ...]
    log: RolloutLog


def rollout_history(
    rollout: Rollout,
    outcomes: Sequence[HostOutcome],
    gates: Sequence[GateRecord],
    approvals: Sequence[Approval],
) -> RolloutHistory:
    apply: list[HostResult] = []
    verify: list[HostVerification] = []
    rings: list[RingOutcome] = []
    for planned in rollout.plan.rings:
        ring_outcomes = [o for o in outcomes if o.ring == planned.name]
        for host in (h for batch in planned.batches for h in batch):
            mine = [o for o in ring_outcomes if o.host == host]
            applied = _latest_apply(mine)
            verified = _latest_verify(mine, after=applied[1] if applied else -1)
            if applied:
                apply.append(applied[0])
            if verified:
                verify.append(verified)
        ring_gates = [g for g in gates if g.ring == planned.name]
        rings.append(_ring_outcome(planned, ring_outcomes, ring_gates, apply, verify))
    log = RolloutLog(
        id=rollout.id,
        commit=rollout.commit,
        status=rollout.status,
        started_by=rollout.started_by,
        started_at=rollout.started_at,
        updated_at=rollout.updated_at,
        emergency_reason=rollout.emergency_reason,
        change_ticket=rollout.change_ticket,
        gates=tuple(
            GateEntry(ring=g.ring, outcome=g.outcome, reasons=g.reasons, at=g.at) for g in gates
        ),
        approvals=tuple(
            ApprovalEntry(ring=a.ring, who=a.who, reason=a.reason, at=a.at) for a in approvals
        ),
        events=tuple(
            HostEvent(
                ring=o.ring, batch=o.batch, host=o.host, phase=o.phase, status=o.status, at=o.at
            )
            for o in outcomes
        ),
        restarts=restart_events(outcomes),
    )
    return RolloutHistory(apply=tuple(apply), verify=tuple(verify), rings=tuple(rings), log=log)


def restart_events(outcomes: Sequence[HostOutcome]) -> tuple[RestartEvent, ...]:
    """Every reboot and restart step, in the order recorded, with when the ledger wrote it
    (a detail that is not an event, from an older writer, is skipped)."""
    events: list[RestartEvent] = []
    for o in outcomes:
        if o.phase not in {"reboot", "restart"}:
            continue
        try:
            event = RestartEvent.model_validate_json(o.detail)
        except ValueError:
            continue
        events.append(event.model_copy(update={"at": o.at}))
    return tuple(events)


def _latest_apply(mine: Sequence[HostOutcome]) -> tuple[HostResult, int] | None:
    """The host's latest apply attempt and its position; an attempt without a result (any
    status that is not a result, like `started`) is an interrupted apply."""
    found = [(i, o) for i, o in enumerate(mine) if o.phase == "apply"]
    if not found:
        return None
    index, last = found[-1]
    if last.status in APPLY_STATUSES:
        return read_apply(last.host, last.ring, last.status, last.detail), index  # type: ignore[arg-type]
    error = (
        f"apply {last.status} at {last.at:%Y-%m-%d %H:%M:%S} UTC and never finished: "
        "interrupted (the process was killed or lost the host); resume the rollout"
    )
    return HostResult(host=last.host, ring=last.ring, status="failed", error=error), index


def _latest_verify(mine: Sequence[HostOutcome], after: int) -> HostVerification | None:
    found = [
        (i, o)
        for i, o in enumerate(mine)
        if o.phase == "verify" and o.status in VERIFY_STATUSES and i > after
    ]
    if not found:
        return None
    last = found[-1][1]
    return read_verify(last.host, last.ring, last.status, last.detail)  # type: ignore[arg-type]


def _ring_outcome(
    planned: PlannedRing,
    ring_outcomes: Sequence[HostOutcome],
    ring_gates: Sequence[GateRecord],
    apply: Sequence[HostResult],
    verify: Sequence[HostVerification],
) -> RingOutcome:
    hosts = tuple(h for batch in planned.batches for h in batch)
    status: RingStatus
    if ring_gates:
        status = ring_gates[-1].outcome
    else:
        status = "in-progress" if ring_outcomes else "not-started"
    reason = "; ".join(ring_gates[-1].reasons) if ring_gates else ""
    rolled = [o for o in ring_outcomes if o.phase == "rollback"]
    if rolled:
        bad = sum(o.status != "passed" for o in rolled)
        note = f"rolled back {len(rolled)} host(s)" + (f", {bad} still failing" if bad else "")
        reason = f"{reason}; {note}" if reason else note
    members = set(hosts)
    failed = {r.host for r in apply if r.host in members and r.status == "failed"}
    failed |= {v.host for v in verify if v.host in members and v.status == "failed"}
    return RingOutcome(
        ring=planned.name,
        hosts=hosts,
        status=status,
        failed_hosts=tuple(h for h in hosts if h in failed) if status != "passed" else (),
        reason=reason,
    )


def run_status(rollout_status: str) -> RunStatus:
    """A run record's status for a rollout in this state: `running` with nobody driving it is
    an interrupted run (the rollout's own state is in the record's `rollout.status`)."""
    if rollout_status == "halted":
        return "halted"
    return "interrupted" if rollout_status == "running" else "succeeded"
