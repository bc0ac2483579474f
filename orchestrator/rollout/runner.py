"""The rollout runner: apply a ring, verify it, judge it, and go on only if it passed.

Drives the engine and the verifier; every decision is taken by `planner`. Batches, budgets,
soak, approvals and resume (a later stage) slot in between `_apply_ring` and `judge_ring`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from orchestrator.engine import apply_hosts
from orchestrator.model.desired import DesiredState
from orchestrator.model.record import RingOutcome
from orchestrator.model.results import HostResult
from orchestrator.model.verification import HostVerification
from orchestrator.rollout.planner import judge_ring, not_started
from orchestrator.verify import verify_hosts

Waves = Sequence[tuple[str, tuple[str, ...]]]
ProgressFn = Callable[[str, str], None]


@dataclass(frozen=True)
class RolloutOutcome:
    rings: tuple[RingOutcome, ...]
    apply: tuple[HostResult, ...]
    verify: tuple[HostVerification, ...]

    @property
    def halted_at(self) -> RingOutcome | None:
        return next((r for r in self.rings if r.status == "failed"), None)


def run_rollout(
    fleet: Mapping[str, DesiredState],
    waves: Waves,
    on_ring: Callable[[str, str], None] | None = None,
    progress: ProgressFn | None = None,
    mask: Callable[[str], str] = lambda text: text,
) -> RolloutOutcome:
    rings: list[RingOutcome] = []
    applied_all: list[HostResult] = []
    verified_all: list[HostVerification] = []
    for index, (ring, hosts) in enumerate(waves):
        members = {name: fleet[name] for name in hosts}
        if on_ring:
            on_ring(ring, f"applying to {len(hosts)} host{'s' if len(hosts) != 1 else ''}")
        applied = apply_hosts(members, progress)
        if on_ring:
            on_ring(ring, "verifying")
        verified = verify_hosts(members, progress, mask)
        outcome = judge_ring(ring, hosts, applied, verified)
        rings.append(outcome)
        applied_all += applied.values()
        verified_all += verified.values()
        if on_ring:
            on_ring(ring, outcome.status + (f": {outcome.reason}" if outcome.reason else ""))
        if outcome.status != "passed":
            rings += not_started(waves[index + 1 :])
            break
    return RolloutOutcome(tuple(rings), tuple(applied_all), tuple(verified_all))
