"""Merging the resources of several policies on one host, and the conflicts that forbids.

Two resources with the same id (kind and key) must agree on every field that matters for their
kind; identical duplicates merge silently (the first one is kept, with the `after` entries of
both). A package pinned below the fixed version of a patch on it is a conflict too (Debian
version ordering, from python-debian).
Every conflict names both locations, and so does a host selected by two patch baselines.
Pure; imports the package's model, `policy` modules and python-debian only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from debian.debian_support import version_compare

from orchestrator.errors import Diagnostic
from orchestrator.model.desired import Resource, ResourceKind
from orchestrator.model.policy import Package, Patch
from orchestrator.policy.loader import LoadedPolicy
from orchestrator.policy.ordering import merge_after
from orchestrator.policy.validation import quote
from orchestrator.source import SourceLocation

COMPARED_FIELDS: dict[ResourceKind, tuple[str, ...]] = {
    "apt_repository": ("url", "suite", "components", "key"),
    "package": ("state", "version", "hold"),
    "patch": ("fixed",),
    "file": ("content", "owner", "group", "mode", "restart"),
    "directory": ("owner", "group", "mode"),
    "service": ("running", "enabled"),
    "sysctl": ("value", "file"),
    "group": ("present", "gid", "system"),
    "user": (
        "present",
        "uid",
        "group",
        "groups",
        "groups_mode",
        "home",
        "shell",
        "system",
        "create_home",
        "password",
    ),
    "command": ("run", "creates", "unless"),
    "deploy": ("use", "args"),
    "line": ("line", "state", "after", "before", "create", "restart"),
    "setting": ("format", "value", "state", "create", "restart"),
    "block": ("content", "marker", "state", "after", "before", "create", "restart"),
}
# Long or secret values are not repeated in messages.
HIDDEN_FIELDS = frozenset({"content", "key", "password"})


def resource_key(kind: ResourceKind, spec: Any) -> str:
    """The per-kind identity of a resource on a host: package name, file path, sysctl key..."""
    if kind == "patch":
        return f"{spec.advisory}/{spec.package}"
    if kind in ("file", "directory"):
        return str(spec.path)
    if kind == "line":  # the same line: the same file and pattern (or exact line)
        return f"{spec.path}:{spec.match if spec.match is not None else spec.line}"
    if kind == "setting":
        section = f"[{spec.section}]" if spec.section is not None else ""
        return f"{spec.path}:{section}{spec.key}"
    if kind == "block":
        return f"{spec.path}:{spec.name}"
    if kind == "sysctl":
        return str(spec.key)
    return str(spec.name)


def field_value(resource: Resource, name: str) -> Any:
    """A field as it will be applied: rendered content for files, else the spec's value."""
    if resource.kind in ("file", "block") and name == "content":
        return resource.content
    return getattr(resource.spec, name)


def field_location(resource: Resource, name: str) -> SourceLocation | None:
    """Where a field was written, or None when it has its default value."""
    locations = resource.field_locations
    if resource.kind in ("file", "block") and name == "content":
        return locations.get("content") or locations.get("template")
    return locations.get(name)


def _conflict(first: Resource, second: Resource, name: str) -> Diagnostic:
    what = f"{second.kind.replace('_', ' ')} '{second.key}'"
    where = field_location(second, name) or second.location
    earlier = field_location(first, name)
    at = f"set at {earlier}" if earlier else f"(the default) at {first.location}"
    if name in HIDDEN_FIELDS:
        return Diagnostic(where, f"{what} {name} conflicts with the {name} {at}")
    ours, theirs = quote(field_value(second, name)), quote(field_value(first, name))
    return Diagnostic(where, f"{what} {name} {ours} conflicts with {name} {theirs} {at}")


def merge_resources(resources: Iterable[Resource]) -> tuple[list[Resource], list[Diagnostic]]:
    """One resource per id, in the given order; a differing duplicate is a conflict."""
    kept: dict[str, Resource] = {}
    problems: list[Diagnostic] = []
    for resource in resources:
        first = kept.setdefault(resource.id, resource)
        if first is resource:
            continue
        for name in COMPARED_FIELDS[resource.kind]:
            if field_value(first, name) != field_value(resource, name):
                problems.append(_conflict(first, resource, name))
                break
        else:
            kept[resource.id] = merge_after(first, resource)
    return list(kept.values()), problems


EDIT_KINDS = ("line", "setting", "block")


def check_edited_files(resources: Iterable[Resource]) -> list[Diagnostic]:
    """A file managed whole (`files:`) cannot also be edited in part: the two would fight."""
    items = list(resources)
    whole = {r.key: r for r in items if r.kind == "file"}
    problems = []
    for edit in (r for r in items if r.kind in EDIT_KINDS):
        path = str(getattr(edit.spec, "path", ""))
        owner = whole.get(path)
        if owner is not None:
            where = edit.field_locations.get("path") or edit.location
            message = (
                f"{edit.kind} '{edit.key}' edits file '{path}', which the file at "
                f"{owner.location} manages whole; edit it in one place"
            )
            problems.append(Diagnostic(where, message))
    return problems


def _below_fixed(version: str, fixed: str) -> bool:
    try:
        return version_compare(version, fixed) < 0
    except ValueError:
        return False


def check_patch_pins(resources: Iterable[Resource]) -> list[Diagnostic]:
    """A package pinned below the fixed version of a patch on it would undo the patch."""
    items = list(resources)
    packages = {r.key: r for r in items if r.kind == "package"}
    problems: list[Diagnostic] = []
    for patch in (r for r in items if r.kind == "patch"):
        assert isinstance(patch.spec, Patch)
        package = packages.get(patch.spec.package)
        if package is None or not isinstance(package.spec, Package) or package.spec.version is None:
            continue
        version, fixed = package.spec.version, patch.spec.fixed
        if _below_fixed(version, fixed):
            where = field_location(package, "version") or package.location
            at = field_location(patch, "fixed") or patch.location
            message = (
                f"package '{package.key}' version '{version}' is below version '{fixed}' "
                f"fixed by {patch.spec.advisory} at {at}"
            )
            problems.append(Diagnostic(where, message))
    return problems


def check_baselines(policies: Sequence[LoadedPolicy], host: str) -> list[Diagnostic]:
    """A host is governed by at most one patch baseline: two would approve different versions."""
    declaring = [p for p in policies if p.document.patch_baseline is not None]
    first, problems = (declaring[0] if declaring else None), []
    for other in declaring[1:]:
        assert first is not None
        where = other.yaml.key_location(("patch_baseline",))
        earlier = first.yaml.key_location(("patch_baseline",))
        message = (
            f"host '{host}' is selected by two patch baselines: '{other.name}' here and "
            f"'{first.name}' at {earlier}; a host follows one baseline (narrow one select)"
        )
        problems.append(Diagnostic(where, message))
    return problems
