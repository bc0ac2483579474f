"""Identical changes on many hosts, grouped so a plan shows each once with its host count."""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.drift.changes import ResourceChange
from orchestrator.model.base import Frozen


class ChangeGroup(Frozen):
    change: ResourceChange
    hosts: tuple[str, ...]


def group_changes(
    per_host: Iterable[tuple[str, Iterable[ResourceChange]]],
) -> tuple[ChangeGroup, ...]:
    """Group by (resource, what changes, diff); groups follow converge order, so the variants
    of one resource (a template rendered per host) stand together."""
    groups: dict[tuple[str, str, str], tuple[int, ResourceChange, list[str]]] = {}
    for host, changes in per_host:
        for position, change in enumerate(changes):
            key = (change.resource_id, change.summary, change.diff)
            groups.setdefault(key, (position, change, []))[2].append(host)
    ordered = sorted(groups.values(), key=lambda group: group[0])
    return tuple(ChangeGroup(change=c, hosts=tuple(h)) for _, c, h in ordered)


def host_list(hosts: tuple[str, ...], limit: int = 6) -> str:
    shown = ", ".join(hosts[:limit])
    return shown if len(hosts) <= limit else f"{shown}, +{len(hosts) - limit} more"
