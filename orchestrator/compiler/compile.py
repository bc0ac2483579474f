"""The compiler: one function per resource kind, and the order they run in.

`compile_host(desired)` compiles every resource (golden tests, contracts, `explain`);
`compile_host(desired, only=ids)` compiles just the resources that differ on a host, which is
what the engine hands pyinfra, so a host that needs nothing gets no operation at all.
Packages that change together are installed in one apt call: one dpkg run instead of many.
A restart that a file change makes due is first recorded on the host (a marker file, before any
operation changes anything) and its marker is removed only by the restart itself, so a restart
lost to a hung host or a killed run is found and carried out by the next apply.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Collection, Iterator
from shlex import quote

from orchestrator.compiler.accounts import compile_group, compile_sysctl, compile_user
from orchestrator.compiler.edits import edit_operations
from orchestrator.compiler.opspec import OpSpec
from orchestrator.compiler.opspec import resource_op as _op
from orchestrator.compiler.ordering import RECORD_RESTARTS, order_specs
from orchestrator.drift.expected import (
    PENDING_RESTART_DIR,
    ExpectedFile,
    expected_files,
    is_text,
    normalize_mode,
    pending_restart_marker,
    restart_id,
    restart_units,
    unit_name,
)
from orchestrator.drift.observed import Observation
from orchestrator.model.desired import DesiredState, Resource
from orchestrator.model.policy import (
    Command,
    Deploy,
    Directory,
    Package,
    Patch,
    Service,
)

APT_INSTALL_ARGS = "--allow-downgrades --allow-change-held-packages"


def compile_host(
    desired: DesiredState,
    only: Collection[str] | None = None,
    observed: Observation | None = None,
) -> tuple[OpSpec, ...]:
    """Ordered operation specs for the host; with `only`, for those resource ids alone (and the
    restarts named there as `restart:<unit>`). Each resource's `after` is honoured (see
    `compiler.ordering`): a pass over the default order below. Partial edits of files (`lines`,
    `settings`, `blocks`) need what the probe saw of those files, `observed` (see
    `compiler.edits`)."""
    return order_specs(desired, only, lambda ids: compile_kinds(desired, ids, observed))


def compile_kinds(
    desired: DesiredState,
    only: Collection[str] | None = None,
    observed: Observation | None = None,
) -> tuple[OpSpec, ...]:
    """Operation specs in the default order of kinds, packages batched into one apt call."""
    chosen = [r for r in desired.resources if only is None or r.id in only]
    restarts = _restarts(desired.resources, chosen, only)
    specs: list[OpSpec] = []
    specs += _record_restarts(restarts)
    specs += _apt_sources(chosen)
    specs += _apt_update(chosen)
    for kind in ("group", "user", "directory"):
        specs += [op for r in chosen if r.kind == kind for op in _compile_one(r)]
    specs += _packages(chosen)
    specs += [op for r in chosen if r.kind == "file" for op in _compile_one(r)]
    specs += edit_operations(desired, chosen, observed)
    for kind in ("sysctl", "command", "deploy", "service"):
        specs += [op for r in chosen if r.kind == kind for op in _compile_one(r)]
    specs += [op for _unit, op in restarts]
    return tuple(specs)


def _put(resource: Resource) -> Iterator[OpSpec]:
    for want in expected_files(resource):
        yield OpSpec(
            operation="files.put",
            args={
                "dest": want.path,
                "user": want.owner,
                "group": want.group,
                "mode": normalize_mode(want.mode),
                "create_remote_dir": True,
            },
            content=want.content,
            fetch_url=want.fetch_url,
            fingerprint=want.fingerprint,
            resource_ids=(resource.id,),
            policy=resource.policy,
            location=resource.location,
            description=_put_description(want),
        )


def _put_description(want: ExpectedFile) -> str:
    if want.fetch_url is not None:
        return f"file {want.path} (key {want.fingerprint} from {want.fetch_url})"
    if want.sha256 is not None and not is_text(want.content or b""):
        return f"file {want.path} (sha256 {want.sha256})"
    return f"file {want.path}"


def _apt_sources(chosen: list[Resource]) -> list[OpSpec]:
    return [op for r in chosen if r.kind == "apt_repository" for op in _put(r)]


def _apt_update(chosen: list[Resource]) -> list[OpSpec]:
    """Refresh package lists when a source changed or packages are about to change (never
    otherwise: `only` leaves out repositories already in place)."""
    triggers = [r for r in chosen if r.kind in {"apt_repository", "package", "patch"}]
    if not triggers:
        return []
    first = triggers[0]
    return [
        OpSpec(
            operation="apt.update",
            resource_ids=tuple(r.id for r in triggers),
            policy=first.policy,
            location=first.location,
            description=apt_update_reason(triggers),
        )
    ]


def apt_update_reason(triggers: Collection[Resource]) -> str:
    """Why apt's lists are refreshed, in words: the repositories that changed, or the
    packages about to change."""
    repos = [r.key for r in triggers if r.kind == "apt_repository"]
    if repos:
        return f"apt lists refreshed because {', '.join(repos)} changed"
    return "refresh apt package lists"


def _packages(chosen: list[Resource]) -> list[OpSpec]:
    """Installs, removals and holds, each batched into one call."""
    install: list[tuple[str, Resource]] = []
    latest: list[tuple[str, Resource]] = []
    remove: list[tuple[str, Resource]] = []
    hold: list[tuple[str, Resource]] = []
    pinned = {r.spec.name for r in chosen if isinstance(r.spec, Package) and r.spec.version}
    for r in chosen:
        spec = r.spec
        if isinstance(spec, Package):
            if spec.state == "absent":
                remove.append((spec.name, r))
            elif spec.state == "latest":
                latest.append((spec.name, r))
            else:
                install.append((f"{spec.name}={spec.version}" if spec.version else spec.name, r))
            if spec.hold:
                hold.append((spec.name, r))
        elif isinstance(spec, Patch) and spec.package not in pinned:
            install.append((f"{spec.package}={spec.fixed}", r))
    ops: list[OpSpec] = []
    if install:
        ops.append(
            _batch(install, "apt.packages", "install packages", extra_install_args=APT_INSTALL_ARGS)
        )
    if latest:
        ops.append(
            _batch(
                latest,
                "apt.packages",
                "upgrade packages to latest",
                latest=True,
                extra_install_args=APT_INSTALL_ARGS,
            )
        )
    if remove:
        ops.append(_batch(remove, "apt.packages", "remove packages", present=False))
    if hold:
        names = " ".join(shlex.quote(name) for name in dict.fromkeys(name for name, _ in hold))
        ops.append(
            _batch(
                [],
                "server.shell",
                "hold packages",
                resources=[r for _, r in hold],
                commands=[f"apt-mark hold {names}"],
            )
        )
    return ops


def _batch(
    items: list[tuple[str, Resource]],
    operation: str,
    description: str,
    resources: list[Resource] | None = None,
    **args: object,
) -> OpSpec:
    resources = resources or [r for _, r in items]
    names = list(dict.fromkeys(name for name, _ in items))
    if names:
        args = {"packages": names, **args}
    return OpSpec(
        operation=operation,
        args=args,
        resource_ids=tuple(dict.fromkeys(r.id for r in resources)),
        policy=resources[0].policy,
        location=resources[0].location,
        description=f"{description}: {', '.join(names)}" if names else description,
    )


def _restarts(
    resources: tuple[Resource, ...], chosen: list[Resource], only: Collection[str] | None
) -> list[tuple[str, OpSpec]]:
    """Units named in `restart:` of files that change (or whose restart `only` names, as one
    left pending), each restarted once, last; the restart removes the unit's marker."""
    named: dict[str, list[Resource]] = {}
    for r in resources:
        for unit in restart_units(r):
            named.setdefault(unit, []).append(r)
    chosen_ids = {r.id for r in chosen}
    ops = []
    for unit, files in named.items():
        due = [r for r in files if r.id in chosen_ids]
        if not due and (only is None or restart_id(unit) not in only):
            continue
        first = (due or files)[0]
        why = f"{', '.join(r.key for r in due)} changed" if due else "pending"
        command = f"systemctl restart {quote(unit)} && rm -f {quote(pending_restart_marker(unit))}"
        op = OpSpec(
            operation="server.shell",
            args={"commands": [command]},
            resource_ids=(restart_id(unit),),
            policy=first.policy,
            location=first.location,
            description=f"restart {unit} ({why})",
        )
        ops.append((unit, op))
    return ops


def _record_restarts(restarts: list[tuple[str, OpSpec]]) -> list[OpSpec]:
    """One command, before anything else, that writes each due restart's marker on the host
    (atomically, synced; an older marker keeps its time)."""
    if not restarts:
        return []
    steps = [f"mkdir -p {PENDING_RESTART_DIR}"]
    for unit, op in restarts:
        marker = quote(pending_restart_marker(unit))
        reason = quote(op.description.partition(" (")[2].rstrip(")"))
        steps.append(
            f"{{ [ -f {marker} ] || {{ printf '%s %s\\n' \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" "
            f"{reason} > {marker}.new && mv -f {marker}.new {marker}; }}; }}"
        )
    steps.append(f"sync {PENDING_RESTART_DIR}")
    first = restarts[0][1]
    units = [unit for unit, _ in restarts]
    return [
        OpSpec(
            operation="server.shell",
            args={"commands": [" && ".join(steps)]},
            effect=(PENDING_RESTART_DIR,),
            resource_ids=tuple(restart_id(u) for u in units),
            policy=first.policy,
            location=first.location,
            description=f"{RECORD_RESTARTS}: {', '.join(units)}",
        )
    ]


def _directory(r: Resource) -> Iterator[OpSpec]:
    assert isinstance(r.spec, Directory)
    s = r.spec
    yield _op(
        r,
        "files.directory",
        f"directory {s.path}",
        path=s.path,
        present=True,
        user=s.owner,
        group=s.group,
        mode=normalize_mode(s.mode),
    )


def _service(r: Resource) -> Iterator[OpSpec]:
    assert isinstance(r.spec, Service)
    s = r.spec
    yield _op(
        r,
        "systemd.service",
        f"service {s.name}",
        service=unit_name(s.name),
        running=s.running,
        enabled=s.enabled,
    )


def _command(r: Resource) -> Iterator[OpSpec]:
    assert isinstance(r.spec, Command)
    yield _op(r, "server.shell", f"command {r.spec.name}", commands=[r.spec.run])


def _deploy(r: Resource) -> Iterator[OpSpec]:
    assert isinstance(r.spec, Deploy)
    op = _op(r, f"deploy:{r.spec.use}", f"deploy {r.spec.name}", **r.spec.args)
    module = r.deploy_module  # from the policy repository: the engine runs this source
    yield op.model_copy(update={"module_source": module.content}) if module else op


_COMPILERS: dict[str, Callable[[Resource], Iterator[OpSpec]]] = {
    "file": _put,
    "directory": _directory,
    "service": _service,
    "sysctl": compile_sysctl,
    "group": compile_group,
    "user": compile_user,
    "command": _command,
    "deploy": _deploy,
}


def _compile_one(resource: Resource) -> Iterator[OpSpec]:
    return _COMPILERS[resource.kind](resource)
