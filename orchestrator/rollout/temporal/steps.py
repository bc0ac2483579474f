"""The steps of a rollout on Temporal: each one a ledger transaction or one site's share of a
batch, done with the embedded conductor's own code.

Temporal activities (`activities`) call these plain functions. Each opens the ledger, builds a
`Conductor` and calls the conductor's recorder, gate, windows, promotion and budget code, so a
rollout on Temporal writes the same ledger entries (and so the same run records and reports) as
one on the embedded conductor, and takes every decision from the same `decisions` module. The
workflow holds the rollout's lease (`workflow_holder`), so an embedded `rollout` is refused
while it drives. Imports no
temporalio (the steps run, and are tested, without it).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import cast

from orchestrator.engine import apply_hosts
from orchestrator.errors import PatchringError
from orchestrator.model.outcome_detail import read_verify
from orchestrator.model.ring import HealthResult, RingSettings
from orchestrator.model.verification import HostVerifyStatus
from orchestrator.policy import Project
from orchestrator.rollout.conductor import DRIVING, Conductor, RolloutHaltedError
from orchestrator.rollout.decisions import budget_state
from orchestrator.rollout.reboots import RestartDriver
from orchestrator.rollout.temporal.messages import Begun, RingPlan, RolloutInput, Verdict
from orchestrator.secrets import Masker
from orchestrator.store.ledger import (
    LeaseHolder,
    Position,
    Rollout,
    RolloutChangedError,
    open_ledger,
)
from orchestrator.verify import verify_hosts

LEASE_TTL = timedelta(minutes=30)
"""How long the workflow's lease outlives its last step (or host): a workflow nobody runs any
more (its workers all gone) lets an embedded `rollout` take the rollout over after this."""
WAITING_LEASE_TTL = timedelta(days=7)
"""While the workflow waits (soak, approval, window), it still drives the rollout."""

FINAL_APPLY = frozenset({"changed", "unchanged", "failed", "unreachable"})
"""An apply outcome that ends a host's attempt; `started` alone means an attempt was cut off."""


class SiteMismatchError(PatchringError):
    """A worker was handed a host of another site: it must not reach it."""


class RebootWindowError(PatchringError):
    """A reboot or restart waits for a maintenance window (not yet driven on Temporal)."""


@dataclass
class _Masking:
    """The secrets of every project version loaded, masked in what the ledger keeps."""

    masker: Masker = field(default_factory=Masker)

    def learn(self, project: Project) -> None:
        self.masker = self.masker.extended(project.secrets)

    def __call__(self, text: str) -> str:
        return self.masker(text)


@contextlib.contextmanager
def conducting(job: RolloutInput) -> Iterator[Conductor]:
    """A conductor over the rollout's ledger, for one step."""
    masking = _Masking()
    with open_ledger(job.ledger) as ledger:
        yield Conductor(
            repo=Path(job.repo),
            inventory=job.inventory,
            ledger=ledger,
            operator=job.operator,
            mask=masking,
            on_project=masking.learn,
            emergency_reason=job.emergency_reason,
            change_ticket=job.change_ticket,
        )


def workflow_holder(job: RolloutInput, rollout_id: str) -> LeaseHolder:
    """The lease holder a rollout's workflow is, whichever worker runs its step: no process
    (no pid, no scope), so its lease is never taken over before it expires."""
    return LeaseHolder(
        token=f"temporal-{rollout_id}",
        operator=f"temporal:{job.operator}",
        hostname="temporal",
        pid=0,
    )


def _driving(
    conductor: Conductor, job: RolloutInput, rollout_id: str, ttl: timedelta = LEASE_TTL
) -> Rollout:
    """The rollout, if nobody paused, halted or aborted it from outside (RolloutChangedError)
    and the workflow still holds its lease (LeaseLostError), which is renewed for `ttl`."""
    rollout = conductor.ledger.get_rollout(rollout_id)
    if rollout.status not in DRIVING:
        raise RolloutChangedError(rollout)
    conductor.ledger.renew_lease(rollout_id, workflow_holder(job, rollout_id).token, ttl)
    return rollout


def begin(job: RolloutInput) -> Begun:
    """Start the rollout in the ledger (or continue the active one), with its batches by site."""
    with conducting(job) as conductor:
        rollout = conductor.start_or_continue(job.ref)
        # one driver: LeaseHeldError while a live embedded `rollout` drives it
        conductor.ledger.take_lease(rollout.id, workflow_holder(job, rollout.id), LEASE_TTL)
        inventory = conductor.project(rollout.commit).inventory
        rings = []
        for planned in rollout.plan.rings:
            batches = []
            for batch in planned.batches:
                sites: dict[str, list[str]] = {}
                for host in batch:
                    sites.setdefault(inventory.host_site(inventory.hosts[host]), []).append(host)
                batches.append(sites)
            settings = inventory.ring_settings(planned.name)
            rings.append(RingPlan(name=planned.name, batches=batches, approval=settings.approval))
        done = conductor.ledger.completed_batches(rollout.id)
        return Begun(
            rollout_id=rollout.id,
            commit=rollout.commit,
            status=rollout.status,
            ring=rollout.position.ring,
            rings=rings,
            completed=sorted(f"{ring}/{batch}" for ring, batch in done),
        )


def window(job: RolloutInput, rollout_id: str, index: int) -> Verdict:
    """Whether the ring may be applied now; if not, how long until its next window opens."""
    with conducting(job) as conductor:
        rollout = _driving(conductor, job, rollout_id)
        ring = rollout.plan.rings[index].name
        settings = conductor.project(rollout.commit).inventory.ring_settings(ring)
        emergency = rollout.emergency_reason or job.emergency_reason
        message = conductor._window_wait(rollout, index, settings, emergency)
        return _waiting(conductor, job, rollout_id, message)


def _waiting(
    conductor: Conductor, job: RolloutInput, rollout_id: str, message: str | None
) -> Verdict:
    if message is None:
        return Verdict(state="running")
    # the workflow keeps driving while it waits: its lease lasts the wait
    _driving(conductor, job, rollout_id, WAITING_LEASE_TTL)
    rollout = conductor.ledger.get_rollout(rollout_id)
    seconds = None
    if rollout.wait_until is not None:
        seconds = max(1.0, (rollout.wait_until - conductor.now()).total_seconds())
    return Verdict(
        state="waiting", message=message, wait_reason=rollout.wait_reason, wait_seconds=seconds
    )


def open_batch(job: RolloutInput, rollout_id: str, index: int, batch: int) -> None:
    """The ledger says where the rollout is and that the batch started (as the conductor)."""
    with conducting(job) as conductor:
        rollout = _driving(conductor, job, rollout_id)
        conductor.ledger.update_rollout(
            rollout_id,
            status="running",
            position=Position(ring=index, batch=batch),
            wait_reason=None,
            wait_until=None,
            expect=DRIVING,
        )
        conductor.ledger.mark_batch(rollout_id, rollout.plan.rings[index].name, batch, "started")


def apply_site_batch(
    job: RolloutInput,
    rollout_id: str,
    index: int,
    batch: int,
    site: str,
    hosts: list[str],
    on_host: Callable[[str], None] = lambda host: None,
) -> dict[str, int]:
    """Apply and verify one site's hosts of a batch, one host after another, recording each
        as the conductor does; counts of outcomes. Idempotent: a host whose apply the ledger already
        holds (an earlier attempt, killed after it) is skipped, so a retried attempt never applies
        a host twice nor out of order. The baseline of the site's ring hosts (`no_new_failures`) is
    taken here too, before the first of them is applied."""
    with conducting(job) as conductor:
        rollout = _driving(conductor, job, rollout_id)
        project = conductor.project(rollout.commit)
        inventory = project.inventory
        ring = rollout.plan.rings[index].name
        _check_site(project, site, hosts)
        settings = inventory.ring_settings(ring)
        outcomes = [o for o in conductor.ledger.host_outcomes(rollout_id) if o.ring == ring]
        if settings.gate.no_new_failures:  # before the site's first batch of the ring
            ring_hosts = [
                h
                for planned in rollout.plan.rings[index].batches
                for h in planned
                if inventory.host_site(inventory.hosts[h]) == site
            ]
            have = {o.host for o in outcomes if o.phase == "verify" and o.status == "baseline"}
            missing = [h for h in ring_hosts if h not in have]
            if missing and not any(o.phase == "apply" for o in outcomes if o.host in ring_hosts):
                conductor._record_baseline(rollout, ring, missing, project, settings)
        latest: dict[str, str] = {}
        for o in outcomes:  # the host's last apply, and whether a verify followed it
            if o.phase == "apply":
                latest[o.host] = o.status
            elif o.phase == "verify" and o.status != "baseline" and o.host in latest:
                latest[o.host] = "verified"
        counts: Counter[str] = Counter()
        for host in hosts:
            if latest.get(host) == "verified":
                counts["skipped"] += 1
                continue
            if latest.get(host) in FINAL_APPLY:  # applied before a kill, not yet verified
                counts.update(_verify_one(conductor, rollout.id, ring, batch, project, host))
            else:
                counts.update(_apply_one(conductor, rollout, ring, batch, settings, project, host))
            on_host(host)
            conductor.ledger.renew_lease(
                rollout_id, workflow_holder(job, rollout_id).token, LEASE_TTL
            )
        return dict(counts)


def _check_site(project: Project, site: str, hosts: list[str]) -> None:
    """A site's worker reaches its own site's hosts only."""
    inventory = project.inventory
    stranger = [h for h in hosts if inventory.host_site(inventory.hosts[h]) != site]
    if stranger:
        raise SiteMismatchError(f"hosts {', '.join(stranger)} are not of site {site}")


def _verify_one(
    conductor: Conductor, rollout_id: str, ring: str, batch: int, project: Project, host: str
) -> list[str]:
    verified = verify_hosts({host: project.desired[host]}, None, conductor.mask)
    conductor._record_verified(rollout_id, ring, {host: batch}, verified)
    return [f"verify-{v.status}" for v in verified.values()]


def _apply_one(
    conductor: Conductor,
    rollout: Rollout,
    ring: str,
    batch: int,
    settings: RingSettings,
    project: Project,
    host: str,
) -> list[str]:
    fleet = {host: project.desired[host]}
    record = conductor._apply_recorder(rollout.id, ring, batch, [host])
    applied = apply_hosts(fleet, on_result=record)
    after = RestartDriver(
        conductor.ledger,
        rollout.id,
        ring,
        batch,
        settings,
        conductor.now,
        note=conductor.note,
        emergency=rollout.emergency_reason or conductor.emergency_reason,
    ).after_apply(fleet, applied)
    if after.waiting:
        raise RebootWindowError(after.waiting)
    back = {h: state for h, state in fleet.items() if h not in after.lost}
    verified = verify_hosts(back, None, conductor.mask) if back else {}
    conductor._record_verified(rollout.id, ring, {host: batch}, verified)
    return [applied[host].status, *(f"verify-{v.status}" for v in verified.values())]


def close_batch(job: RolloutInput, rollout_id: str, index: int, batch: int) -> Verdict:
    """Every site is done with the batch: mark it completed and hold the ring to its budget."""
    with conducting(job) as conductor:
        rollout = _driving(conductor, job, rollout_id)
        planned = rollout.plan.rings[index]
        settings = conductor.project(rollout.commit).inventory.ring_settings(planned.name)
        conductor.ledger.mark_batch(rollout_id, planned.name, batch, "completed")
        ring_hosts = [h for b in planned.batches for h in b]
        verdict = budget_state(
            len(ring_hosts), conductor._failures(rollout_id, planned.name), settings.failure_budget
        )
        if not verdict.exceeded:
            return Verdict(state="running")
        conductor.ledger.record_gate(rollout_id, planned.name, "failed", [verdict.reason])
        conductor.ledger.update_rollout(rollout_id, status="halted", expect=DRIVING)
        message = f"ring {planned.name} halted: {verdict.reason}"
        return _after_halt(conductor, job, rollout_id, planned.name, message)


def _after_halt(
    conductor: Conductor, job: RolloutInput, rollout_id: str, ring: str, message: str
) -> Verdict:
    """The conductor's own halt: an event, and an automatic rollback where the ring asks (the
    rollback takes the lease itself: the workflow gives it up first, as it stops here)."""
    release(job, rollout_id)
    rollout = conductor.ledger.get_rollout(rollout_id)
    settings = conductor.project(rollout.commit).inventory.ring_settings(ring)
    state, said = conductor._after_halt(rollout, settings, message)
    return Verdict(state=state, message=said)


def observe_gate_site(
    job: RolloutInput, rollout_id: str, index: int, site: str, hosts: list[str]
) -> tuple[dict[str, int], list[str]]:
    """A site's ring hosts verified (recorded, as the conductor's gate records them) and the
    gate's health checks on them, run by the site's worker: counts, and health results."""
    with conducting(job) as conductor:
        rollout = _driving(conductor, job, rollout_id)
        project = conductor.project(rollout.commit)
        _check_site(project, site, hosts)
        ring = rollout.plan.rings[index].name
        if conductor._gate_passed(rollout_id, ring):
            return {"skipped": len(hosts)}, []
        settings = project.inventory.ring_settings(ring)
        verified, health = conductor.observe_ring(rollout, ring, hosts, settings, project)
        counts = Counter(f"verify-{v.status}" for v in verified.values())
        counts.update(f"health-{h.status}" for h in health.values())
        return dict(counts), [h.model_dump_json() for h in health.values()]


def gate(job: RolloutInput, rollout_id: str, index: int, health: list[str]) -> Verdict:
    """The ring's gate as the conductor takes it (`evaluate_gate`, the ring ref moved when it
    passes), on what the sites observed: the ring's latest checks in the ledger and `health`."""
    with conducting(job) as conductor:
        rollout = _driving(conductor, job, rollout_id)
        planned = rollout.plan.rings[index]
        project = conductor.project(rollout.commit)
        settings = project.inventory.ring_settings(planned.name)
        hosts = tuple(h for b in planned.batches for h in b)
        latest = {
            o.host: o
            for o in conductor.ledger.host_outcomes(rollout_id)
            if o.ring == planned.name and o.phase == "verify" and o.status != "baseline"
        }
        verified = {
            h: read_verify(h, planned.name, cast(HostVerifyStatus, o.status), o.detail)
            for h, o in latest.items()
        }
        results = (HealthResult.model_validate_json(text) for text in health)
        observed = (verified, {f"{r.name}@{r.host}": r for r in results})
        result = conductor._gate(rollout, planned.name, hosts, settings, project, observed)
        if result is None:
            return Verdict(state="running")
        state, message, _ = result
        if state == "halted":
            return _after_halt(conductor, job, rollout_id, planned.name, message)
        return Verdict(state=state, message=message)


def promotion(job: RolloutInput, rollout_id: str, index: int) -> Verdict:
    """Approval and soak between a passed gate and the next ring (the conductor's rules and
    `soak_until`); when nothing holds it back, the rollout moves to the next ring."""
    with conducting(job) as conductor:
        rollout = _driving(conductor, job, rollout_id)
        planned = rollout.plan.rings[index]
        settings = conductor.project(rollout.commit).inventory.ring_settings(planned.name)
        emergency = rollout.emergency_reason or job.emergency_reason
        message = conductor._promotion_wait(rollout, index, planned.name, settings, emergency)
        if message is not None:
            return _waiting(conductor, job, rollout_id, message)
        if index + 1 < len(rollout.plan.rings):
            conductor.ledger.update_rollout(
                rollout_id,
                position=Position(ring=index + 1, batch=0),
                status="running",
                wait_reason=None,
                wait_until=None,
                expect=DRIVING,
            )
        return Verdict(state="running")


def complete(job: RolloutInput, rollout_id: str) -> Verdict:
    with conducting(job) as conductor:
        rollout = _driving(conductor, job, rollout_id)
        conductor.ledger.update_rollout(
            rollout_id, status="completed", wait_reason=None, wait_until=None, expect=DRIVING
        )
        conductor._event(rollout, "completed", None, "every ring passed its gate")
        return Verdict(state="completed", message="every ring passed its gate")


def approve(job: RolloutInput, rollout_id: str, ring: str, who: str, reason: str) -> None:
    """An approval signal, kept in the ledger as `patchring approve` keeps it (once)."""
    with conducting(job) as conductor:
        if not any(a.ring == ring for a in conductor.ledger.approvals(rollout_id)):
            conductor.ledger.approve(rollout_id, ring, who, reason)


def set_status(job: RolloutInput, rollout_id: str, status: str) -> None:
    """A pause, resume or abort signal written to the ledger as the embedded commands write it."""
    with conducting(job) as conductor:
        rollout = conductor.ledger.get_rollout(rollout_id)
        if not rollout.active:
            return
        if status == "paused":
            conductor.ledger.update_rollout(rollout_id, status="paused")
        elif status == "running":
            conductor.ledger.update_rollout(rollout_id, status="running")
        elif status == "aborted":
            conductor.ledger.update_rollout(
                rollout_id, status="aborted", wait_reason=None, wait_until=None
            )
        else:
            raise ValueError(f"not a status a signal sets: {status!r}")


def release(job: RolloutInput, rollout_id: str) -> None:
    """The workflow ends: its lease is given up (`rollback`, a new rollout may take it)."""
    with open_ledger(job.ledger) as ledger:
        ledger.release_lease(rollout_id, workflow_holder(job, rollout_id).token)


def halted_reason(job: RolloutInput, rollout_id: str) -> str:
    """Why a rollout the workflow found halted stopped (the conductor's own words)."""
    with conducting(job) as conductor:
        rollout = conductor.ledger.get_rollout(rollout_id)
        return str(RolloutHaltedError(rollout, conductor._halt_reason(rollout)))
