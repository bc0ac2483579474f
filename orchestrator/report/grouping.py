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
    """Group by (resource, what changes, diff), keeping first-seen order."""
    groups: dict[tuple[str, str, str], tuple[ResourceChange, list[str]]] = {}
    for host, changes in per_host:
        for change in changes:
            key = (change.resource_id, change.summary, change.diff)
            groups.setdefault(key, (change, []))[1].append(host)
    return tuple(ChangeGroup(change=c, hosts=tuple(h)) for c, h in groups.values())


def host_list(hosts: tuple[str, ...], limit: int = 6) -> str:
    shown = ", ".join(hosts[:limit])
    return shown if len(hosts) <= limit else f"{shown}, +{len(hosts) - limit} more"
