"""Policy defaults that can never take effect: a warning, not an error.

A policy's `vars:` are defaults under every inventory layer. When the inventory sets the same
variable on every host the policy selects, the default is never used, and editing it silently
does nothing; the warning names the default and one inventory value that overrides it. A policy
that selects no host is left alone (its defaults may serve hosts added later). Pure; imports the
package's model and `policy` modules only.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.errors import Diagnostic
from orchestrator.model.desired import VarValue
from orchestrator.model.inventory import InventoryHost
from orchestrator.policy.loader import LoadedPolicy


def overridden_defaults(
    policies: Sequence[LoadedPolicy],
    layers: dict[str, dict[str, VarValue]],
    selects: dict[str, list[InventoryHost]],
) -> list[Diagnostic]:
    """A warning at each policy default the inventory overrides on every host the policy
    selects. `layers` is each host's inventory variables, `selects` each policy's hosts."""
    found: list[Diagnostic] = []
    for policy in policies:
        hosts = selects.get(policy.name, [])
        if not hosts:
            continue
        for name in policy.document.vars:
            if not all(name in layers[host.name] for host in hosts):
                continue
            first = hosts[0].name
            where = policy.yaml.key_location(("vars", name))
            message = (
                f"default of variable '{name}' is never used: the inventory sets it on every "
                f"host this policy selects (e.g. at {layers[first][name].location} for host "
                f"{first}); change it there, or remove this default"
            )
            found.append(Diagnostic(where, message, "warning"))
    return found
