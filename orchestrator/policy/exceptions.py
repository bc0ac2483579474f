"""Exceptions as a project input: loaded with located errors, dated, and applied per host.

`collect_exceptions` reads `exceptions/**/*.yml` through the project source (so a rollout uses
the exceptions of the commit it rolls out). `dated_warnings` warns about entries that expire
within the inventory's `exceptions.warn_days`, and about expired ones, which no longer apply.
`apply_exceptions` gives every host the exceptions in force on it as of `today`: a hold pins
the held version in place of any policy pin and drops the advisories and lock pins that would
upgrade the package; accepted risks and waivers travel with the desired state to verify,
assess and the gate. Pure; imports the package's model, errors and `policy` YAML modules.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from orchestrator.errors import Diagnostic
from orchestrator.model.desired import DesiredState, Resource
from orchestrator.model.exceptions import (
    EXCEPTIONS_FOLDER,
    ActiveException,
    ExceptionEntry,
    ExceptionRules,
    ExceptionsDocument,
)
from orchestrator.model.inventory import Inventory
from orchestrator.model.policy import Package, Patch
from orchestrator.policy.projectsource import ProjectSource
from orchestrator.policy.resolve import selector_matches
from orchestrator.policy.validation import validate_located
from orchestrator.source import SourceLocation


@dataclass(frozen=True)
class LoadedException:
    """One valid entry with where it is written."""

    entry: ExceptionEntry
    file: str
    location: SourceLocation
    """Where the entry starts (its `- id:` line)."""
    field_locations: Mapping[str, SourceLocation]

    def active(self) -> ActiveException:
        entry = self.entry
        return ActiveException(
            id=entry.id,
            kind=entry.kind,
            owner=entry.owner,
            reason=entry.reason,
            approved_by=entry.approved_by,
            expires=entry.expires,
            ticket=entry.ticket,
            hold=entry.hold,
            accept=entry.accept,
            waive=entry.waive,
            location=self.location,
        )


def collect_exceptions(
    source: ProjectSource, folder: str = EXCEPTIONS_FOLDER
) -> tuple[tuple[LoadedException, ...], list[Diagnostic]]:
    """Every valid exception of every file, in file order, and every problem found."""
    # Imported here: the loader imports this package's modules that import resolve.
    from orchestrator.policy.loader import read_located

    loaded: list[LoadedException] = []
    problems: list[Diagnostic] = []
    first: dict[str, LoadedException] = {}
    for path in source.list_files(folder):
        located, found = read_located(source, path, "exceptions")
        problems += found
        if located is None:
            continue
        document, found = validate_located(ExceptionsDocument, located)
        problems += found
        if document is None:
            continue
        for index, entry in enumerate(document.exceptions):
            at = ("exceptions", index)
            fields = {
                name: located.value_location((*at, name))
                for name in ("id", "approved_by", "expires", "select")
            }
            item = LoadedException(entry, path, located.value_location(at), fields)
            earlier = first.setdefault(entry.id, item)
            if earlier is not item:
                problems.append(
                    Diagnostic(
                        fields["id"],
                        f"duplicate exception id '{entry.id}' (first used at {earlier.location})",
                    )
                )
                continue
            loaded.append(item)
    return tuple(loaded), problems


def unknown_targets(
    exceptions: Sequence[LoadedException], inventory: Inventory
) -> list[Diagnostic]:
    """Selectors naming a group, ring or host the inventory does not know (typos)."""
    known = {
        "groups": set(inventory.group_names()),
        "rings": set(inventory.ring_names()),
        "hosts": set(inventory.hosts),
    }
    found: list[Diagnostic] = []
    for item in exceptions:
        for field, names in known.items():
            for name in getattr(item.entry.select, field):
                if name not in names:
                    what = field.rstrip("s")
                    found.append(
                        Diagnostic(
                            item.field_locations["select"],
                            f"exception '{item.entry.id}' selects unknown {what} '{name}'",
                        )
                    )
    return found


def dated_warnings(
    exceptions: Sequence[LoadedException], rules: ExceptionRules, today: dt.date
) -> list[Diagnostic]:
    """Warnings for exceptions expiring within `rules.warn_days`, and for expired ones."""
    found: list[Diagnostic] = []
    for item in exceptions:
        entry, where = item.entry, item.field_locations["expires"]
        left = (entry.expires - today).days
        if left < 0:
            message = (
                f"exception '{entry.id}' expired on {entry.expires} and no longer applies: "
                f"what it {_verb(entry)} counts again (owner {entry.owner})"
            )
        elif left <= rules.warn_days:
            when = "today" if left == 0 else f"in {left} day{'s' if left != 1 else ''}"
            message = (
                f"exception '{entry.id}' expires {when} ({entry.expires}); "
                f"owner {entry.owner}: renew it or let it lapse"
            )
        else:
            continue
        found.append(Diagnostic(where, message, severity="warning"))
    return found


def _verb(entry: ExceptionEntry) -> str:
    return {"hold": "held back", "accept": "accepted", "waive": "waived"}[entry.kind]


def in_force(item: LoadedException, today: dt.date) -> bool:
    """An exception applies through its expiry day, inclusive."""
    return today <= item.entry.expires


def apply_exceptions(
    desired: Mapping[str, DesiredState],
    exceptions: Sequence[LoadedException],
    inventory: Inventory,
    today: dt.date,
) -> dict[str, DesiredState]:
    """Every host's desired state with the exceptions in force on it applied and attached."""
    live = [item for item in exceptions if in_force(item, today)]
    result: dict[str, DesiredState] = {}
    for name, state in desired.items():
        host = inventory.hosts[name]
        mine = [item for item in live if selector_matches(item.entry.select, host)]
        if not mine:
            result[name] = state
            continue
        resources = state.resources
        held: tuple[Resource, ...] = ()
        for item in mine:
            if item.entry.hold is not None:
                resources, dropped = _held(resources, item)
                held += dropped
        result[name] = state.model_copy(
            update={
                "resources": resources,
                "held": held,
                "exceptions": tuple(i.active() for i in mine),
            }
        )
    return result


def _held(
    resources: tuple[Resource, ...], item: LoadedException
) -> tuple[tuple[Resource, ...], tuple[Resource, ...]]:
    """(`resources` with the held package pinned at its held version, the advisory and lock
    pins left out because they would upgrade it)."""
    hold = item.entry.hold
    assert hold is not None
    kept: list[Resource] = []
    dropped: list[Resource] = []
    for resource in resources:
        spec = resource.spec
        if isinstance(spec, Patch) and spec.package == hold.package:
            dropped.append(resource)
            continue
        if isinstance(spec, Package) and spec.name == hold.package and spec.state != "absent":
            pinned = spec.model_copy(update={"version": hold.version, "state": "present"})
            where = {**resource.field_locations, "version": item.location}
            resource = resource.model_copy(update={"spec": pinned, "field_locations": where})
        kept.append(resource)
    return tuple(kept), tuple(dropped)
