"""Ring order for a rollout: which hosts each ring holds. Gates, budgets and windows are
decided in `decisions`.

No I/O, no hosts: results in, decisions out, so every rule is covered by table-driven tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orchestrator.errors import UserInputError

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
