"""Pure rollout decisions: which hosts each ring holds, and whether a ring may be left.

No I/O, no hosts: results in, decisions out, so every rule is covered by table-driven tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orchestrator.errors import UserInputError
from orchestrator.model.record import RingOutcome
from orchestrator.model.results import HostResult
from orchestrator.model.verification import HostVerification

UNASSIGNED = "(no ring)"


def ring_waves(
    rings: Sequence[str], host_rings: Mapping[str, str | None], to_ring: str | None = None
) -> list[tuple[str, tuple[str, ...]]]:
    """Rings in rollout order with their hosts (inventory order); hosts without a ring go last.
    With `to_ring`, the waves stop after that ring."""
    if to_ring is not None and to_ring not in rings:
        known = ", ".join(rings) or "(none defined)"
        raise UserInputError(f"unknown ring '{to_ring}' for --to (rings: {known})")
    waves = []
    for ring in rings:
        members = tuple(h for h, r in host_rings.items() if r == ring)
        if members:
            waves.append((ring, members))
        if ring == to_ring:
            return waves
    leftovers = tuple(h for h, r in host_rings.items() if r is None or r not in rings)
    if leftovers:
        waves.append((UNASSIGNED, leftovers))
    return waves


def judge_ring(
    ring: str,
    hosts: Sequence[str],
    applied: Mapping[str, HostResult],
    verified: Mapping[str, HostVerification],
) -> RingOutcome:
    """A ring passes only when every host applied cleanly and every check passed."""
    failed: list[str] = []
    reasons: list[str] = []
    for host in hosts:
        result = applied.get(host)
        check = verified.get(host)
        if result is None or result.status in {"failed", "unreachable"}:
            failed.append(host)
            status = result.status if result else "not applied"
            reasons.append(f"{host}: apply {status}")
        elif check is None or check.status != "passed":
            failed.append(host)
            bad = [r.check_id for r in (check.results if check else ()) if r.status != "passed"]
            detail = ", ".join(bad[:3]) + (f" (+{len(bad) - 3} more)" if len(bad) > 3 else "")
            reasons.append(
                f"{host}: verify {check.status if check else 'missing'}"
                + (f" ({detail})" if detail else "")
            )
    if failed:
        return RingOutcome(
            ring=ring,
            hosts=tuple(hosts),
            status="failed",
            failed_hosts=tuple(failed),
            reason="; ".join(reasons),
        )
    return RingOutcome(ring=ring, hosts=tuple(hosts), status="passed")


def not_started(waves: Sequence[tuple[str, tuple[str, ...]]]) -> list[RingOutcome]:
    return [RingOutcome(ring=r, hosts=h, status="not-started") for r, h in waves]
