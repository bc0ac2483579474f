"""Checking `after` on one host, once every policy's resources are merged.

An `after` entry must name a resource the host has (an unknown id, most often a typo, is an error
at the entry, with a did-you-mean), and the constraints must not form a cycle (an error at the
`after` entry of the cycle's first resource that names every resource in it). Two policies
declaring the same resource merge their `after` lists. Knows no resource kind. Pure; imports
the package's model and `policy.validation` only.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from orchestrator.errors import Diagnostic
from orchestrator.model.desired import Resource
from orchestrator.model.order import after_ids, find_cycles
from orchestrator.policy.validation import suggest
from orchestrator.policy.yamlsource import LocatedYaml, YamlPath
from orchestrator.source import SourceLocation


def after_key(index: int) -> str:
    """The `field_locations` key of a resource's `after` entry number `index`."""
    return f"after[{index}]"


def after_locations(located: LocatedYaml, path: YamlPath, raw: Any) -> dict[str, SourceLocation]:
    """Where each `after` entry of the resource at `path` is written."""
    entries = raw.get("after") if isinstance(raw, dict) else None
    count = len(entries) if isinstance(entries, list) else 0
    return {after_key(i): located.value_location((*path, "after", i)) for i in range(count)}


def _entry_location(resource: Resource, index: int) -> SourceLocation:
    locations = resource.field_locations
    return locations.get(after_key(index)) or locations.get("after") or resource.location


def check_order(resources: Sequence[Resource], invalid: Collection[str] = ()) -> list[Diagnostic]:
    """Unknown ids in `after`, and cycles, on one host (messages without the host name); ids of
    `invalid` entries (reported on their own) are not unknown."""
    ids = [r.id for r in resources]
    known = set(ids)
    found: list[Diagnostic] = []
    for resource in resources:
        for index, name in enumerate(after_ids(resource)):
            if name not in known and name not in invalid:
                message = f"after: no resource '{name}' on this host{suggest(name, ids)}"
                found.append(Diagnostic(_entry_location(resource, index), message))
    by_id = {r.id: r for r in resources}
    for path, others in find_cycles(resources):
        first = by_id[path[0]]
        where = _entry_location(first, after_ids(first).index(path[1]))
        also = f" (also caught in it: {', '.join(others)})" if others else ""
        message = f"after: ordering cycle: {' after '.join(path)}{also}"
        found.append(Diagnostic(where, message))
    return found


def merge_after(kept: Resource, duplicate: Resource) -> Resource:
    """`kept` with the `after` entries of an identical duplicate (from another policy) added,
    each keeping where it was written."""
    extra = [name for name in after_ids(duplicate) if name not in after_ids(kept)]
    if not extra:
        return kept
    spec = kept.spec.model_copy(update={"after": (*after_ids(kept), *extra)})
    locations = dict(kept.field_locations)
    start = len(after_ids(kept))
    for offset, name in enumerate(extra):
        index = after_ids(duplicate).index(name)
        locations[after_key(start + offset)] = _entry_location(duplicate, index)
    return kept.model_copy(update={"spec": spec, "field_locations": locations})
