"""What a change to the policies does to each host's desired state: base ref against head ref.

Pure: compares two resolved desired states of one host (no probe, no host contacted) and says,
per resource, what converging to the head would change compared with converging to the base:
package version transitions, unified diffs of the files a resource writes, and field changes
(`running: true -> false`) for everything else. Changes are `ResourceChange`s, so the plan's
grouping shows identical ones once with their host count. Imports no pyinfra, no gitpython.
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from debian.debian_support import version_compare

from orchestrator.drift.changes import Action, ResourceChange
from orchestrator.drift.expected import ExpectedFile, expected_files, text_of
from orchestrator.model.base import Frozen
from orchestrator.model.desired import DesiredState, Resource
from orchestrator.model.exceptions import ExceptionEntry
from orchestrator.model.policy import Package, Patch
from orchestrator.secrets import looks_secret

HostImpactStatus = Literal["added", "removed", "changed", "unchanged"]
# Fields that say where or in which order, not what: compared apart from what a host gets.
_QUIET_FIELDS = frozenset({"after"})


class Advisory(Frozen):
    """A `patches:` entry a host gains (fixed) or loses (re-opened) with the change."""

    advisory: str
    cves: tuple[str, ...] = ()
    package: str
    fixed: str


class HostImpact(Frozen):
    host: str
    ring: str | None = None
    base_ring: str | None = None
    status: HostImpactStatus
    changes: tuple[ResourceChange, ...] = ()
    fixed: tuple[Advisory, ...] = ()
    reopened: tuple[Advisory, ...] = ()

    @property
    def ring_moved(self) -> bool:
        return self.status == "changed" and self.ring != self.base_ring


def compare_fleets(
    base: Mapping[str, DesiredState], head: Mapping[str, DesiredState]
) -> dict[str, HostImpact]:
    """Every host of either ref, in head order then hosts only the base has."""
    names = list(head) + [name for name in base if name not in head]
    return {name: compare_host(name, base.get(name), head.get(name)) for name in names}


def compare_host(name: str, base: DesiredState | None, head: DesiredState | None) -> HostImpact:
    before = {r.id: r for r in base.resources} if base else {}
    after = {r.id: r for r in head.resources} if head else {}
    order = list(after) + [rid for rid in before if rid not in after]
    changes = [c for rid in order if (c := compare_resource(before.get(rid), after.get(rid)))]
    ring = head.host.ring if head else None
    base_ring = base.host.ring if base else None
    status: HostImpactStatus = (
        "added"
        if base is None
        else "removed"
        if head is None
        else "changed"
        if changes or ring != base_ring
        else "unchanged"
    )
    gained, lost = _advisories(after), _advisories(before)
    return HostImpact(
        host=name,
        ring=ring,
        base_ring=base_ring,
        status=status,
        changes=tuple(changes),
        fixed=tuple(a for key, a in gained.items() if key not in lost),
        reopened=tuple(a for key, a in lost.items() if key not in gained),
    )


def _advisories(resources: Mapping[str, Resource]) -> dict[tuple[str, str], Advisory]:
    found = {}
    for resource in resources.values():
        spec = resource.spec
        if isinstance(spec, Patch):
            found[(spec.advisory, spec.package)] = Advisory(
                advisory=spec.advisory, cves=spec.cves, package=spec.package, fixed=spec.fixed
            )
    return found


def compare_resource(base: Resource | None, head: Resource | None) -> ResourceChange | None:
    """What converging to `head` does that converging to `base` did not; None when alike."""
    if base is None and head is None:
        return None
    resource = head or base
    assert resource is not None
    if isinstance(resource.spec, Package):
        result = _package(base, head)
    elif head is None:
        result = (("unmanage",), "no longer managed (left on the host as it is)", "")
    else:
        result = _generic(base, head)
    if result is None:
        return None
    actions, summary, diff = result
    return ResourceChange(
        resource_id=resource.id,
        policy=resource.policy,
        actions=actions,
        summary=summary,
        diff=diff,
    )


_Result = tuple[tuple[Action, ...], str, str] | None


def package_target(spec: Package) -> str:
    """The version a package converges to, in words: `1.0-2`, `latest`, `absent`, `installed`."""
    if spec.state == "absent":
        return "absent"
    if spec.state == "latest":
        return "latest"
    return spec.version or "installed"


def _package(base: Resource | None, head: Resource | None) -> _Result:
    old = base.spec if base is not None else None
    new = head.spec if head is not None else None
    assert old is None or isinstance(old, Package)
    assert new is None or isinstance(new, Package)
    name = (new or old).name  # type: ignore[union-attr]
    if new is None:
        return (("unmanage",), f"{name}: no longer managed (left at {package_target(old)})", "")  # type: ignore[arg-type]
    to = package_target(new)
    if old is None:
        action: Action = "remove" if to == "absent" else "install"
        return ((action,), f"{name} (not managed) -> {to}", "")
    was = package_target(old)
    actions: list[Action] = []
    if was != to:
        actions.append(_transition(was, to))
    if new.hold != old.hold:
        actions.append("hold")
    if not actions:
        return _generic(base, head)  # type: ignore[arg-type]
    hold = f" (hold: {_word(old.hold)} -> {_word(new.hold)})" if new.hold != old.hold else ""
    return (tuple(actions), f"{name} {was} -> {to}{hold}", "")


def _transition(was: str, to: str) -> Action:
    if to == "absent":
        return "remove"
    if was == "absent":
        return "install"
    words = {"latest", "installed"}
    if was in words or to in words:
        return "update"
    return "upgrade" if version_compare(was, to) < 0 else "downgrade"


def _generic(base: Resource | None, head: Resource) -> _Result:
    """A resource new at head, or one whose fields or written files differ."""
    if base is None:
        diff = _files_diff((), expected_files(head))
        return (("create",), _added_summary(head), diff)
    notes = _field_changes(base.spec.model_dump(), head.spec.model_dump())
    diff = _files_diff(expected_files(base), expected_files(head))
    if base.kind in ("block", "file") and base.content != head.content and not diff:
        diff = _text_diff(head.key, base.content or "", head.content or "")
    if not notes and not diff:
        return None
    summary = "; ".join(notes + ([_diff_size(diff)] if diff else []))
    return (("update",), summary, diff)


def _added_summary(resource: Resource) -> str:
    fields = resource.spec.model_dump(exclude_defaults=True)
    shown = [
        f"{key}: {_shown(key, value)}"
        for key, value in fields.items()
        if key not in _QUIET_FIELDS and key not in {"content", "template", "source"}
    ]
    return "newly managed" + (f" ({', '.join(shown)})" if shown else "")


def _field_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    notes = []
    for key in sorted(set(before) | set(after)):
        if key in {"content"}:  # its diff says it better
            continue
        old, new = before.get(key), after.get(key)
        if old != new:
            notes.append(f"{key}: {_shown(key, old)} -> {_shown(key, new)}")
    return notes


def _shown(key: str, value: Any) -> str:
    if looks_secret(key) and value is not None:
        return "(hidden)"
    if isinstance(value, bool):
        return _word(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return "-" if value is None else str(value)


def _word(flag: bool) -> str:
    return "true" if flag else "false"


def _files_diff(before: tuple[ExpectedFile, ...], after: tuple[ExpectedFile, ...]) -> str:
    old = {f.path: f for f in before}
    new = {f.path: f for f in after}
    parts = []
    for path in list(new) + [p for p in old if p not in new]:
        a, b = old.get(path), new.get(path)
        if a is not None and b is not None and a.content == b.content:
            continue
        parts.append(_bytes_diff(path, a.content if a else None, b.content if b else None))
    return "".join(parts)


def _bytes_diff(path: str, before: bytes | None, after: bytes | None) -> str:
    old = text_of(before) if before is not None else ""
    new = text_of(after) if after is not None else ""
    if old is None or new is None:  # binary: name it by its hash, as plans do
        return f"{path}: binary content {_sha(before)} -> {_sha(after)}\n"
    return _text_diff(path, old, new)


def _diff_size(diff: str) -> str:
    lines = [line for line in diff.splitlines() if not line.startswith(("---", "+++"))]
    added = sum(line.startswith("+") for line in lines)
    removed = sum(line.startswith("-") for line in lines)
    return f"content: +{added} -{removed} lines" if added or removed else "content changes"


def _sha(data: bytes | None) -> str:
    return "(none)" if data is None else "sha256:" + hashlib.sha256(data).hexdigest()[:16]


def _text_diff(path: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"{path} (base)",
        tofile=f"{path} (head)",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


ExceptionChangeKind = Literal["added", "removed", "extended", "shortened", "changed"]


class ExceptionChange(Frozen):
    """An exception (exceptions/*.yml) the change adds, removes, extends or otherwise edits."""

    id: str
    change: ExceptionChangeKind
    kind: str
    what: str
    owner: str
    expires: str
    was_expires: str | None = None
    hosts: tuple[str, ...] = ()
    """The hosts it applies to (at the head; at the base for a removed one)."""


def compare_exceptions(
    base: Sequence[ExceptionEntry],
    head: Sequence[ExceptionEntry],
    base_fleet: Mapping[str, DesiredState],
    head_fleet: Mapping[str, DesiredState],
) -> tuple[ExceptionChange, ...]:
    """The exceptions added, removed or edited between the two refs, in head order."""
    before = {entry.id: entry for entry in base}
    after = {entry.id: entry for entry in head}
    found: list[ExceptionChange] = []
    for entry in head:
        was = before.get(entry.id)
        if was == entry:
            continue
        change: ExceptionChangeKind = "added"
        if was is not None:
            change = (
                "extended"
                if entry.expires > was.expires
                else "shortened"
                if entry.expires < was.expires
                else "changed"
            )
        found.append(_exception_change(entry, change, head_fleet, was))
    found += [
        _exception_change(entry, "removed", base_fleet) for entry in base if entry.id not in after
    ]
    return tuple(found)


def _exception_change(
    entry: ExceptionEntry,
    change: ExceptionChangeKind,
    fleet: Mapping[str, DesiredState],
    was: ExceptionEntry | None = None,
) -> ExceptionChange:
    return ExceptionChange(
        id=entry.id,
        change=change,
        kind=entry.kind,
        what=entry.what,
        owner=entry.owner,
        expires=str(entry.expires),
        was_expires=str(was.expires) if was is not None else None,
        hosts=tuple(
            name for name, state in fleet.items() if any(x.id == entry.id for x in state.exceptions)
        ),
    )
