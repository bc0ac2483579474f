"""Comparing a desired state with what the probe saw: the list of resources that differ.

Pure and total: every resource yields either no change or a `ResourceChange` saying what would
happen, in words a technician reads in a plan (`acme-agent 1.0-1 -> 1.0-2`, a unified diff).
"""

from __future__ import annotations

import difflib
import hashlib
from collections.abc import Callable
from typing import Literal

from debian.debian_support import version_compare

from orchestrator.drift.edits import describe_edit, edit_path, edits_of, plan_edited_file
from orchestrator.drift.expected import (
    ExpectedFile,
    expected_files,
    is_text,
    normalize_mode,
    normalize_sysctl,
    password_digest,
    restart_id,
    restart_units,
    sysctl_line_value,
    sysctl_persist_file,
    sysctl_persist_line,
    text_of,
    unit_name,
    user_home,
)
from orchestrator.drift.observed import (
    Observation,
    ObservedPackage,
    ObservedPath,
    ObservedSysctl,
    ObservedUser,
)
from orchestrator.model.base import Frozen
from orchestrator.model.desired import DesiredState, Resource
from orchestrator.model.policy import (
    AptRepository,
    Command,
    Deploy,
    Directory,
    FileEdit,
    Group,
    Package,
    Patch,
    Service,
    Sysctl,
    User,
)
from orchestrator.openpgp import OpenPGPError, key_fingerprints

Action = Literal[
    "install",
    "upgrade",
    "downgrade",
    "reinstall",
    "remove",
    "hold",
    "create",
    "update",
    "chmod",
    "chown",
    "start",
    "stop",
    "enable",
    "disable",
    "set",
    "run",
    "delegate",
    "restart",
    "unmanage",  # `plan --base`: a resource the head no longer manages
]


class ResourceChange(Frozen):
    """What converging one resource would do on one host."""

    resource_id: str
    policy: str
    actions: tuple[Action, ...]
    summary: str
    diff: str = ""


def diff_host(desired: DesiredState, observed: Observation) -> tuple[ResourceChange, ...]:
    """Every resource of the host that differs from what was observed, in converge order, then
    the restarts due: of files that change, and those an earlier apply left pending."""
    changes = []
    for resource in desired.resources:
        change = diff_resource(resource, observed, desired)
        if change is not None:
            changes.append(change)
    return (*changes, *_restart_changes(desired, observed, {c.resource_id for c in changes}))


def _restart_changes(
    desired: DesiredState, observed: Observation, changing: set[str]
) -> list[ResourceChange]:
    files: dict[str, list[Resource]] = {}
    for resource in desired.resources:
        for unit in restart_units(resource):
            files.setdefault(unit, []).append(resource)
    restarts = []
    for unit, named_by in files.items():
        changed_paths = [r.key for r in named_by if r.id in changing]
        pending = observed.pending_restarts.get(unit)
        if pending is None and not changed_paths:
            continue
        reasons = [f"{', '.join(changed_paths)} changes"] if changed_paths else []
        if pending is not None:
            reasons.append(f"pending since an earlier apply: {pending or 'no details'}")
        restarts.append(
            ResourceChange(
                resource_id=restart_id(unit),
                policy=named_by[0].policy,
                actions=("restart",),
                summary=f"{unit}: restart ({'; '.join(reasons)})",
            )
        )
    return restarts


def diff_resource(
    resource: Resource, observed: Observation, desired: DesiredState | None = None
) -> ResourceChange | None:
    spec = resource.spec
    result: tuple[tuple[Action, ...], str, str] | None
    if isinstance(spec, Package):
        result = _diff_package(spec, observed.packages.get(spec.name))
    elif isinstance(spec, Patch):
        result = _diff_patch(spec, observed.packages.get(spec.package), desired)
    elif isinstance(spec, Directory):
        result = _diff_directory(spec, observed.paths.get(spec.path))
    elif isinstance(spec, Service):
        result = _diff_service(spec, observed)
    elif isinstance(spec, Sysctl):
        result = _diff_sysctl(spec, observed)
    elif isinstance(spec, Group):
        result = _diff_group(spec, observed)
    elif isinstance(spec, User):
        result = _diff_user(spec, observed)
    elif isinstance(spec, Command):
        satisfied = observed.commands_satisfied.get(spec.name, False)
        result = None if satisfied else (("run",), f"run: {spec.run}", "")
    elif isinstance(spec, Deploy):
        result = (("delegate",), f"deploy {spec.use}", "")
    elif isinstance(spec, FileEdit):
        result = _diff_edit(resource, observed, desired)
    else:
        result = _diff_files(expected_files(resource), observed)
        if result is not None and isinstance(spec, AptRepository):  # the compiler's apt.update
            actions, summary, diff = result
            result = actions, f"{summary}; apt lists refreshed because {spec.name} changed", diff
    if result is None:
        return None
    actions, summary, diff = result
    return ResourceChange(
        resource_id=resource.id, policy=resource.policy, actions=actions, summary=summary, diff=diff
    )


_Result = tuple[tuple[Action, ...], str, str] | None


def _diff_package(spec: Package, seen: ObservedPackage | None) -> _Result:
    seen = seen or ObservedPackage(name=spec.name)
    have = seen.version if seen.installed or seen.broken else None
    if spec.state == "absent":
        return (("remove",), f"{spec.name} {have} -> absent", "") if have else None
    target = spec.version
    if spec.state == "latest":
        target = seen.candidate or None
    actions: list[Action] = []
    summary = ""
    if have is None:
        actions.append("install")
        summary = f"{spec.name} (absent) -> {target or 'installed'}"
    elif seen.broken:
        actions.append("reinstall")
        state = seen.status.rsplit(" ", 1)[-1]
        summary = f"{spec.name} {have} ({state}) -> {target or have}"
    elif target is not None and have != target:
        actions.append("upgrade" if version_compare(have, target) < 0 else "downgrade")
        summary = f"{spec.name} {have} -> {target}"
    if spec.hold and not seen.held:
        actions.append("hold")
        summary = summary or f"{spec.name} {have}: hold"
    return (tuple(actions), summary, "") if actions else None


def _diff_patch(spec: Patch, seen: ObservedPackage | None, desired: DesiredState | None) -> _Result:
    if seen is None or seen.version is None or not (seen.installed or seen.broken):
        return None  # not installed: the advisory does not apply to this host
    if seen.installed and version_compare(seen.version, spec.fixed) >= 0:
        return None
    if desired is not None and _pinned_elsewhere(desired, spec.package):
        return None  # a package pin on the same package converges it (and is >= fixed)
    return (("upgrade",), f"{spec.package} {seen.version} -> {spec.fixed} ({spec.advisory})", "")


def _pinned_elsewhere(desired: DesiredState, package: str) -> bool:
    return any(
        isinstance(r.spec, Package) and r.spec.name == package and r.spec.version is not None
        for r in desired.resources
    )


def _diff_files(files: tuple[ExpectedFile, ...], observed: Observation) -> _Result:
    actions: list[Action] = []
    summaries: list[str] = []
    diffs: list[str] = []
    for want in files:
        seen = observed.paths.get(want.path) or ObservedPath(path=want.path)
        result = _diff_one_file(want, seen)
        if result is not None:
            actions += [a for a in result[0] if a not in actions]
            summaries.append(result[1])
            diffs.append(result[2])
    if not actions:
        return None
    return tuple(actions), "; ".join(summaries), "".join(diffs)


def _diff_one_file(want: ExpectedFile, seen: ObservedPath) -> _Result:
    if want.content is None:
        return _diff_fetched_key(want, seen)
    if seen.kind != "file":
        what = "(absent)" if seen.kind == "missing" else f"({seen.kind})"
        diff = file_diff(b"", want.content, want.path)
        summary = f"{want.path} {what} -> created, mode {want.mode}"
        return ("create",), summary + _binary_note(want.content, want.sha256), diff
    actions: list[Action] = []
    notes: list[str] = []
    diff = ""
    if seen.sha256 != want.sha256:
        actions.append("update")
        notes.append("content" + _binary_note(want.content, want.sha256))
        diff = file_diff(seen.content, want.content, want.path, seen.sha256)
    notes += _attribute_notes(seen, want.owner, want.group, want.mode, actions)
    if not actions:
        return None
    return tuple(actions), f"{want.path}: {', '.join(notes)}", diff


def _diff_edit(resource: Resource, observed: Observation, desired: DesiredState | None) -> _Result:
    """The diff of this edit alone, applied after the file's earlier edits (see drift.edits)."""
    path = edit_path(resource)
    edits = edits_of(desired, path) if desired is not None else [resource]
    planned = plan_edited_file(path, edits, observed)
    if isinstance(planned, str):
        return None  # the host's plan fails with this problem (edit_problems)
    index = next(i for i, s in enumerate(planned.steps) if s.resource_id == resource.id)
    step = planned.steps[index]
    if step.before == step.after:
        return None
    created = planned.seen_sha256 is None and not any(
        s.before != s.after for s in planned.steps[:index]
    )
    summary = describe_edit(resource, created)
    return ("create" if created else "update",), summary, _unified(step.before, step.after, path)


def _binary_note(content: bytes, sha256: str | None) -> str:
    """Files that are not UTF-8 text are named by their hash in summaries (no text to show)."""
    return "" if is_text(content) else f" (binary, sha256 {sha256})"


def _diff_fetched_key(want: ExpectedFile, seen: ObservedPath) -> _Result:
    """A key fetched at apply time: in place when the keyring on the host holds its fingerprint."""
    held: list[str] = []
    if seen.kind == "file" and seen.content is not None:
        try:
            held = key_fingerprints(seen.content)
        except OpenPGPError:
            held = []
    actions: list[Action] = []
    notes: list[str] = []
    diff = ""
    if want.fingerprint not in held:
        actions.append("create" if seen.kind != "file" else "update")
        have = ", ".join(held) if held else "no key" if seen.kind == "file" else "absent"
        notes.append(f"key {have} -> {want.fingerprint} fetched from {want.fetch_url}")
        diff = (
            f"--- {want.path} (current)\n+++ {want.path}\n"
            f"key fetched from {want.fetch_url} at apply time, installed only if it holds "
            f"{want.fingerprint} (now: {have})\n"
        )
    if seen.kind == "file":
        notes += _attribute_notes(seen, want.owner, want.group, want.mode, actions)
    if not actions:
        return None
    return tuple(actions), f"{want.path}: {', '.join(notes)}", diff


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_diff(old: bytes | None, new: bytes, path: str, old_sha256: str | None = None) -> str:
    """A unified diff when both sides are UTF-8 text, else the two hashes."""
    if old is None:
        return f"--- {path}\n+++ {path}\n(current content too large to show)\n"
    old_text, new_text = text_of(old), text_of(new)
    if old_text is None or new_text is None:
        after = _sha256(new)
        if not old:
            change = f"binary file created, sha256 {after}"
        else:
            change = f"binary file changed, sha256 {old_sha256 or _sha256(old)} -> {after}"
        return f"--- {path} (current)\n+++ {path}\n{change}\n"
    return _unified(old_text, new_text, path)


def _attribute_notes(
    seen: ObservedPath, owner: str, group: str, mode: str, actions: list[Action]
) -> list[str]:
    notes = []
    if (seen.owner, seen.group) != (owner, group):
        actions.append("chown")
        notes.append(f"owner {seen.owner}:{seen.group} -> {owner}:{group}")
    if seen.mode is None or normalize_mode(seen.mode) != normalize_mode(mode):
        actions.append("chmod")
        notes.append(f"mode {seen.mode} -> {normalize_mode(mode)}")
    return notes


def _unified(old: str, new: str, path: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"{path} (current)", path
    )
    return "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )


def _diff_directory(spec: Directory, seen: ObservedPath | None) -> _Result:
    seen = seen or ObservedPath(path=spec.path)
    if seen.kind != "directory":
        return ("create",), f"{spec.path}/ ({seen.kind}) -> created, mode {spec.mode}", ""
    actions: list[Action] = []
    notes = _attribute_notes(seen, spec.owner, spec.group, spec.mode, actions)
    return (tuple(actions), f"{spec.path}/: {', '.join(notes)}", "") if actions else None


_ENABLED_STATES = {"enabled", "enabled-runtime", "static", "alias", "generated", "indirect"}


def _diff_service(spec: Service, observed: Observation) -> _Result:
    seen = observed.services.get(unit_name(spec.name))
    installed = seen is not None and seen.load_state != "not-found"
    active = seen is not None and seen.active_state in {"active", "reloading", "activating"}
    enabled = seen is not None and seen.unit_file_state in _ENABLED_STATES
    steps: list[tuple[Action, str]] = []
    if spec.running != active:
        now = seen.active_state if seen and installed else "not installed yet"
        steps.append(("start", f"start (now {now})") if spec.running else ("stop", "stop"))
    if spec.enabled != enabled:
        now = (seen.unit_file_state if seen and installed else "") or "not installed yet"
        steps.append(
            ("enable", f"enable at boot (now {now})")
            if spec.enabled
            else ("disable", "disable at boot")
        )
    if not steps:
        return None
    return tuple(a for a, _ in steps), f"{spec.name}: " + ", ".join(n for _, n in steps), ""


def _diff_sysctl(spec: Sysctl, observed: Observation) -> _Result:
    seen = observed.sysctls.get(spec.key) or ObservedSysctl(key=spec.key)
    want = normalize_sysctl(spec.value)
    have = seen.value
    path = sysctl_persist_file(spec)
    line = sysctl_persist_line(spec)
    lines = list(seen.persisted_lines)
    persisted = [sysctl_line_value(item) for item in lines] == [want]
    live = have is not None and normalize_sysctl(have) == want
    if live and persisted:
        return None
    diff = "" if persisted else _sysctl_diff(path, lines, line)
    if live:
        return ("set",), f"{spec.key} = {want}: persist in {path}", diff
    return ("set",), f"{spec.key} {have if have is not None else '(unknown)'} -> {want}", diff


def _sysctl_diff(path: str, lines: list[str], line: str) -> str:
    """The persist file's lines for the key before and after: one line, changed in place."""
    old = "".join(f"{item}\n" for item in lines)
    return _unified(old, f"{line}\n", path)


def _diff_group(spec: Group, observed: Observation) -> _Result:
    seen = observed.groups.get(spec.name)
    exists = seen is not None and seen.exists
    if not spec.present:
        return (("remove",), f"group {spec.name} -> absent", "") if exists else None
    if not exists:
        gid = f", gid {spec.gid}" if spec.gid is not None else ""
        return ("create",), f"group {spec.name} (absent) -> created{gid}", ""
    if spec.gid is not None and seen is not None and seen.gid != spec.gid:
        return ("update",), f"group {spec.name}: gid {seen.gid} -> {spec.gid}", ""
    return None


def _diff_user(spec: User, observed: Observation) -> _Result:
    seen = observed.users.get(spec.name)
    if not spec.present:
        return (("remove",), f"user {spec.name} -> absent", "") if seen and seen.exists else None
    if seen is None or not seen.exists:
        return ("create",), f"user {spec.name} (absent) -> created", ""
    checks: list[tuple[str, Callable[[], bool], object, object]] = [
        ("uid", lambda: spec.uid is not None and seen.uid != spec.uid, seen.uid, spec.uid),
        ("home", lambda: spec.home is not None and seen.home != spec.home, seen.home, spec.home),
        (
            "shell",
            lambda: spec.shell is not None and seen.shell != spec.shell,
            seen.shell,
            spec.shell,
        ),
        (
            "group",
            lambda: spec.group is not None and seen.group != spec.group,
            seen.group,
            spec.group,
        ),
        (
            "groups",
            lambda: _groups_differ(spec, seen),
            ",".join(_supplementary(seen) if spec.groups_mode == "exact" else seen.groups),
            ",".join(spec.groups) + (" (exactly)" if spec.groups_mode == "exact" else ""),
        ),
    ]
    notes = [f"{name} {have} -> {want}" for name, differs, have, want in checks if differs()]
    if spec.makes_home and not seen.home_exists:
        notes.append(f"home {user_home(spec)} (absent) -> created")
    if spec.password is not None and seen.password_digest != password_digest(spec.password):
        notes.append("password changed")  # never the hash: it is secret
    return (("update",), f"user {spec.name}: {', '.join(notes)}", "") if notes else None


def _supplementary(seen: ObservedUser) -> list[str]:
    """The user's groups other than its primary group (what `usermod -G` sets)."""
    return sorted(group for group in seen.groups if group != seen.group)


def _groups_differ(spec: User, seen: ObservedUser) -> bool:
    if spec.groups_mode == "exact":
        return set(_supplementary(seen)) != set(spec.groups)
    return not set(spec.groups) <= set(seen.groups)
