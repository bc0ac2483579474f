"""The rollout conductor: drives a durable rollout from the ledger, one step at a time.

Every step is recorded before the next begins (batch started, host outcomes, batch completed,
gate, promotion), so a killed process loses nothing and the next `rollout` resumes at the exact
batch: a batch marked started but not completed is applied again (apply re-converges only what
is not done). A later ring never starts before an earlier ring's gate has passed. All decisions
come from `decisions`; this module only sequences them and does the I/O.

Exactly one process drives a rollout: `drive`, `resume` and `rollback` hold the rollout's lease in
the ledger (`lease`) for their whole run, and before each ring, batch and gate the driver renews
it and re-reads the rollout, so a pause, halt or abort written by anyone stops it there. A passed
gate and the ring's deployed commit are one ledger write; the Git ref follows, and a ref that lags
the ledger (a kill in between) is repaired when the next driver starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal, cast

from orchestrator.compiler.retire import removal_command, retired_files
from orchestrator.engine import apply_hosts, run_on_hosts
from orchestrator.errors import EXIT_HOSTS_FAILED, PatchringError
from orchestrator.gitops.commits import CommitSource, move_ring_ref, resolve_ref, ring_refs
from orchestrator.model.desired import DesiredState
from orchestrator.model.notification import RolloutEvent, RolloutEventKind
from orchestrator.model.outcome_detail import apply_detail, read_apply, verify_detail
from orchestrator.model.record import RingOutcome
from orchestrator.model.results import HostApplyStatus, HostResult, ResourceOutcome
from orchestrator.model.ring import HealthResult, RingSettings
from orchestrator.model.verification import CHECK_OK, CheckResult, HostVerification
from orchestrator.policy import Project, load_project
from orchestrator.report.masking import mask_result
from orchestrator.rollout.decisions import (
    HostFailureKind,
    budget_state,
    evaluate_gate,
    soak_until,
    split_batches,
)
from orchestrator.rollout.health import run_health_checks
from orchestrator.rollout.lease import (
    HEARTBEAT_EVERY,
    LEASE_TTL,
    Heartbeat,
    holder_is_dead,
    this_process,
)
from orchestrator.rollout.planner import ring_waves
from orchestrator.rollout.reboots import RestartDriver
from orchestrator.rollout.tickets import ChangeTicketError, check_change_ticket
from orchestrator.rollout.windows import next_window_start, window_open
from orchestrator.store.ledger import (
    ACTIVE_STATUSES,
    ActiveRolloutError,
    LeaseHolder,
    Ledger,
    LedgerError,
    NewRollout,
    PlannedRing,
    Position,
    Rollout,
    RolloutChangedError,
    RolloutPlan,
)
from orchestrator.verify import verify_hosts
from orchestrator.words import counted


def inventory_key(repo: Path, inventory: str) -> str:
    """Which fleet a rollout belongs to: one active rollout per repository and inventory."""
    return hashlib.sha256(f"{repo.resolve()}::{inventory}".encode()).hexdigest()[:16]


RingObservation = tuple[dict[str, HostVerification], dict[str, HealthResult]]
"""A ring's hosts verified, and its gate's health checks (`<check>@<host>` -> result)."""
State = Literal["completed", "waiting", "halted", "paused", "aborted", "rolled-back"]
DRIVING = ("running", "waiting")
"""The statuses a driver may move on from; any other was written by someone else, and wins."""


@dataclass
class Conductor:
    repo: Path
    inventory: str
    ledger: Ledger
    operator: str
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    sleep: Callable[[float], None] = time.sleep
    wait: bool = False
    emergency_reason: str | None = None
    stop_after: str | None = None
    note: Callable[[str], None] = lambda text: None
    mask: Callable[[str], str] = lambda text: text
    on_project: Callable[[Project], None] = lambda project: None
    """Called with each project version loaded (the caller learns its secrets before anything
    of it is shown or recorded)."""
    screen: Callable[[dict[str, DesiredState]], dict[str, HostResult]] = lambda fleet: {}
    """Hosts of a batch not to apply, with their (failed) results: `rollout --plan` refuses
    hosts that drifted since the saved plan."""
    change_ticket: str | None = None
    on_event: Callable[[RolloutEvent], None] = lambda event: None
    """Told each rollout event (notifications); it must not raise."""
    parallel: int | None = None
    """Hosts worked on at once (None: the inventory's `settings: parallel`)."""
    applied: list[HostResult] = field(default_factory=list)
    verified: list[HostVerification] = field(default_factory=list)
    lease_ttl: timedelta = LEASE_TTL
    heartbeat_every: timedelta = HEARTBEAT_EVERY
    hosts_touched: bool = False
    """Set before the first apply: from then on, a failure may leave hosts changed."""
    _holder: LeaseHolder | None = field(default=None, init=False, repr=False)
    _heartbeat: Heartbeat | None = field(default=None, init=False, repr=False)

    @property
    def inventory_key(self) -> str:
        return inventory_key(self.repo, self.inventory)

    # -- starting or continuing ------------------------------------------------------------

    def start_or_continue(self, ref: str | None) -> Rollout:
        active = self.ledger.active_rollout(self.inventory_key)
        if active is not None:
            if ref is not None and resolve_ref(self.repo, ref) != active.commit:
                raise ActiveRolloutError(active)
            if self.change_ticket not in {None, active.change_ticket}:
                raise ChangeTicketError(
                    f"rollout {active.id} runs under change ticket "
                    f"{active.change_ticket or '(none)'}, not {self.change_ticket}; "
                    "nothing was done"
                )
            return active
        sha = resolve_ref(self.repo, ref or "HEAD")
        project = self.project(sha)
        check_change_ticket(self.change_ticket, project.inventory.rings)
        hosts = {name: state.host.ring for name, state in project.desired.items()}
        rings = tuple(r.name for r in project.inventory.rings)
        plan = RolloutPlan(
            rings=tuple(
                PlannedRing(
                    name=ring,
                    batches=tuple(
                        split_batches(members, project.inventory.ring_settings(ring).batches)
                    ),
                )
                for ring, members in ring_waves(rings, hosts)
            )
        )
        try:
            started = self.ledger.start_rollout(
                NewRollout(
                    inventory_key=self.inventory_key,
                    commit=sha,
                    started_by=self.operator,
                    plan=plan,
                    emergency_reason=self.emergency_reason,
                    change_ticket=self.change_ticket,
                )
            )
            self._event(started, "started", None, f"{counted(len(hosts), 'host')}")
            return started
        except ActiveRolloutError:  # another process started it a moment ago: its lease decides
            raced = self.ledger.active_rollout(self.inventory_key)
            if raced is None or raced.commit != sha:
                raise
            return raced

    def _event(
        self, rollout: Rollout, kind: RolloutEventKind, ring: str | None, message: str
    ) -> None:
        self.on_event(
            RolloutEvent(
                kind=kind,
                rollout_id=rollout.id,
                commit=rollout.commit,
                ring=ring,
                message=self.mask(message),
                change_ticket=rollout.change_ticket,
                operator=rollout.started_by,
            )
        )

    def fan_out(self, project: Project) -> int:
        return self.parallel or project.inventory.settings.parallel

    def project(self, sha: str) -> Project:
        with CommitSource(self.repo, sha) as source:
            project = load_project(source, self.inventory)
        self.on_project(project)
        return project

    # -- the one driver --------------------------------------------------------------------

    @contextlib.contextmanager
    def leased(self, rollout: Rollout) -> Iterator[None]:
        """Be the rollout's one driver for the block: take its lease (LeaseHeldError while
        another live process holds it; taken over once it expired, or at once when its holder
        ran on this machine and is gone), keep it with a heartbeat, give it up at the end."""
        if self._holder is not None:  # re-entered: an automatic rollback inside `drive`
            yield
            return
        holder = this_process(self.operator)
        current = self.ledger.lease(rollout.id)
        dead = current is not None and current.live and holder_is_dead(current.holder)
        self.ledger.take_lease(
            rollout.id,
            holder,
            self.lease_ttl,
            replacing=current.holder.token if current is not None and dead else None,
        )
        if current is not None and (dead or not current.live):
            self.note(f"took over rollout {rollout.id} from {current.holder.display}, now gone")
        self._holder = holder
        try:
            with Heartbeat(
                self.ledger, rollout.id, holder.token, self.lease_ttl, self.heartbeat_every
            ) as heartbeat:
                self._heartbeat = heartbeat
                self._repair_ring_refs()
                yield
        finally:
            self._holder = self._heartbeat = None
            with contextlib.suppress(LedgerError):  # a lost ledger: the lease expires by itself
                self.ledger.release_lease(rollout.id, holder.token)

    def _checkpoint(self, rollout_id: str) -> Rollout:
        """Before each step: this process still holds the lease, and nobody paused, halted or
        aborted the rollout meanwhile (RolloutChangedError: their write wins, the driver stops)."""
        assert self._holder is not None, "a step outside `leased`"
        if self._heartbeat is not None and self._heartbeat.lost is not None:
            raise self._heartbeat.lost
        self.ledger.renew_lease(rollout_id, self._holder.token, self.lease_ttl)
        current = self.ledger.get_rollout(rollout_id)
        if current.status not in DRIVING:
            raise RolloutChangedError(current)
        return current

    def _repair_ring_refs(self) -> None:
        """Move every `refs/patchring/rings/<ring>` that lags the ledger's deployment of the
        ring (a process killed between the ledger write and the ref move)."""
        refs = ring_refs(self.repo)
        for ring, deployment in self.ledger.ring_deployments(self.inventory_key).items():
            if refs.get(ring) != deployment.commit:
                move_ring_ref(
                    self.repo,
                    ring,
                    deployment.commit,
                    f"patchring: repaired: rollout {deployment.rollout_id} passed ring {ring}",
                )
                self.note(f"ring {ring}: refs/patchring/rings/{ring} repaired to the ledger's")

    # -- driving ---------------------------------------------------------------------------

    def resume(self, rollout: Rollout) -> tuple[State, str, list[RingOutcome]]:
        """`patchring resume`: a paused (or halted) rollout runs again, driven by this process."""
        with self.leased(rollout):
            resumed = self.ledger.update_rollout(
                rollout.id, status="running", expect=ACTIVE_STATUSES
            )
            return self.drive(resumed)

    def drive(self, rollout: Rollout) -> tuple[State, str, list[RingOutcome]]:
        """Do everything allowed now; stop at completion, a wait, or a halt. The ring outcomes
        name every ring of the plan; rings after a stop are `not-started`."""
        outcomes: list[RingOutcome] = []
        with self.leased(rollout):
            rollout = self.ledger.get_rollout(rollout.id)  # as it is now that we drive it
            try:
                state, message, outcomes = self._drive(rollout, outcomes)
            except RolloutChangedError as changed:
                status = changed.rollout.status
                state = cast(State, status)
                message = (
                    f"it was {status} by another command; this process stopped before its next step"
                )
        seen = {o.ring for o in outcomes}
        for planned in rollout.plan.rings[rollout.position.ring :]:
            if planned.name not in seen:
                hosts = tuple(h for batch in planned.batches for h in batch)
                outcomes.append(RingOutcome(ring=planned.name, hosts=hosts, status="not-started"))
        return state, message, outcomes

    def _drive(
        self, rollout: Rollout, outcomes: list[RingOutcome]
    ) -> tuple[State, str, list[RingOutcome]]:
        if rollout.status == "halted":
            raise RolloutHaltedError(rollout, self._halt_reason(rollout))
        if rollout.status == "paused":
            message = "`patchring resume` continues it"
            return "paused", message, outcomes
        if rollout.status not in DRIVING:  # finished by another command before we took it
            raise RolloutChangedError(rollout)
        project = self.project(rollout.commit)
        emergency = rollout.emergency_reason or self.emergency_reason
        names = [r.name for r in rollout.plan.rings]
        if self.stop_after in names and names.index(self.stop_after) < rollout.position.ring:
            return "waiting", f"ring {self.stop_after} has already passed (--to)", outcomes
        for index in range(rollout.position.ring, len(rollout.plan.rings)):
            self._checkpoint(rollout.id)
            planned = rollout.plan.rings[index]
            settings = project.inventory.ring_settings(planned.name)
            hosts = tuple(h for batch in planned.batches for h in batch)
            waiting = self._window_wait(rollout, index, settings, emergency)
            if waiting:
                return "waiting", waiting, outcomes
            halted = self._run_batches(rollout, index, planned, settings, project)
            if isinstance(halted, str):  # a reboot waits for a maintenance window
                return "waiting", halted, outcomes
            if halted:
                outcomes.append(
                    RingOutcome(
                        ring=planned.name,
                        hosts=hosts,
                        status="failed",
                        failed_hosts=halted[1],
                        reason=halted[0],
                    )
                )
                message = f"ring {planned.name} halted: {halted[0]}"
                return (*self._after_halt(rollout, settings, message), outcomes)
            self._checkpoint(rollout.id)
            gate = self._gate(rollout, planned.name, hosts, settings, project)
            if gate is not None:
                state, message, failed = gate
                status = "failed" if state == "halted" else "not-started"
                outcomes.append(
                    RingOutcome(
                        ring=planned.name,
                        hosts=hosts,
                        status=status,
                        failed_hosts=failed,
                        reason=message,
                    )
                )
                if state == "halted":
                    return (*self._after_halt(rollout, settings, message), outcomes)
                return state, message, outcomes
            outcomes.append(RingOutcome(ring=planned.name, hosts=hosts, status="passed"))
            waiting = self._promotion_wait(rollout, index, planned.name, settings, emergency)
            if waiting:
                return "waiting", waiting, outcomes
            if planned.name == self.stop_after and index + 1 < len(rollout.plan.rings):
                self.ledger.update_rollout(
                    rollout.id,
                    position=Position(ring=index + 1, batch=0),
                    status="waiting",
                    wait_reason=None,
                    wait_until=None,
                    expect=DRIVING,
                )
                return (
                    "waiting",
                    (
                        f"stopped after ring {planned.name} (--to); run "
                        "`patchring rollout` to continue"
                    ),
                    outcomes,
                )
            rollout = self.ledger.update_rollout(
                rollout.id,
                position=Position(ring=index + 1, batch=0),
                status="running",
                wait_reason=None,
                wait_until=None,
                expect=DRIVING,
            )
        self.ledger.update_rollout(
            rollout.id, status="completed", wait_reason=None, wait_until=None, expect=DRIVING
        )
        self._event(rollout, "completed", None, "every ring passed its gate")
        return "completed", "every ring passed its gate", outcomes

    def _window_wait(
        self, rollout: Rollout, index: int, settings: RingSettings, emergency: str | None
    ) -> str | None:
        """Outside every maintenance window nothing is applied (unless an emergency)."""
        ring = rollout.plan.rings[index].name
        if self._gate_passed(rollout.id, ring):
            return None  # applied already; windows do not hold back a promotion
        while settings.windows and not window_open(settings.windows, self.now()):
            if emergency:
                self.note(f"ring {ring}: outside its maintenance windows; emergency: {emergency}")
                return None
            until = next_window_start(settings.windows, self.now())
            self.ledger.update_rollout(
                rollout.id,
                status="waiting",
                position=Position(ring=index, batch=0),
                wait_reason="maintenance-window",
                wait_until=until,
                expect=DRIVING,
            )
            if until is None:
                return f"ring {ring}: its maintenance windows never open"
            message = (
                f"ring {ring}: outside its maintenance windows; next opens {until:%F %H:%M %Z}"
            )
            if not self.wait:
                return message
            self.note(message + "; waiting (--wait)")
            self.sleep(max(1.0, (until - self.now()).total_seconds()))
        return None

    def _run_batches(
        self,
        rollout: Rollout,
        index: int,
        planned: PlannedRing,
        settings: RingSettings,
        project: Project,
    ) -> tuple[str, tuple[str, ...]] | str | None:
        """Apply, reboot or restart (`reboots`) and verify each batch not yet completed;
        (reason, hosts) when the budget breaks; a message when a reboot waits for a window."""
        ring = planned.name
        done = self.ledger.completed_batches(rollout.id)
        ring_hosts = [h for batch in planned.batches for h in batch]
        if not any((ring, b) in done for b in range(len(planned.batches))):
            self._record_baseline(rollout, ring, ring_hosts, project, settings)
        for b, batch in enumerate(planned.batches):
            if (ring, b) in done:
                continue
            self._checkpoint(rollout.id)
            self.ledger.update_rollout(
                rollout.id,
                status="running",
                position=Position(ring=index, batch=b),
                wait_reason=None,
                wait_until=None,
                expect=DRIVING,
            )
            self.ledger.mark_batch(rollout.id, ring, b, "started")
            self.note(f"ring {ring}: batch {b + 1}/{len(planned.batches)}: {', '.join(batch)}")
            fleet = {h: project.desired[h] for h in batch}
            record = self._apply_recorder(rollout.id, ring, b, batch)
            refused = self.screen(fleet)
            for result in refused.values():
                record(result)
            fleet = {h: d for h, d in fleet.items() if h not in refused}
            self.hosts_touched = True
            applied = {
                **refused,
                **(
                    apply_hosts(fleet, on_result=record, parallel=self.fan_out(project))
                    if fleet
                    else {}
                ),
            }
            after = RestartDriver(
                self.ledger,
                rollout.id,
                ring,
                b,
                settings,
                self.now,
                self.sleep,
                note=self.note,
                wait=self.wait,
                emergency=rollout.emergency_reason or self.emergency_reason,
            ).after_apply(fleet, applied)
            if after.waiting:
                self.ledger.update_rollout(
                    rollout.id,
                    status="waiting",
                    wait_reason="reboot-window",
                    wait_until=next_window_start(settings.windows, self.now()),
                    expect=DRIVING,
                )
                return after.waiting
            back = {h: state for h, state in fleet.items() if h not in after.lost}
            verified = (
                verify_hosts(back, None, self.mask, parallel=self.fan_out(project)) if back else {}
            )
            self._record_verified(rollout.id, ring, {h: b for h in batch}, verified)
            self.applied += applied.values()
            self.verified += verified.values()
            self.ledger.mark_batch(rollout.id, ring, b, "completed")
            verdict = budget_state(
                len(ring_hosts), self._failures(rollout.id, ring), settings.failure_budget
            )
            if verdict.exceeded:
                self.ledger.record_gate(rollout.id, ring, "failed", [verdict.reason])
                self.ledger.update_rollout(rollout.id, status="halted", expect=DRIVING)
                return verdict.reason, tuple(verdict.failed_hosts)
        return None

    def _record_verified(
        self,
        rollout_id: str,
        ring: str,
        batch_of: dict[str, int],
        verified: dict[str, HostVerification],
    ) -> None:
        """Every check of every host, so the rollout's record can be built from the ledger."""
        for host, check in verified.items():
            self.ledger.record_host(
                rollout_id, ring, batch_of[host], host, "verify", check.status, verify_detail(check)
            )

    def _apply_recorder(
        self, rollout_id: str, ring: str, batch: int, hosts: Sequence[str]
    ) -> Callable[[HostResult], None]:
        """Record each host's attempt before it starts, and its outcome as soon as it is known.
        A host an earlier, killed attempt left `started` may have been changed by it (its
        commands run on after the kill): found unchanged now, it is recorded `changed`, so a
        rollback includes it."""
        latest = {
            o.host: o.status
            for o in self.ledger.host_outcomes(rollout_id)
            if o.ring == ring and o.phase == "apply"
        }
        interrupted = {h for h in hosts if latest.get(h) == "started"}
        for host in hosts:
            self.ledger.record_host(rollout_id, ring, batch, host, "apply", "started")

        def record(result: HostResult) -> None:
            if result.status == "unchanged" and result.host in interrupted:
                earlier = ResourceOutcome(
                    resource_id="interrupted-attempt",
                    policy="",
                    status="changed",
                    summary="changed by an earlier attempt that was interrupted",
                )
                result = result.model_copy(update={"status": "changed", "outcomes": (earlier,)})
            detail = apply_detail(mask_result(result, self.mask))
            self.ledger.record_host(
                rollout_id, ring, batch, result.host, "apply", result.status, detail
            )

        return record

    def _failures(self, rollout_id: str, ring: str) -> dict[str, HostFailureKind]:
        """Each host's failure kind from its latest recorded outcomes in this ring."""
        latest: dict[tuple[str, str], str] = {}
        for outcome in self.ledger.host_outcomes(rollout_id):
            if outcome.ring == ring and outcome.phase in {"apply", "verify", "reboot"}:
                latest[(outcome.host, outcome.phase)] = outcome.status
        kinds: dict[str, HostFailureKind] = {}
        for (host, phase), status in latest.items():
            if phase == "apply" and status == "unreachable":
                kinds[host] = "unreachable"
            elif phase == "apply" and status == "failed":
                kinds[host] = "apply-failed"
            elif phase == "reboot" and status == "timed-out":  # not back from its reboot
                kinds[host] = "unreachable"
            elif phase == "verify" and status in {"failed", "unreachable"}:
                kinds.setdefault(host, "verify-failed")
        return kinds

    def _record_baseline(
        self,
        rollout: Rollout,
        ring: str,
        hosts: list[str],
        project: Project,
        settings: RingSettings,
    ) -> None:
        """The ring's checks before the rollout touches it, for `no_new_failures`."""
        if not settings.gate.no_new_failures:
            return
        fleet = {h: project.desired[h] for h in hosts}
        before = verify_hosts(fleet, None, self.mask, parallel=self.fan_out(project))
        for host, check in before.items():
            passed = [r.check_id for r in check.results if r.status in CHECK_OK]
            self.ledger.record_host(
                rollout.id, ring, 0, host, "verify", "baseline", json.dumps(passed)
            )

    def _baseline(self, rollout_id: str, ring: str) -> dict[str, HostVerification] | None:
        found = {
            o.host: HostVerification(
                host=o.host,
                status="passed",
                results=tuple(
                    CheckResult(check_id=c, title=c, status="passed", expected="", actual="")
                    for c in json.loads(o.detail or "[]")
                ),
            )
            for o in self.ledger.host_outcomes(rollout_id)
            if o.ring == ring and o.phase == "verify" and o.status == "baseline"
        }
        return found or None

    def _halt_reason(self, rollout: Rollout) -> str:
        failed = [g for g in self.ledger.gate_results(rollout.id) if g.outcome == "failed"]
        if not failed:
            return "halted"
        return "; ".join(failed[-1].reasons) or "its gate failed"

    def _checkpoint_rollback(self, rollout_id: str) -> None:
        """Before each ring's rollback: still the driver, and the rollout still active."""
        assert self._holder is not None, "a rollback outside `leased`"
        self.ledger.renew_lease(rollout_id, self._holder.token, self.lease_ttl)
        current = self.ledger.get_rollout(rollout_id)
        if not current.active:
            raise RolloutChangedError(current)

    def _gate_passed(self, rollout_id: str, ring: str) -> datetime | None:
        passed = [
            g.at
            for g in self.ledger.gate_results(rollout_id)
            if g.ring == ring and g.outcome == "passed"
        ]
        return passed[-1] if passed else None

    def _gate(
        self,
        rollout: Rollout,
        ring: str,
        hosts: tuple[str, ...],
        settings: RingSettings,
        project: Project,
        observed: RingObservation | None = None,
    ) -> tuple[State, str, tuple[str, ...]] | None:
        """None when the ring's gate has passed (now or before a restart). `observed`: the
        ring's checks and health checks, taken already (on Temporal, by each site's worker)."""
        if self._gate_passed(rollout.id, ring):
            return None
        fleet = {h: project.desired[h] for h in hosts}
        verified, health = observed or self.observe_ring(rollout, ring, hosts, settings, project)
        applied = self._applied_map(rollout.id, ring)
        result = evaluate_gate(
            settings.gate,
            hosts,
            applied,
            verified,
            self._baseline(rollout.id, ring) if settings.gate.no_new_failures else None,
            health,
            excepted={h for h, state in fleet.items() if state.exceptions},
        )
        self.verified += verified.values()
        reasons = [self.mask(r) for r in result.reasons]
        reason = "; ".join(reasons)
        if result.status == "passed":
            # the gate and the ring's deployed commit move together; the ref follows (and is
            # repaired by the next driver if a kill falls in between)
            self.ledger.record_gate_passed(
                rollout.id, self.inventory_key, ring, rollout.commit, reasons
            )
            move_ring_ref(
                self.repo,
                ring,
                rollout.commit,
                f"patchring: rollout {rollout.id} passed ring {ring}",
            )
            self.note(
                f"ring {ring}: gate passed; refs/patchring/rings/{ring} -> {rollout.commit[:12]}"
            )
            self._event(rollout, "ring-passed", ring, f"{counted(len(hosts), 'host')} passed")
            return None
        # Hosts the gate could not observe are not failed hosts: their checks did not run.
        failed = tuple(
            h
            for h in hosts
            if h not in result.unobserved
            and (
                verified[h].status != "passed"
                or applied.get(h) is None
                or applied[h].status in {"failed", "unreachable"}
                or any(f.host == h for f in result.health_failures)
            )
        )
        self.ledger.record_gate(rollout.id, ring, result.status, reasons)
        if result.status == "inconclusive":
            self.ledger.update_rollout(rollout.id, status="paused", expect=DRIVING)
            return "paused", f"ring {ring}: gate inconclusive ({reason}); paused", failed
        self.ledger.update_rollout(rollout.id, status="halted", expect=DRIVING)
        return "halted", f"ring {ring}: gate failed: {reason}", failed

    def observe_ring(
        self,
        rollout: Rollout,
        ring: str,
        hosts: Sequence[str],
        settings: RingSettings,
        project: Project,
    ) -> RingObservation:
        """What the gate judges: these ring hosts verified as they are now (recorded), and the
        gate's health checks on them."""
        fleet = {h: project.desired[h] for h in hosts}
        verified = verify_hosts(fleet, None, self.mask, parallel=self.fan_out(project))
        batch_of = {
            h: b
            for planned in rollout.plan.rings
            if planned.name == ring
            for b, batch in enumerate(planned.batches)
            for h in batch
        }
        self._record_verified(rollout.id, ring, batch_of, verified)
        targets = {h: state.host for h, state in fleet.items()}
        return verified, run_health_checks(settings.gate.health_checks, targets, self.sleep)

    def _applied_map(self, rollout_id: str, ring: str) -> dict[str, HostResult]:
        latest: dict[str, str] = {}
        for o in self.ledger.host_outcomes(rollout_id):
            if o.ring == ring and o.phase == "apply":
                latest[o.host] = o.status
        # an attempt still `started` never reported back: the gate must not count it as applied
        return {
            h: HostResult(host=h, status="failed", error="apply interrupted")
            if s == "started"
            else HostResult(host=h, status=cast(HostApplyStatus, s))
            for h, s in latest.items()
        }

    def _promotion_wait(
        self, rollout: Rollout, index: int, ring: str, settings: RingSettings, emergency: str | None
    ) -> str | None:
        """Approval and soak stand between a passed gate and the next ring."""
        last = index == len(rollout.plan.rings) - 1
        if last:
            return None
        position = Position(ring=index, batch=len(rollout.plan.rings[index].batches))
        if settings.approval and not any(a.ring == ring for a in self.ledger.approvals(rollout.id)):
            self.ledger.update_rollout(
                rollout.id,
                status="waiting",
                position=position,
                wait_reason="approval",
                wait_until=None,
                expect=DRIVING,
            )
            message = f"ring {ring}: waiting for approval (`patchring approve {ring} --reason ...`)"
            self._event(rollout, "waiting-for-approval", ring, message)
            return message
        passed_at = self._gate_passed(rollout.id, ring) or self.now()
        until = soak_until(passed_at, settings.soak)
        while self.now() < until:
            if emergency:
                self.note(f"ring {ring}: soak skipped; emergency: {emergency}")
                return None
            self.ledger.update_rollout(
                rollout.id,
                status="waiting",
                position=position,
                wait_reason="soak",
                wait_until=until,
                expect=DRIVING,
            )
            message = f"ring {ring}: soaking until {until:%Y-%m-%d %H:%M:%S %Z}"
            if not self.wait:
                return message
            self.note(message + "; waiting (--wait)")
            self.sleep(max(0.5, (until - self.now()).total_seconds()))
        return None

    # -- undoing ---------------------------------------------------------------------------

    def _after_halt(
        self, rollout: Rollout, settings: RingSettings, message: str
    ) -> tuple[State, str]:
        """A ring with `auto_rollback` undoes this rollout's changes as soon as it halts."""
        ring = rollout.plan.rings[min(rollout.position.ring, len(rollout.plan.rings) - 1)].name
        self._event(rollout, "halted", ring, message)
        if not settings.auto_rollback:
            return "halted", message
        self.note(f"{message}; rolling back automatically (auto_rollback)")
        try:
            state, rolled = self.rollback(self.ledger.get_rollout(rollout.id))
        except RollbackError as error:
            return "halted", f"{message}; automatic rollback impossible: {error}"
        return state, f"{message}; {rolled}"

    def rollback(self, rollout: Rollout) -> tuple[State, str]:
        """Re-apply, to the hosts this rollout changed, the last commit that passed their ring."""
        with self.leased(rollout):
            return self._rollback(rollout)

    def _rollback(self, rollout: Rollout) -> tuple[State, str]:
        deployments = self.ledger.ring_deployments(self.inventory_key)
        changed: dict[str, list[str]] = {}
        for o in self.ledger.host_outcomes(rollout.id):
            # "started" alone: an attempt killed before its outcome, which may have changed it
            changed_here = o.phase == "apply" and o.status in {"changed", "failed", "started"}
            if changed_here and not self._gate_passed(rollout.id, o.ring):
                changed.setdefault(o.ring, []).append(o.host)
        if not changed:
            return "rolled-back", "nothing to roll back: no host of an unfinished ring was changed"
        for ring, hosts in changed.items():
            previous = deployments.get(ring)
            if previous is None or previous.commit == rollout.commit:
                raise RollbackError(ring)
            project = self.project(previous.commit)
            fleet = {h: project.desired[h] for h in dict.fromkeys(hosts) if h in project.desired}
            self.note(
                f"ring {ring}: rolling back {counted(len(fleet), 'host')} to {previous.commit[:12]}"
            )
            self._checkpoint_rollback(rollout.id)
            self.hosts_touched = True
            unremoved = self._retire(rollout, fleet)
            applied = apply_hosts(fleet, parallel=self.fan_out(project))
            verified = verify_hosts(fleet, None, self.mask, parallel=self.fan_out(project))
            for host in fleet:
                status = (
                    "passed"
                    if applied[host].status in {"changed", "unchanged"}
                    and verified[host].status == "passed"
                    and host not in unremoved
                    else "failed"
                )
                self.ledger.record_host(
                    rollout.id,
                    ring,
                    0,
                    host,
                    "rollback",
                    status,
                    self.mask(unremoved.get(host) or applied[host].error or ""),
                )
            self.applied += applied.values()
            self.verified += verified.values()
        bad = [
            o
            for o in self.ledger.host_outcomes(rollout.id)
            if o.phase == "rollback" and o.status != "passed"
        ]
        self.ledger.update_rollout(
            rollout.id,
            status="rolled-back",
            wait_reason=None,
            wait_until=None,
            expect=ACTIVE_STATUSES,
        )
        if bad:
            message = f"rollback finished with {len(bad)} host(s) still failing"
        else:
            message = f"rolled back {counted(sum(map(len, changed.values())), 'host')}"
        self._event(rollout, "rolled-back", None, message)
        return ("halted" if bad else "rolled-back"), message

    def _retire(self, rollout: Rollout, fleet: dict[str, DesiredState]) -> dict[str, str]:
        """Remove from each host what only the rolled-back commit declared (its apt sources,
        files this rollout created: `compiler.retire`); host -> why that failed."""
        rolled = self.project(rollout.commit).desired
        created: dict[str, set[str]] = {}
        for o in self.ledger.host_outcomes(rollout.id):
            if o.phase == "apply" and o.status == "changed":
                result = read_apply(o.host, o.ring, "changed", o.detail)
                created.setdefault(o.host, set()).update(
                    r.resource_id for r in result.outcomes if "-> created" in r.summary
                )
        by_command: dict[str, list[str]] = {}
        for host, target in fleet.items():
            if host not in rolled:
                continue
            files = retired_files(rolled[host], target, created.get(host, set()))
            command = removal_command(files)
            if command is not None:
                self.note(f"{host}: removing {', '.join(f.path for f in files)}")
                by_command.setdefault(command, []).append(host)
        failed: dict[str, str] = {}
        for command, hosts in by_command.items():
            targets = [fleet[h].host for h in hosts]
            timeout = min(t.command_timeout for t in targets)
            for host, (ok, output) in run_on_hosts(targets, command, timeout).items():
                if not ok:
                    failed[host] = f"could not remove what the rolled-back commit added: {output}"
        return failed


class RolloutHaltedError(PatchringError):
    """`rollout` on a halted rollout: nothing is done, and the way out is named. Exit code 3,
    as for the halt itself."""

    exit_code = EXIT_HOSTS_FAILED

    def __init__(self, rollout: Rollout, reason: str) -> None:
        ring = (
            rollout.plan.rings[rollout.position.ring].name
            if rollout.position.ring < len(rollout.plan.rings)
            else "?"
        )
        super().__init__(
            f"rollout {rollout.id} is halted at ring {ring}: {reason}; nothing was done",
            hint=f"`patchring rollback` re-applies to the hosts it changed the last commit that "
            f"passed ring {ring}; `patchring abort` ends it and leaves the hosts as they are; "
            "after either, `patchring rollout` starts a new rollout",
        )


class RollbackError(ValueError):
    def __init__(self, ring: str) -> None:
        super().__init__(
            f"ring {ring} has no earlier commit that passed it; nothing to roll back to"
        )
        self.ring = ring
