"""Which hosts a command acts on: all, one ring, or named hosts, always in inventory order.

Pure; imports only the package's model, errors and `policy.validation`. Unknown names raise
`UnknownHostError` with a did-you-mean, since a wrong name on the command line is almost always
a typo.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.errors import UnknownHostError
from orchestrator.model.inventory import Inventory
from orchestrator.policy.validation import suggest


def select_hosts(
    inventory: Inventory,
    ring: str | None = None,
    host: str | None = None,
    hosts: Sequence[str] = (),
) -> tuple[str, ...]:
    """Names of the selected hosts in inventory order: those of `ring`, those named by `host`
    and `hosts` (a repeated `--host`), or both filters when both are given."""
    if ring is not None and ring not in inventory.ring_names():
        rings = inventory.ring_names()
        listed = f" (rings: {', '.join(rings)})" if rings else " (no rings are defined)"
        hint = suggest(ring, rings) or listed
        raise UnknownHostError(f"unknown ring '{ring}'{hint}")
    wanted = dict.fromkeys((*hosts, *([host] if host is not None else [])))
    for name in wanted:
        if name not in inventory.hosts:
            raise UnknownHostError(f"unknown host '{name}'{suggest(name, inventory.hosts)}")
        actual = inventory.hosts[name].ring
        if ring is not None and actual != ring:
            where = f"it is in ring '{actual}'" if actual else "it is in no ring"
            raise UnknownHostError(f"host '{name}' is not in ring '{ring}' ({where})")
    chosen = tuple(
        name
        for name, entry in inventory.hosts.items()
        if (ring is None or entry.ring == ring) and (not wanted or name in wanted)
    )
    if not inventory.hosts:
        raise UnknownHostError(
            "the inventory has no hosts",
            hint="add hosts to a file under inventory/, or boot the example lab with "
            "`patchring lab up` (it writes inventory/lab.yml; `lab down` removes it)",
        )
    if not chosen:
        raise UnknownHostError(f"ring '{ring}' has no hosts")
    return chosen
