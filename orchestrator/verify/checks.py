"""The checks a desired state implies: one per property of each resource, with a stable id.

`plan_checks(desired)` turns every resource of a host into `PlannedCheck`s: the `CheckSpec`
people read (id `<policy>/<resource id>/<property>`, title, expected value, where the policy set
it) and the probe that checks it (`probe`, `subject`, `want`: what `probes.py` asks the host and
the value it must report). `checks_for(desired)` is the specs alone. Paths and contents of
managed files come from `drift.expected`, so plan, apply and verify agree on them. Deploys yield
no checks (pyinfra decides what they change). Given the run's `PatchCheckData`, a host a patch
baseline governs also gets the baseline's checks (`verify.patchchecks`): they list the host
`commands` they read and are decided on the controller, not by a probe. Pure: imports the
package's model, `drift.expected` and `verify.patchchecks` only; never testinfra, pyinfra or
subprocess.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Literal

from orchestrator.drift.expected import (
    apt_repository_files,
    expected_files,
    normalize_mode,
    normalize_sysctl,
    password_digest,
    restart_units,
    sysctl_persist_file,
    sysctl_persist_line,
    user_home,
)
from orchestrator.model.base import Frozen
from orchestrator.model.desired import DesiredState, Resource
from orchestrator.model.policy import (
    AptRepository,
    Block,
    Command,
    Directory,
    File,
    Group,
    LineEdit,
    Package,
    Patch,
    Service,
    Setting,
    Sysctl,
    User,
)
from orchestrator.model.verification import CheckSpec
from orchestrator.source import SourceLocation
from orchestrator.verify.patchchecks import (
    OPEN_CVES,
    PENDING,
    RESOURCE_ID,
    PatchCheckData,
    commands_for,
)
from orchestrator.verify.probes import block_markers

Probe = Literal[
    "package.installed",
    "package.version",
    "package.absent",
    "package.held",
    "package.latest",
    "patch.fixed",
    "path.file",
    "path.directory",
    "path.sha256",
    "path.openpgp_key",
    "path.owner",
    "path.group",
    "path.mode",
    "service.running",
    "service.stopped",
    "service.enabled",
    "service.disabled",
    "service.restarted",
    "sysctl.value",
    "sysctl.persisted",
    "group.present",
    "group.absent",
    "group.gid",
    "user.present",
    "user.absent",
    "user.uid",
    "user.group",
    "user.groups",
    "user.groups_exact",
    "user.home",
    "user.home_exists",
    "user.shell",
    "user.password",
    "command.creates",
    "command.unless",
    "setting.value",
    "setting.absent",
    "line.present",
    "line.absent",
    "block.present",
    "block.absent",
    "baseline.pending",
    "baseline.open_cves",
]
CONTROLLER_PROBES = frozenset({"baseline.pending", "baseline.open_cves"})
"""Probes decided on the controller from their checks' `commands`, not by a testinfra probe."""

# How each probe reads to a person: (title, expected), with {kind} (file, directory...), {key}
# (the resource's key), {subject} and {want} filled in.
WORDS: dict[Probe, tuple[str, str]] = {
    "package.installed": ("package {subject} is installed", "installed"),
    "package.version": ("package {subject} is at version {want}", "{want}"),
    "package.absent": ("package {subject} is not installed", "not installed"),
    "package.held": ("package {subject} is held (apt-mark hold)", "hold"),
    "package.latest": (
        "package {subject} is at the newest version apt offers",
        "the candidate version",
    ),
    "patch.fixed": (
        "package {subject} is at {want} or later, or not installed",
        ">= {want} or not installed",
    ),
    "path.file": ("{kind} {subject} exists and is a regular file", "regular file"),
    "path.directory": ("{kind} {subject} exists", "directory"),
    "path.sha256": ("{kind} {subject} has the expected content", "sha256 {want}"),
    "path.openpgp_key": ("{kind} {subject} holds the OpenPGP key {want}", "key {want}"),
    "path.owner": ("{kind} {subject} is owned by {want}", "{want}"),
    "path.group": ("{kind} {subject} belongs to group {want}", "{want}"),
    "path.mode": ("{kind} {subject} has mode 0{want}", "0{want}"),
    "service.running": ("service {subject} is running", "running"),
    "service.stopped": ("service {subject} is stopped", "stopped"),
    "service.enabled": ("service {subject} is enabled at boot", "enabled"),
    "service.disabled": ("service {subject} is disabled at boot", "disabled"),
    "service.restarted": (
        "service {subject} was restarted after {want} last changed",
        "started after {want} changed",
    ),
    "sysctl.value": ("sysctl {subject} = {want}", "{want}"),
    "sysctl.persisted": ("{subject} sets the key in one line: {want}", "{want}"),
    "group.present": ("group {subject} exists", "present"),
    "group.absent": ("group {subject} does not exist", "absent"),
    "group.gid": ("group {subject} has gid {want}", "{want}"),
    "user.present": ("user {subject} exists", "present"),
    "user.absent": ("user {subject} does not exist", "absent"),
    "user.uid": ("user {subject} has uid {want}", "{want}"),
    "user.group": ("user {subject} has primary group {want}", "{want}"),
    "user.groups": ("user {subject} is in groups {want}", "member of {want}"),
    "user.groups_exact": (
        "user {subject} is in exactly the supplementary groups {want}",
        "exactly {want}",
    ),
    "user.home": ("user {subject} has home {want}", "{want}"),
    "user.home_exists": ("user {key}: home directory {subject} exists", "directory"),
    "user.shell": ("user {subject} has shell {want}", "{want}"),
    # `want` is the sha256 of the hash: the words never show it, nor the hash.
    "user.password": ("user {subject} has the password hash the policy sets", "the policy's hash"),
    "command.creates": ("command {key}: {subject} exists", "exists"),
    "command.unless": ("command {key}: `{subject}` exits 0", "exit status 0"),
    # Edits: `want` is JSON for the probe; titles and expectations are written per check.
    "setting.value": ("{subject}: setting {key}", "as set"),
    "setting.absent": ("{subject}: setting {key} is not set", "no active line of it"),
    "line.present": ("{subject}: line {key}", "the line, and no other line matching"),
    "line.absent": ("{subject}: no line {key}", "no such line"),
    "block.present": ("{subject}: block {key}", "the block between its markers"),
    "block.absent": ("{subject}: no block {key}", "no block markers"),
    "baseline.pending": (
        "patch baseline {subject}: no security update it approves is pending",
        "no approved security update pending",
    ),
    "baseline.open_cves": (
        "patch baseline {subject}: no CVE of urgency {want} or higher open with a fix available",
        "no open CVE of urgency >= {want} with a fix available",
    ),
}


class PlannedCheck(Frozen):
    """A check and how to run it: `probe` asks the host about `subject` and compares with
    `want` (already normalized: modes as stat prints them, sysctl values with single spaces).
    A check with `commands` is decided on the controller from those commands' answers
    (`patchchecks.evaluate_patch_check`), not by a testinfra probe."""

    spec: CheckSpec
    probe: Probe
    subject: str
    want: str = ""
    commands: tuple[str, ...] = ()


def checks_for(
    desired: DesiredState, patching: PatchCheckData | None = None
) -> tuple[CheckSpec, ...]:
    """Every generated check of a host, in converge order."""
    return tuple(check.spec for check in plan_checks(desired, patching))


def plan_checks(
    desired: DesiredState, patching: PatchCheckData | None = None
) -> tuple[PlannedCheck, ...]:
    """Every generated check of a host with its probe, in converge order, then the checks of
    its patch baseline (when `patching`, the run's controller-side data, is given)."""
    checks = [check for resource in desired.resources for check in resource_checks(resource)]
    return (*checks, *baseline_checks(desired, patching))


def baseline_checks(
    desired: DesiredState, patching: PatchCheckData | None
) -> tuple[PlannedCheck, ...]:
    """The checks of the host's patch baseline: approved security updates pending, always; open
    CVEs with a fix, when the baseline sets `max_open_urgency` and there is security data."""
    policy = desired.patch_baseline
    setting = patching.baselines.get(policy) if patching and policy else None
    if patching is None or policy is None or setting is None:
        return ()
    wanted: list[tuple[str, Probe, str, SourceLocation]] = [
        (PENDING, "baseline.pending", "", setting.location)
    ]
    urgency = setting.baseline.max_open_urgency
    if urgency is not None and patching.tracker is not None:
        where = setting.urgency_location or setting.location
        wanted.append((OPEN_CVES, "baseline.open_cves", urgency, where))
    planned = []
    for prop, probe, want, location in wanted:
        title, expected = (text.format(subject=policy, want=want) for text in WORDS[probe])
        spec = CheckSpec(
            id=f"{policy}/{RESOURCE_ID}/{prop}",
            policy=policy,
            resource_id=RESOURCE_ID,
            property=prop,
            title=title,
            expected=expected,
            location=location,
        )
        commands = commands_for(prop, setting.baseline, patching)
        planned.append(
            PlannedCheck(spec=spec, probe=probe, subject=policy, want=want, commands=commands)
        )
    return tuple(planned)


def resource_checks(resource: Resource) -> tuple[PlannedCheck, ...]:
    planner = _PLANNERS.get(resource.kind)  # deploys: none
    return tuple(planner(_Builder(resource))) if planner else ()


class _Builder:
    """Makes the checks of one resource: ids, words, and the location of the policy key each
    check comes from (`field`, default the property; the resource's own when not written)."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource

    def check(
        self,
        prop: str,
        probe: Probe,
        subject: str,
        want: str = "",
        field: str | None = None,
        title: str | None = None,
        expected: str | None = None,
    ) -> PlannedCheck:
        r = self.resource
        kind = r.kind.replace("_", " ")
        words = {"kind": kind, "key": r.key, "subject": subject, "want": want}
        default_title, default_expected = (text.format(**words) for text in WORDS[probe])
        spec = CheckSpec(
            id=f"{r.policy}/{r.id}/{prop}",
            policy=r.policy,
            resource_id=r.id,
            property=prop,
            title=title or default_title,
            expected=expected or default_expected,
            location=r.field_locations.get(field or prop) or r.location,
        )
        return PlannedCheck(spec=spec, probe=probe, subject=subject, want=want)


def _package(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, Package)
    if spec.state == "absent":
        yield b.check("absent", "package.absent", spec.name, field="state")
        return
    yield b.check("installed", "package.installed", spec.name, field="name")
    if spec.version is not None:
        yield b.check("version", "package.version", spec.name, spec.version)
    if spec.state == "latest":
        yield b.check("latest", "package.latest", spec.name, field="state")
    if spec.hold:
        yield b.check("held", "package.held", spec.name, field="hold")


def _patch(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, Patch)
    cves = f" ({', '.join(spec.cves)})" if spec.cves else ""
    title = WORDS["patch.fixed"][0].format(subject=spec.package, want=spec.fixed)
    title = f"{spec.advisory}{cves}: {title}"
    yield b.check("fixed", "patch.fixed", spec.package, spec.fixed, title=title)


def _file(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, File)
    (want,) = expected_files(b.resource)
    field = "source" if spec.source is not None else "template" if spec.template else "content"
    title = f"file {want.path} is a copy of {spec.source} (sha256 {want.sha256})"
    yield b.check("present", "path.file", want.path, field="path")
    yield b.check(
        "content",
        "path.sha256",
        want.path,
        want.sha256 or "",
        field=field,
        title=title if spec.source is not None else None,
    )
    yield from _attributes(b, want.path, want.owner, want.group, want.mode)
    for unit in restart_units(b.resource):  # a lost restart leaves the old file in use
        yield b.check(f"restarted:{unit}", "service.restarted", unit, want.path, field="restart")


def _directory(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, Directory)
    yield b.check("present", "path.directory", spec.path, field="path")
    yield from _attributes(b, spec.path, spec.owner, spec.group, spec.mode)


def _attributes(
    b: _Builder, path: str, owner: str, group: str, mode: str
) -> Iterator[PlannedCheck]:
    yield b.check("owner", "path.owner", path, owner)
    yield b.check("group", "path.group", path, group)
    yield b.check("mode", "path.mode", path, normalize_mode(mode))


def _apt_repository(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, AptRepository)
    *keys, sources = apt_repository_files(spec, b.resource.data)
    for key in keys:
        name = f"apt repository {spec.name}: signing key {key.path}"
        if key.fingerprint is not None and key.content is None:  # fetched at apply time
            title = f"{name} holds key {key.fingerprint}"
            yield b.check(
                "key", "path.openpgp_key", key.path, key.fingerprint, "fingerprint", title
            )
            continue
        title = f"{name} is in place"
        field = "key_file" if spec.key_file is not None else "key"
        yield b.check("key", "path.sha256", key.path, key.sha256 or "", field, title)
    title = f"apt repository {spec.name}: {sources.path} lists {spec.url} {spec.suite}"
    yield b.check("sources", "path.sha256", sources.path, sources.sha256 or "", "url", title)


def _service(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, Service)
    yield b.check("running", "service.running" if spec.running else "service.stopped", spec.name)
    yield b.check("enabled", "service.enabled" if spec.enabled else "service.disabled", spec.name)


def _sysctl(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, Sysctl)
    value = normalize_sysctl(spec.value)
    path = sysctl_persist_file(spec)
    yield b.check("value", "sysctl.value", spec.key, value)
    title = f"sysctl {spec.key} = {value} is persisted in {path}"
    field = "file" if spec.file is not None else "value"
    yield b.check("persisted", "sysctl.persisted", path, sysctl_persist_line(spec), field, title)


def _group(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, Group)
    if not spec.present:
        yield b.check("absent", "group.absent", spec.name, field="present")
        return
    yield b.check("present", "group.present", spec.name, field="name")
    if spec.gid is not None:
        yield b.check("gid", "group.gid", spec.name, str(spec.gid))


def _user(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, User)
    if not spec.present:
        yield b.check("absent", "user.absent", spec.name, field="present")
        return
    yield b.check("present", "user.present", spec.name, field="name")
    exact = spec.groups_mode == "exact"
    optional: list[tuple[str, Probe, str | None]] = [
        ("uid", "user.uid", None if spec.uid is None else str(spec.uid)),
        ("group", "user.group", spec.group),
        ("groups", "user.groups_exact", ",".join(spec.groups))
        if exact
        else ("groups", "user.groups", ",".join(spec.groups) or None),
        ("home", "user.home", spec.home),
        ("shell", "user.shell", spec.shell),
    ]
    for prop, probe, want in optional:
        if want is not None:
            yield b.check(prop, probe, spec.name, want)
    if spec.makes_home:
        yield b.check("home_exists", "user.home_exists", user_home(spec), field="create_home")
    if spec.password is not None:
        digest = password_digest(spec.password)
        yield b.check("password", "user.password", spec.name, digest, field="password")


def _command(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, Command)
    if spec.creates is not None:
        yield b.check("guard", "command.creates", spec.creates, field="creates")
    else:
        yield b.check("guard", "command.unless", spec.unless or "false", field="unless")


def _edit_restarts(b: _Builder, path: str) -> Iterator[PlannedCheck]:
    for unit in restart_units(b.resource):  # a lost restart leaves the old setting in use
        yield b.check(f"restarted:{unit}", "service.restarted", unit, path, field="restart")


def _setting(b: _Builder) -> Iterator[PlannedCheck]:
    """Just the key: read the file, find its active lines in its section, compare."""
    spec = b.resource.spec
    assert isinstance(spec, Setting)
    want = json.dumps([spec.format, spec.section, spec.key, spec.value])
    name = f"[{spec.section}] {spec.key}" if spec.section else spec.key
    if spec.state == "absent":
        title = f"{spec.path}: {name} is not set"
        yield b.check("absent", "setting.absent", spec.path, want, "state", title)
    else:
        title = f"{spec.path}: {name} = {spec.value}"
        expected = f"every active {spec.key} line has {spec.value}"
        yield b.check("value", "setting.value", spec.path, want, "value", title, expected)
    yield from _edit_restarts(b, spec.path)


def _line(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, LineEdit)
    want = json.dumps([spec.line, spec.match])
    if spec.state == "absent":
        what = f"matching {spec.match!r}" if spec.match is not None else repr(spec.line)
        title = f"{spec.path}: no line {what}"
        yield b.check("absent", "line.absent", spec.path, want, "state", title)
    else:
        title = f"{spec.path}: has the line {spec.line!r}"
        also = f", and every line matching {spec.match!r} is it" if spec.match else ""
        yield b.check("present", "line.present", spec.path, want, "line", title, f"the line{also}")
    yield from _edit_restarts(b, spec.path)


def _block(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, Block)
    begin, end = block_markers(spec.marker, spec.name)
    content = b.resource.content or ""
    want = json.dumps([begin, end, content])
    if spec.state == "absent":
        title = f"{spec.path}: no block {spec.name}"
        yield b.check("absent", "block.absent", spec.path, want, "state", title)
    else:
        source = "content" if spec.content is not None else "template"
        title = f"{spec.path}: block {spec.name} has its content"
        yield b.check("content", "block.present", spec.path, want, source, title)
    yield from _edit_restarts(b, spec.path)


_PLANNERS: dict[str, Callable[[_Builder], Iterator[PlannedCheck]]] = {
    "apt_repository": _apt_repository,
    "group": _group,
    "user": _user,
    "directory": _directory,
    "package": _package,
    "patch": _patch,
    "file": _file,
    "sysctl": _sysctl,
    "command": _command,
    "service": _service,
    "setting": _setting,
    "line": _line,
    "block": _block,
}
