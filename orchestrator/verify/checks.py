"""The checks a desired state implies: one per property of each resource, with a stable id.

`plan_checks(desired)` turns every resource of a host into `PlannedCheck`s: the `CheckSpec`
people read (id `<policy>/<resource id>/<property>`, title, expected value, where the policy set
it) and the probe that checks it (`probe`, `subject`, `want`: what `probes.py` asks the host and
the value it must report). `checks_for(desired)` is the specs alone. Paths and contents of
managed files come from `drift.expected`, so plan, apply and verify agree on them. Deploys yield
no checks (pyinfra decides what they change). Pure: imports the package's model and
`drift.expected` only; never testinfra, pyinfra or subprocess.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

from orchestrator.drift.expected import (
    SYSCTL_PERSIST_FILE,
    ExpectedFile,
    apt_repository_files,
    expected_files,
    normalize_mode,
    normalize_sysctl,
)
from orchestrator.model.base import Frozen
from orchestrator.model.desired import DesiredState, Resource
from orchestrator.model.policy import (
    AptRepository,
    Command,
    Directory,
    File,
    Package,
    Patch,
    Service,
    Sysctl,
    User,
)
from orchestrator.model.verification import CheckSpec

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
    "path.owner",
    "path.group",
    "path.mode",
    "service.running",
    "service.stopped",
    "service.enabled",
    "service.disabled",
    "sysctl.value",
    "sysctl.persisted",
    "user.present",
    "user.absent",
    "user.uid",
    "user.group",
    "user.groups",
    "user.home",
    "user.shell",
    "command.creates",
    "command.unless",
]


class PlannedCheck(Frozen):
    """A check and how to run it: `probe` asks the host about `subject` and compares with
    `want` (already normalized: modes as stat prints them, sysctl values with single spaces)."""

    spec: CheckSpec
    probe: Probe
    subject: str
    want: str = ""


def checks_for(desired: DesiredState) -> tuple[CheckSpec, ...]:
    """Every generated check of a host, in converge order."""
    return tuple(check.spec for check in plan_checks(desired))


def plan_checks(desired: DesiredState) -> tuple[PlannedCheck, ...]:
    """Every generated check of a host with its probe, in converge order."""
    return tuple(check for resource in desired.resources for check in resource_checks(resource))


def resource_checks(resource: Resource) -> tuple[PlannedCheck, ...]:
    spec = resource.spec
    planner = _PLANNERS.get(type(spec))
    return tuple(planner(_Builder(resource))) if planner else ()


class _Builder:
    """Makes the checks of one resource: ids, locations and the policy name filled in."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource

    def check(
        self,
        prop: str,
        title: str,
        expected: str,
        probe: Probe,
        subject: str,
        want: str = "",
        field: str | None = None,
    ) -> PlannedCheck:
        """`field` names the policy key the check comes from (its location, if written)."""
        r = self.resource
        where = r.field_locations.get(field or prop)
        spec = CheckSpec(
            id=f"{r.policy}/{r.id}/{prop}",
            policy=r.policy,
            resource_id=r.id,
            property=prop,
            title=title,
            expected=expected,
            location=where or r.location,
        )
        return PlannedCheck(spec=spec, probe=probe, subject=subject, want=want)


def _package(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, Package)
    name = spec.name
    if spec.state == "absent":
        yield b.check(
            "absent",
            f"package {name} is not installed",
            "not installed",
            "package.absent",
            name,
            field="state",
        )
        return
    yield b.check(
        "installed",
        f"package {name} is installed",
        "installed",
        "package.installed",
        name,
        field="name",
    )
    if spec.version is not None:
        yield b.check(
            "version",
            f"package {name} is at version {spec.version}",
            spec.version,
            "package.version",
            name,
            spec.version,
        )
    if spec.state == "latest":
        yield b.check(
            "latest",
            f"package {name} is at the newest version apt offers",
            "the candidate version",
            "package.latest",
            name,
            field="state",
        )
    if spec.hold:
        yield b.check(
            "held",
            f"package {name} is held (apt-mark hold)",
            "hold",
            "package.held",
            name,
            field="hold",
        )


def _patch(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, Patch)
    cves = f" ({', '.join(spec.cves)})" if spec.cves else ""
    yield b.check(
        "fixed",
        f"{spec.advisory}{cves}: package {spec.package} is at {spec.fixed} or later, "
        "or not installed",
        f">= {spec.fixed} or not installed",
        "patch.fixed",
        spec.package,
        spec.fixed,
    )


def _file_checks(b: _Builder, want: ExpectedFile, what: str) -> Iterator[PlannedCheck]:
    path = want.path
    yield b.check(
        "present",
        f"{what} {path} exists and is a regular file",
        "regular file",
        "path.file",
        path,
        field="path",
    )
    yield b.check(
        "content",
        f"{what} {path} has the expected content",
        f"sha256 {want.sha256}",
        "path.sha256",
        path,
        want.sha256,
        field="content" if "content" in b.resource.field_locations else "template",
    )
    yield from _attributes(b, path, what, want.owner, want.group, want.mode)


def _attributes(
    b: _Builder, path: str, what: str, owner: str, group: str, mode: str
) -> Iterator[PlannedCheck]:
    yield b.check(
        "owner",
        f"{what} {path} is owned by {owner}",
        owner,
        "path.owner",
        path,
        owner,
        field="owner",
    )
    yield b.check(
        "group",
        f"{what} {path} belongs to group {group}",
        group,
        "path.group",
        path,
        group,
        field="group",
    )
    shown = mode if mode.startswith("0") else f"0{mode}"
    yield b.check(
        "mode",
        f"{what} {path} has mode {shown}",
        shown,
        "path.mode",
        path,
        normalize_mode(mode),
        field="mode",
    )


def _file(b: _Builder) -> Iterator[PlannedCheck]:
    (want,) = expected_files(b.resource)
    yield from _file_checks(b, want, "file")


def _apt_repository(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, AptRepository)
    key, sources = apt_repository_files(spec)
    yield b.check(
        "key",
        f"apt repository {spec.name}: signing key {key.path} is in place",
        f"sha256 {key.sha256}",
        "path.sha256",
        key.path,
        key.sha256,
        field="key",
    )
    yield b.check(
        "sources",
        f"apt repository {spec.name}: {sources.path} lists {spec.url} {spec.suite}",
        f"sha256 {sources.sha256}",
        "path.sha256",
        sources.path,
        sources.sha256,
        field="url",
    )


def _directory(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, Directory)
    yield b.check(
        "present",
        f"directory {spec.path} exists",
        "directory",
        "path.directory",
        spec.path,
        field="path",
    )
    yield from _attributes(b, spec.path, "directory", spec.owner, spec.group, spec.mode)


def _service(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, Service)
    if spec.running:
        yield b.check(
            "running", f"service {spec.name} is running", "running", "service.running", spec.name
        )
    else:
        yield b.check(
            "running", f"service {spec.name} is stopped", "stopped", "service.stopped", spec.name
        )
    if spec.enabled:
        yield b.check(
            "enabled",
            f"service {spec.name} is enabled at boot",
            "enabled",
            "service.enabled",
            spec.name,
        )
    else:
        yield b.check(
            "enabled",
            f"service {spec.name} is disabled at boot",
            "disabled",
            "service.disabled",
            spec.name,
        )


def _sysctl(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, Sysctl)
    value = normalize_sysctl(spec.value)
    yield b.check("value", f"sysctl {spec.key} = {value}", value, "sysctl.value", spec.key, value)
    line = f"{spec.key} = {value}"
    yield b.check(
        "persisted",
        f"sysctl {spec.key} = {value} is persisted in {SYSCTL_PERSIST_FILE}",
        line,
        "sysctl.persisted",
        spec.key,
        value,
        field="value",
    )


def _user(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, User)
    name = spec.name
    if not spec.present:
        yield b.check(
            "absent", f"user {name} does not exist", "absent", "user.absent", name, field="present"
        )
        return
    yield b.check("present", f"user {name} exists", "present", "user.present", name, field="name")
    if spec.uid is not None:
        yield b.check(
            "uid", f"user {name} has uid {spec.uid}", str(spec.uid), "user.uid", name, str(spec.uid)
        )
    if spec.group is not None:
        yield b.check(
            "group",
            f"user {name} has primary group {spec.group}",
            spec.group,
            "user.group",
            name,
            spec.group,
        )
    if spec.groups:
        groups = ",".join(spec.groups)
        yield b.check(
            "groups",
            f"user {name} is in groups {', '.join(spec.groups)}",
            f"member of {groups}",
            "user.groups",
            name,
            groups,
        )
    if spec.home is not None:
        yield b.check(
            "home", f"user {name} has home {spec.home}", spec.home, "user.home", name, spec.home
        )
    if spec.shell is not None:
        yield b.check(
            "shell",
            f"user {name} has shell {spec.shell}",
            spec.shell,
            "user.shell",
            name,
            spec.shell,
        )


def _command(b: _Builder) -> Iterator[PlannedCheck]:
    spec = b.resource.spec
    assert isinstance(spec, Command)
    if spec.creates is not None:
        yield b.check(
            "guard",
            f"command {spec.name}: {spec.creates} exists",
            "exists",
            "command.creates",
            spec.creates,
            field="creates",
        )
    else:
        unless = spec.unless or "false"
        yield b.check(
            "guard",
            f"command {spec.name}: `{unless}` exits 0",
            "exit status 0",
            "command.unless",
            unless,
            field="unless",
        )


_PLANNERS: dict[type, Callable[[_Builder], Iterator[PlannedCheck]]] = {
    Package: _package,
    Patch: _patch,
    File: _file,
    AptRepository: _apt_repository,
    Directory: _directory,
    Service: _service,
    Sysctl: _sysctl,
    User: _user,
    Command: _command,
}
