"""The one entry point the CLI calls: load, validate and resolve a whole project version.

Loads every policy, the inventory and the patch lock through one `ProjectSource`, resolves
the desired state of every host (locked versions included), and raises a single
`ValidationError` with every problem of every file and host, sorted, when any is an error
(warnings alone do not fail: they are kept on the project). Resolution runs only when the
inventory is valid (its errors would cascade), with the valid parts of invalid policy files
(`policy.salvage`), so later stages still report their errors. The project's secret values are
found here too, and no diagnostic leaves with one in clear. Pure; never imports the CLI,
pyinfra or gitpython.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import Diagnostic, UserInputError, ValidationError
from orchestrator.model.desired import DesiredState
from orchestrator.model.inventory import Inventory
from orchestrator.policy.exceptions import (
    LoadedException,
    apply_exceptions,
    collect_exceptions,
    dated_warnings,
    unknown_targets,
)
from orchestrator.policy.forked import in_workers, workers_for
from orchestrator.policy.loader import LoadedPolicy, collect_policies
from orchestrator.policy.locked import LoadedLock, read_lock
from orchestrator.policy.projectsource import ProjectSource
from orchestrator.policy.render import TemplateRenderer
from orchestrator.policy.resolve import FleetResolution, resolve_hosts
from orchestrator.policy.secretvars import project_secrets, unknown_secret_vars
from orchestrator.secrets import Masker

INVENTORY_DEFAULT = "inventory"
TODAY_VAR = "PATCHRING_TODAY"
"""Evaluate exceptions as of this date (YYYY-MM-DD) instead of today (UTC): rehearsing what
lapses next month, and tests."""


@dataclass(frozen=True)
class Project:
    """A validated project: policies in file order, the inventory, and each host's desired state
    (keys in inventory order; only the chosen hosts' when `load_project` was given a choice)."""

    policies: tuple[LoadedPolicy, ...]
    inventory: Inventory
    desired: Mapping[str, DesiredState]
    secrets: frozenset[str] = frozenset()
    """The text of every secret value (see `policy.secretvars`), for the one output masker."""
    lock: LoadedLock | None = None
    """The project's `patches.lock.yml`, when it has one (its pins are in `desired`)."""
    warnings: tuple[Diagnostic, ...] = ()
    """Located problems that do not fail validation (a variable shadowed by a built-in, a
    policy default the inventory always overrides), sorted; `validate` shows them."""
    exceptions: tuple[LoadedException, ...] = ()
    """Every exception of `exceptions/`, expired ones included (reports list them)."""
    today: dt.date | None = None
    """The date exceptions were evaluated as of."""
    resource_counts: Mapping[str, int] | None = None
    """Loaded with `counts_only`: each host's number of resources, instead of `desired`
    (which is then empty)."""


HostChoice = Callable[[Inventory], Collection[str]]
"""Given the loaded inventory, the names of the hosts a command needs resolved."""


def load_project(
    source: ProjectSource,
    inventory: str = INVENTORY_DEFAULT,
    today: dt.date | None = None,
    hosts: HostChoice | None = None,
    counts_only: bool = False,
) -> Project:
    """Load and resolve everything; raises one ValidationError listing every problem found.
    `inventory` is a file or folder, absolute or relative to the project root. Exceptions are
    applied as of `today` (default: $PATCHRING_TODAY, else today in UTC). With `hosts`, only
    the hosts it names are resolved (a command about a few hosts of a large fleet), so only
    their problems of resolution are found; every file is still loaded and checked whole.
    With `counts_only` (`validate`), every host is resolved, on every core of a large fleet
    (`policy.forked`), and only the problems and resource counts are kept."""
    # Imported here, not at the top: the inventory loader builds on this package's YAML modules,
    # so a module-level import would make `import orchestrator.inventory` circular.
    from orchestrator.inventory.loader import collect_inventory

    policies, problems = collect_policies(source)
    loaded_inventory, inventory_problems = collect_inventory(source, inventory)
    problems = problems + inventory_problems
    desired: dict[str, DesiredState] = {}
    counts: dict[str, int] | None = None
    lock, lock_problems = read_lock(source)
    problems += lock_problems
    exceptions, exception_problems = collect_exceptions(source)
    problems += exception_problems
    today = today or run_date(source)
    secrets = project_secrets(policies, loaded_inventory)
    if loaded_inventory is not None:
        problems += unknown_secret_vars(policies, loaded_inventory)
        chosen = hosts(loaded_inventory) if hosts is not None else None
        renderer = TemplateRenderer(source)
        if counts_only and chosen is None:
            fleet = FleetResolution.start(policies, loaded_inventory, renderer, lock)
            counts, resolve_problems = _resolved_counts(fleet, exceptions, today)
        else:
            desired, resolve_problems = resolve_hosts(
                policies, loaded_inventory, renderer, lock, chosen
            )
        problems += resolve_problems
        problems += unknown_targets(exceptions, loaded_inventory)
        problems += dated_warnings(exceptions, loaded_inventory.exception_rules, today)
        desired = apply_exceptions(desired, exceptions, loaded_inventory, today)
    found = _unique(problems, Masker(secrets))
    if any(problem.is_error for problem in found) or loaded_inventory is None:
        raise ValidationError(found)
    return Project(
        policies=policies,
        inventory=loaded_inventory,
        desired=desired,
        secrets=secrets,
        lock=lock,
        warnings=tuple(sorted(found)),
        exceptions=exceptions,
        today=today,
        resource_counts=counts,
    )


def _resolved_counts(
    fleet: FleetResolution, exceptions: Sequence[LoadedException], today: dt.date
) -> tuple[dict[str, int], list[Diagnostic]]:
    """Every host resolved (exceptions applied), in slices over the cores: the problems, as
    one process would report them (the first host's, in inventory order), and resource counts."""

    def count(names: Sequence[str]) -> tuple[list[tuple[Any, Diagnostic]], dict[str, int]]:
        desired = apply_exceptions(fleet.resolve(names), exceptions, fleet.inventory, today)
        found = list(fleet.reporter.found.items())
        return found, {name: len(state.resources) for name, state in desired.items()}

    names = list(fleet.inventory.hosts)
    counts: dict[str, int] = {}
    for found, part in in_workers(count, names, workers_for(len(names))):
        for key, diagnostic in found:
            fleet.reporter.found.setdefault(key, diagnostic)
        counts.update(part)
    return counts, fleet.reporter.diagnostics()


def run_date(source: ProjectSource) -> dt.date:
    """$PATCHRING_TODAY when set (checked), else today's date in UTC."""
    given = source.read_env(TODAY_VAR)
    if not given:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(given)
    except ValueError:
        raise UserInputError(
            f"{TODAY_VAR}={given!r} is not a date", hint="write it as YYYY-MM-DD, e.g. 2027-01-31"
        ) from None


def _unique(problems: list[Diagnostic], mask: Masker) -> list[Diagnostic]:
    """Each problem once, with any secret value it quotes masked."""
    masked = (Diagnostic(p.location, mask(p.message), p.severity) for p in problems)
    return list(dict.fromkeys(masked))
