"""Groups, users and sysctls as operation specs.

A group is `server.group`, plus `groupmod -g` when an existing group's gid differs (pyinfra
sets a gid only on creation); a user is `server.user`, plus `usermod -u` for the same reason
and `usermod -G ''` when `groups_mode: exact` leaves no supplementary group (pyinfra treats an
empty list as "leave the groups alone"). A sysctl is `server.sysctl` for the live value and one
command for its persist file: the key's first line is replaced in place, later ones removed, the
line appended when there is none, and the file replaced (atomically) only when it changed.
pyinfra's own `persist=True` goes through `files.line` with a pattern that holds the new value,
so a changed value never matches the old line and a second line is appended after it.
Pure: builds specs only; imports the package's model, `drift.expected` and `compiler.opspec`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from shlex import quote

from orchestrator.compiler.opspec import OpSpec
from orchestrator.compiler.opspec import resource_op as _op
from orchestrator.drift.expected import sysctl_persist_file, sysctl_persist_line
from orchestrator.model.desired import Resource
from orchestrator.model.policy import Group, Sysctl, User


def compile_group(r: Resource) -> Iterator[OpSpec]:
    assert isinstance(r.spec, Group)
    s = r.spec
    yield _op(
        r,
        "server.group",
        f"group {s.name}",
        group=s.name,
        present=s.present,
        system=s.system,
        gid=s.gid,
    )
    if s.present and s.gid is not None:
        name, gid = quote(s.name), str(s.gid)
        command = f'[ "$(getent group {name} | cut -d: -f3)" = {gid} ] || groupmod -g {gid} {name}'
        yield _op(r, "server.shell", f"group {s.name}: gid {gid}", commands=[command])


def compile_user(r: Resource) -> Iterator[OpSpec]:
    assert isinstance(r.spec, User)
    s = r.spec
    if not s.present:
        yield _op(r, "server.user", f"user {s.name}", user=s.name, present=False)
        return
    groups = list(s.groups) if s.groups else None
    yield _op(
        r,
        "server.user",
        f"user {s.name}",
        user=s.name,
        present=True,
        uid=s.uid,
        group=s.group,
        groups=groups,
        append=(s.groups_mode == "append") if groups else None,
        home=s.home,
        shell=s.shell,
        system=s.system,
        create_home=s.makes_home,
        ensure_home=s.makes_home,
        password=s.password,
    )
    name = quote(s.name)
    if s.uid is not None:
        uid = str(s.uid)
        command = f'[ "$(id -u {name})" = {uid} ] || usermod -u {uid} {name}'
        yield _op(r, "server.shell", f"user {s.name}: uid {uid}", commands=[command])
    if s.groups_mode == "exact" and not s.groups:
        command = f"usermod -G '' {name}"
        yield _op(r, "server.shell", f"user {s.name}: no supplementary group", commands=[command])


def sysctl_persist_command(spec: Sysctl) -> str:
    """One POSIX sh command that leaves exactly one line for the key in its persist file."""
    tab = "\t"
    pattern = f"^[ {tab}]*-?" + re.sub(r"([.*])", r"\\\1", spec.key) + f"[ {tab}]*="
    program = (
        '$0 ~ ENVIRON["RE"] { if (!done) print ENVIRON["LINE"]; done = 1; next } { print } '
        'END { if (!done) print ENVIRON["LINE"] }'
    )
    return (
        f'f={quote(sysctl_persist_file(spec))} && mkdir -p "$(dirname "$f")" && '
        f'touch "$f" && RE={quote(pattern)} LINE={quote(sysctl_persist_line(spec))} '
        f'awk {quote(program)} "$f" > "$f.patchring-new" && '
        f'if cmp -s "$f" "$f.patchring-new"; then rm -f "$f.patchring-new"; '
        f'else chmod 644 "$f.patchring-new" && mv -f "$f.patchring-new" "$f"; fi'
    )


def compile_sysctl(r: Resource) -> Iterator[OpSpec]:
    assert isinstance(r.spec, Sysctl)
    s = r.spec
    yield _op(r, "server.sysctl", f"sysctl {s.key} = {s.value}", key=s.key, value=s.value)
    persist = _op(
        r,
        "server.shell",
        f"sysctl {s.key}: persist in {sysctl_persist_file(s)}",
        commands=[sysctl_persist_command(s)],
    )
    # the file (and its folder, made if missing) and a sibling temp file, renamed over it
    yield persist.model_copy(update={"effect": (sysctl_persist_file(s),)})
