"""Identical changes on many hosts, grouped so a plan shows each once with its host count; and
changes that differ only in some lines (a template rendered per host) shown once as one diff
with the lines that vary marked and their values listed."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from orchestrator.drift.changes import ResourceChange
from orchestrator.model.base import Frozen
from orchestrator.words import counted

# Values listed per varying line before "+N more".
SHOWN_VALUES = 4
_BOUNDARY = re.compile(r"[^A-Za-z0-9_.-]")


class ChangeGroup(Frozen):
    change: ResourceChange
    hosts: tuple[str, ...]


class VaryingLine(Frozen):
    """One line of a diff that is not the same on every host: its text before the part that
    varies, and each value with the hosts that have it (most hosts first)."""

    index: int
    prefix: str
    values: tuple[tuple[str, int], ...]


class ShapeGroup(Frozen):
    """Changes to one resource that differ only in some diff lines: the first host's diff, and
    what varies. `variants` is 1 for a change identical on every host of the group."""

    change: ResourceChange
    hosts: tuple[str, ...]
    variants: int = 1
    varying: tuple[VaryingLine, ...] = ()


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


def group_shapes(groups: Iterable[ChangeGroup]) -> tuple[ShapeGroup, ...]:
    """Merge the groups of one resource whose diffs have the same shape: the same summary and
    actions, the same number of lines, the same file headers and hunk ranges, and each line
    added, removed or kept alike; only the text of some lines differs."""
    merged: dict[tuple[object, ...], list[ChangeGroup]] = {}
    for group in groups:
        merged.setdefault(_shape(group.change), []).append(group)
    return tuple(_merge(members) for members in merged.values())


def _shape(change: ResourceChange) -> tuple[object, ...]:
    lines = change.diff.splitlines()
    if not lines:  # no diff: only identical summaries group, as before
        return (change.resource_id, change.summary, change.actions, change.diff)
    skeleton = tuple(line if line.startswith(("---", "+++", "@@")) else line[:1] for line in lines)
    return (change.resource_id, change.summary, change.actions, skeleton)


def _merge(members: list[ChangeGroup]) -> ShapeGroup:
    first = members[0]
    hosts = tuple(host for group in members for host in group.hosts)
    if len(members) == 1:
        return ShapeGroup(change=first.change, hosts=hosts)
    texts = [group.change.diff.splitlines() for group in members]
    varying = []
    for index in range(len(texts[0])):
        values: Counter[str] = Counter()
        for group, lines in zip(members, texts, strict=True):
            values[lines[index]] += len(group.hosts)
        if len(values) > 1:
            varying.append(_varying_line(index, values))
    return ShapeGroup(
        change=first.change, hosts=hosts, variants=len(members), varying=tuple(varying)
    )


def _varying_line(index: int, values: Counter[str]) -> VaryingLine:
    """Split the line's texts into the prefix they share (cut back to a word boundary, so
    `name = web-01`/`name = web-02` share `name = `) and the values."""
    texts = list(values)
    common = texts[0]
    for text in texts[1:]:
        while not text.startswith(common):
            common = common[:-1]
    cut = max((m.end() for m in _BOUNDARY.finditer(common)), default=0)
    prefix = common[:cut]
    ranked = sorted(values.items(), key=lambda item: (-item[1], item[0]))
    return VaryingLine(
        index=index,
        prefix=prefix,
        values=tuple((text[len(prefix) :], count) for text, count in ranked),
    )


def describe_values(line: VaryingLine) -> str:
    """`warning (2 hosts), info (2 hosts)`, or for a value per host `web-01, web-02, +8 more
    (a value per host)`."""
    per_host = all(count == 1 for _, count in line.values)
    shown = [
        value if per_host else f"{value} ({counted(count, 'host')})"
        for value, count in line.values[:SHOWN_VALUES]
    ]
    more = len(line.values) - SHOWN_VALUES
    text = ", ".join(shown) + (f", +{more} more" if more > 0 else "")
    return text + (" (a value per host)" if per_host and len(line.values) > 2 else "")


def host_list(hosts: tuple[str, ...], limit: int = 6) -> str:
    shown = ", ".join(hosts[:limit])
    return shown if len(hosts) <= limit else f"{shown}, +{len(hosts) - limit} more"
