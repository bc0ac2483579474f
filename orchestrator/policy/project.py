"""The one entry point the CLI calls: load, validate and resolve a whole project version.

Loads every policy and the inventory through one `ProjectSource`, resolves the desired state of
every host, and raises a single `ValidationError` with every problem of every file and host,
sorted. Resolution runs only when the inventory is valid (its errors would cascade), and skips
policy files that failed to load. Pure; never imports the CLI, pyinfra or gitpython.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.errors import Diagnostic, ValidationError
from orchestrator.model.desired import DesiredState
from orchestrator.model.inventory import Inventory
from orchestrator.policy.loader import LoadedPolicy, collect_policies
from orchestrator.policy.projectsource import ProjectSource
from orchestrator.policy.render import TemplateRenderer
from orchestrator.policy.resolve import resolve_hosts

INVENTORY_DEFAULT = "inventory"


@dataclass(frozen=True)
class Project:
    """A validated project: policies in file order, the inventory, and each host's desired state
    (keys in inventory order)."""

    policies: tuple[LoadedPolicy, ...]
    inventory: Inventory
    desired: Mapping[str, DesiredState]


def load_project(source: ProjectSource, inventory: str = INVENTORY_DEFAULT) -> Project:
    """Load and resolve everything; raises one ValidationError listing every problem found.
    `inventory` is a file or folder, absolute or relative to the project root."""
    # Imported here, not at the top: the inventory loader builds on this package's YAML modules,
    # so a module-level import would make `import orchestrator.inventory` circular.
    from orchestrator.inventory.loader import collect_inventory

    policies, problems = collect_policies(source)
    loaded_inventory, inventory_problems = collect_inventory(source, inventory)
    problems = problems + inventory_problems
    desired: dict[str, DesiredState] = {}
    if loaded_inventory is not None:
        desired, resolve_problems = resolve_hosts(
            policies, loaded_inventory, TemplateRenderer(source)
        )
        problems += resolve_problems
    if problems or loaded_inventory is None:
        raise ValidationError(_unique(problems))
    return Project(policies=policies, inventory=loaded_inventory, desired=desired)


def _unique(problems: list[Diagnostic]) -> list[Diagnostic]:
    return list(dict.fromkeys(problems))
