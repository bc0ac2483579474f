"""One shell script per host that reports everything a desired state depends on.

The engine runs `build_probe_script(desired)` as a single remote command and hands its output to
`parse_probe_output`. Records are tab-separated lines `kind<TAB>key<TAB>fields...`; content of
files whose hash differs from the desired one comes base64-encoded, so plans show real diffs
without a second round trip.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from shlex import quote

from orchestrator.drift.availability import offer_key, offer_lines
from orchestrator.drift.edits import edited_paths
from orchestrator.drift.expected import (
    expected_directory,
    expected_files,
    pending_restart_marker,
    restart_units,
    sysctl_persist_file,
    unit_name,
)
from orchestrator.drift.observed import (
    Observation,
    ObservedGroup,
    ObservedPackage,
    ObservedPath,
    ObservedService,
    ObservedSysctl,
    ObservedUser,
)
from orchestrator.model.desired import DesiredState
from orchestrator.model.policy import Command, Group, Package, Patch, Service, Sysctl, User

PROBE_VERSION = "1"
MAX_DIFF_BYTES = 262144
END_MARKER = "patchring-probe-end"

# Shell functions shared by every probe. Kept POSIX sh: hosts run dash.
_PRELUDE = r"""
export LC_ALL=C
pf() {
  if [ -f "$1" ] && [ ! -L "$1" ]; then
    h=$(sha256sum "$1" | cut -d' ' -f1)
    printf 'path\t%s\tfile\t%s\t%s\n' "$1" "$h" "$(stat --printf '%U\t%G\t%a' "$1")"
    if [ "$h" != "$2" ] && [ "$(stat -c %s "$1")" -le MAXB ]; then
      printf 'content\t%s\t' "$1"; base64 -w0 "$1"; echo
    fi
  elif [ -d "$1" ]; then
    printf 'path\t%s\tdirectory\t-\t%s\n' "$1" "$(stat --printf '%U\t%G\t%a' "$1")"
  elif [ -e "$1" ] || [ -L "$1" ]; then printf 'path\t%s\tother\n' "$1"
  else printf 'path\t%s\tmissing\n' "$1"; fi
}
usr() {
  if e=$(getent passwd "$1"); then
    h=$(echo "$e" | cut -d: -f6)
    if [ "$2" = 1 ]; then
      p=$(getent shadow "$1" | cut -d: -f2 | tr -d '\n' | sha256sum | cut -d' ' -f1)
    else p=-; fi
    printf 'user\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$(echo "$e" | cut -d: -f3)" \
      "$(id -gn "$1")" "$(id -Gn "$1" | tr ' ' ',')" "$h" \
      "$(echo "$e" | cut -d: -f7)" "$([ -d "$h" ] && echo yes || echo no)" "$p"
  else printf 'user\t%s\t-\n' "$1"; fi
}
grp() {
  if e=$(getent group "$1"); then printf 'group\t%s\t%s\n' "$1" "$(echo "$e" | cut -d: -f3)"
  else printf 'group\t%s\t-\n' "$1"; fi
}
sct() {
  printf 'sysctl\t%s\t%s\t%s\t' "$1" "$(sysctl -n "$1" 2>/dev/null | tr '\t' ' ')" "$3"
  grep -E "$2" "$3" 2>/dev/null | base64 -w0; echo
}
""".replace("MAXB", str(MAX_DIFF_BYTES))


def build_probe_script(desired: DesiredState) -> str:
    """The whole probe for one host: one remote command, whatever the number of resources."""
    parts = [f"echo 'patchring-probe {PROBE_VERSION}'", _PRELUDE]
    parts += _package_lines(desired)
    parts += offer_lines(desired)
    for resource in desired.resources:
        # A key fetched at apply time has no expected hash: "-" always brings its content back,
        # so the plan reads its fingerprints.
        parts += [f"pf {quote(f.path)} {f.sha256 or '-'}" for f in expected_files(resource)]
        directory = expected_directory(resource)
        if directory is not None:
            parts.append(f"pf {quote(directory.path)} -")
    # Files edited in part: `-` matches no hash, so their whole content comes back.
    parts += [f"pf {quote(path)} -" for path in edited_paths(desired)]
    parts += _service_lines(desired)
    parts += _pending_restart_lines(desired)
    for resource in desired.resources:
        spec = resource.spec
        if isinstance(spec, Sysctl):
            parts.append(_sysctl_line(spec))
        elif isinstance(spec, Group):
            parts.append(f"grp {quote(spec.name)}")
        elif isinstance(spec, User):
            parts.append(f"usr {quote(spec.name)} {1 if spec.password is not None else 0}")
        elif isinstance(spec, Command):
            parts.append(_command_line(spec))
    parts.append(f"echo {END_MARKER}")
    return "\n".join(parts) + "\n"


def _package_lines(desired: DesiredState) -> list[str]:
    names: list[str] = []
    latest: list[str] = []
    for resource in desired.resources:
        spec = resource.spec
        if isinstance(spec, Package | Patch):
            name = spec.name if isinstance(spec, Package) else spec.package
            if name not in names:
                names.append(name)
            if isinstance(spec, Package) and spec.state == "latest":
                latest.append(name)
    if not names:
        return []
    fmt = r"pkg\t${Package}\t${Version}\t${Status}\n"
    lines = [f"dpkg-query -W -f='{fmt}' {_words(names)} 2>/dev/null"]
    for name in latest:
        lines.append(
            f"printf 'candidate\\t%s\\t%s\\n' {quote(name)} "
            f'"$(apt-cache policy {quote(name)} | sed -n "s/^ *Candidate: *//p")"'
        )
    return lines


def _service_lines(desired: DesiredState) -> list[str]:
    units = [unit_name(r.spec.name) for r in desired.resources if isinstance(r.spec, Service)]
    if not units:
        return []
    props = "Id,LoadState,ActiveState,UnitFileState"
    return [f"systemctl show -p {props} {_words(units)} | sed 's/^/svc\\t/'"]


def _pending_restart_lines(desired: DesiredState) -> list[str]:
    """Markers of restarts an earlier apply recorded but did not carry out."""
    lines = []
    for unit in dict.fromkeys(u for r in desired.resources for u in restart_units(r)):
        marker = quote(pending_restart_marker(unit))
        lines.append(
            f"if [ -f {marker} ]; then printf 'restart\\t%s\\t%s\\n' {quote(unit)} "
            f"\"$(head -c 400 {marker} | tr '\\t\\n' '  ')\"; fi"
        )
    return lines


def sysctl_lines_pattern(key: str) -> str:
    """The extended regular expression of the lines of a sysctl.d file that set `key` (a
    leading `-` tells systemd-sysctl to ignore a failure)."""
    return "^[[:space:]]*-?" + re.sub(r"([.*])", r"\\\1", key) + "[[:space:]]*="


def _sysctl_line(spec: Sysctl) -> str:
    """The live value, and every line of the persist file that sets the key (base64)."""
    pattern = sysctl_lines_pattern(spec.key)
    return f"sct {quote(spec.key)} {quote(pattern)} {quote(sysctl_persist_file(spec))}"


def _command_line(spec: Command) -> str:
    name = quote(spec.name)
    if spec.creates is not None:
        test = f"[ -e {quote(spec.creates)} ]"
    else:
        test = f"sh -c {quote(spec.unless or 'false')} >/dev/null 2>&1 </dev/null"
    yes, no = (f"printf 'cmd\\t%s\\t{answer}\\n' {name}" for answer in ("yes", "no"))
    return f"if {test}; then {yes}; else {no}; fi"


def _words(items: Iterable[str]) -> str:
    return " ".join(quote(item) for item in items)


class ProbeOutputError(ValueError):
    """The probe's output was cut short or is not what this version of patchring writes."""


def parse_probe_output(text: str) -> Observation:
    """Turn probe output into an Observation; raises ProbeOutputError if it is incomplete."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != f"patchring-probe {PROBE_VERSION}":
        raise ProbeOutputError("probe output does not start with the expected header")
    if END_MARKER not in (line.strip() for line in lines[-3:]):
        raise ProbeOutputError("probe output was cut short")
    acc = _Accumulator()
    for line in lines[1:]:
        fields = line.split("\t")
        handler = _HANDLERS.get(fields[0])
        if handler is not None and len(fields) >= 2:
            handler(acc, fields[1:])
    return acc.build()


class _Accumulator:
    def __init__(self) -> None:
        self.packages: dict[str, ObservedPackage] = {}
        self.candidates: dict[str, str] = {}
        self.paths: dict[str, ObservedPath] = {}
        self.contents: dict[str, bytes] = {}
        self.services: dict[str, dict[str, str]] = {}
        self.current_service: dict[str, str] | None = None
        self.users: dict[str, ObservedUser] = {}
        self.groups: dict[str, ObservedGroup] = {}
        self.sysctls: dict[str, ObservedSysctl] = {}
        self.commands: dict[str, bool] = {}
        self.pending_restarts: dict[str, str] = {}
        self.offered: dict[str, bool] = {}

    def build(self) -> Observation:
        packages = {
            name: pkg.model_copy(update={"candidate": self.candidates.get(name)})
            for name, pkg in self.packages.items()
        }
        for name, candidate in self.candidates.items():
            packages.setdefault(name, ObservedPackage(name=name, candidate=candidate or None))
        paths = {
            path: obs.model_copy(update={"content": self.contents.get(path)})
            for path, obs in self.paths.items()
        }
        services = {
            props["Id"]: ObservedService(
                name=props["Id"],
                load_state=props.get("LoadState", "not-found"),
                active_state=props.get("ActiveState", "inactive"),
                unit_file_state=props.get("UnitFileState", ""),
            )
            for props in self.services.values()
        }
        return Observation(
            packages=packages,
            paths=paths,
            services=services,
            users=self.users,
            groups=self.groups,
            sysctls=self.sysctls,
            commands_satisfied=self.commands,
            pending_restarts=self.pending_restarts,
            offered=self.offered,
        )


def _on_pkg(acc: _Accumulator, f: list[str]) -> None:
    if len(f) >= 3:
        acc.packages[f[0]] = ObservedPackage(name=f[0], version=f[1] or None, status=f[2])


def _on_candidate(acc: _Accumulator, f: list[str]) -> None:
    candidate = f[1] if len(f) > 1 else ""
    acc.candidates[f[0]] = "" if candidate == "(none)" else candidate


def _on_path(acc: _Accumulator, f: list[str]) -> None:
    path, kind = f[0], f[1] if len(f) > 1 else "missing"
    if kind in {"file", "directory"} and len(f) >= 6:
        acc.paths[path] = ObservedPath(
            path=path,
            kind=kind,
            sha256=None if f[2] == "-" else f[2],
            owner=f[3],
            group=f[4],
            mode=f[5],
        )
    else:
        acc.paths[path] = ObservedPath(path=path, kind=kind if kind == "other" else "missing")


def _on_content(acc: _Accumulator, f: list[str]) -> None:
    try:
        acc.contents[f[0]] = base64.b64decode(f[1] if len(f) > 1 else "")
    except (binascii.Error, ValueError):
        return


def _on_svc(acc: _Accumulator, f: list[str]) -> None:
    key, _, value = f[0].partition("=")
    if key == "Id":
        acc.current_service = {"Id": value}
        acc.services[value] = acc.current_service
    elif acc.current_service is not None and key:
        acc.current_service[key] = value


def _on_user(acc: _Accumulator, f: list[str]) -> None:
    name = f[0]
    if len(f) >= 6 and f[1] != "-":
        acc.users[name] = ObservedUser(
            name=name,
            exists=True,
            uid=int(f[1]) if f[1].isdigit() else None,
            group=f[2],
            groups=tuple(g for g in f[3].split(",") if g),
            home=f[4],
            shell=f[5],
            home_exists=len(f) > 6 and f[6] == "yes",
            password_digest=f[7] if len(f) > 7 and f[7] != "-" else None,
        )
    else:
        acc.users[name] = ObservedUser(name=name)


def _on_group(acc: _Accumulator, f: list[str]) -> None:
    gid = f[1] if len(f) > 1 else "-"
    exists = gid != "-"
    acc.groups[f[0]] = ObservedGroup(
        name=f[0], exists=exists, gid=int(gid) if gid.isdigit() else None
    )


def _on_sysctl(acc: _Accumulator, f: list[str]) -> None:
    value = f[1] if len(f) > 1 and f[1] != "" else None
    try:
        text = base64.b64decode(f[3] if len(f) > 3 else "").decode(errors="replace")
    except (binascii.Error, ValueError):
        text = ""
    acc.sysctls[f[0]] = ObservedSysctl(
        key=f[0],
        value=value,
        persist_file=f[2] if len(f) > 2 else None,
        persisted_lines=tuple(text.splitlines()),
    )


def _on_cmd(acc: _Accumulator, f: list[str]) -> None:
    acc.commands[f[0]] = len(f) > 1 and f[1] == "yes"


def _on_restart(acc: _Accumulator, f: list[str]) -> None:
    acc.pending_restarts[f[0]] = (f[1] if len(f) > 1 else "").strip()


def _on_offer(acc: _Accumulator, f: list[str]) -> None:
    if len(f) >= 3:
        acc.offered[offer_key(f[0], f[1])] = f[2] == "yes"


_HANDLERS = {
    "pkg": _on_pkg,
    "candidate": _on_candidate,
    "path": _on_path,
    "content": _on_content,
    "svc": _on_svc,
    "user": _on_user,
    "group": _on_group,
    "sysctl": _on_sysctl,
    "cmd": _on_cmd,
    "restart": _on_restart,
    "offer": _on_offer,
}
