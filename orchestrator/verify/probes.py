"""How each kind of check asks a host, through pytest-testinfra's own modules.

A probe takes a testinfra host (`host.package`, `host.file`, `host.service`, `host.user`,
`host.sysctl`, `host.run`), a subject (package name, path, unit, user...) and the wanted value,
and returns `(passed, actual)`: what the host reported, in words. Probes ask only what they need,
without branching on earlier answers where they can, so one batch of commands answers them.

This module imports no testinfra (the host is handed in) and nothing from patchring, only the
standard library and python-debian: `export.py` copies its source verbatim into standalone
pytest-testinfra files, so the exported tests and `verify` check exactly the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from debian.debian_support import version_compare

ProbeResult = tuple[bool, str]


def installed_version(host: Any, name: str) -> str | None:
    """The installed (or held) version of a package, None when dpkg has it not installed."""
    try:
        return str(host.package(name).version)
    except AssertionError:  # testinfra: dpkg-query failed, or the status is not install/hold
        return None


def package_installed(host: Any, name: str, want: str) -> ProbeResult:
    installed = bool(host.package(name).is_installed)
    return installed, "installed" if installed else "not installed"


def package_absent(host: Any, name: str, want: str) -> ProbeResult:
    installed = bool(host.package(name).is_installed)
    return not installed, "installed" if installed else "not installed"


def package_version(host: Any, name: str, want: str) -> ProbeResult:
    version = installed_version(host, name)
    return version == want, version or "not installed"


def package_held(host: Any, name: str, want: str) -> ProbeResult:
    status = host.run("dpkg-query -f '${Status}' -W %s", name)  # the command is_installed runs
    selection = status.stdout.split()[0] if status.rc == 0 and status.stdout.split() else ""
    return selection == "hold", selection or "not installed"


def package_latest(host: Any, name: str, want: str) -> ProbeResult:
    policy = host.run("LC_ALL=C apt-cache policy %s", name).stdout
    found = dict(re.findall(r"^\s*(Installed|Candidate):\s*(\S+)", policy, re.MULTILINE))
    installed, candidate = found.get("Installed", "(none)"), found.get("Candidate", "(none)")
    return installed != "(none)" and installed == candidate, (
        f"{installed} (candidate {candidate})"
    )


def patch_fixed(host: Any, name: str, fixed: str) -> ProbeResult:
    version = installed_version(host, name)
    if version is None:
        return True, "not installed (not applicable)"
    return version_compare(version, fixed) >= 0, version


def path_file(host: Any, path: str, want: str) -> ProbeResult:
    f = host.file(path)
    is_file, exists = f.is_file, f.exists  # both asked, so one batch answers them
    return is_file, "regular file" if is_file else "not a regular file" if exists else "missing"


def path_directory(host: Any, path: str, want: str) -> ProbeResult:
    f = host.file(path)
    is_directory, exists = f.is_directory, f.exists
    return is_directory, (
        "directory" if is_directory else "not a directory" if exists else "missing"
    )


def _stat(read: Callable[[], object]) -> str | None:
    try:
        return str(read())
    except AssertionError:  # testinfra: the command failed (no such file)
        return None


def path_sha256(host: Any, path: str, want: str) -> ProbeResult:
    digest = _stat(lambda: host.file(path).sha256sum)
    return digest == want, f"sha256 {digest}" if digest else "missing"


def path_owner(host: Any, path: str, want: str) -> ProbeResult:
    owner = _stat(lambda: host.file(path).user)
    return owner == want, owner or "missing"


def path_group(host: Any, path: str, want: str) -> ProbeResult:
    group = _stat(lambda: host.file(path).group)
    return group == want, group or "missing"


def path_mode(host: Any, path: str, want: str) -> ProbeResult:
    mode = _stat(lambda: format(host.file(path).mode, "o"))
    return mode == want, f"0{mode}" if mode else "missing"


def service_running(host: Any, name: str, want: str) -> ProbeResult:
    running = bool(host.service(name).is_running)
    return running, "running" if running else "not running"


def service_stopped(host: Any, name: str, want: str) -> ProbeResult:
    running = bool(host.service(name).is_running)
    return not running, "running" if running else "not running"


def _enabled(host: Any, name: str) -> str:
    try:
        return "enabled" if host.service(name).is_enabled else "disabled"
    except RuntimeError:  # testinfra: "Unable to determine state ... Does this service exist?"
        return "not found"


def service_enabled(host: Any, name: str, want: str) -> ProbeResult:
    state = _enabled(host, name)
    return state == "enabled", state


def service_disabled(host: Any, name: str, want: str) -> ProbeResult:
    state = _enabled(host, name)
    return state != "enabled", state


def _systemd_time(text: str) -> datetime | None:
    """A timestamp as `systemctl show --timestamp=us+utc` prints it (`Mon 2026-03-02
    10:00:05.000001 UTC`; the weekday is skipped: Python reads it by locale)."""
    try:
        when = text.strip().partition(" ")[2]
        return datetime.strptime(when, "%Y-%m-%d %H:%M:%S.%f UTC").replace(tzinfo=UTC)
    except ValueError:
        return None


def service_restarted(host: Any, unit: str, path: str) -> ProbeResult:
    """The unit (re)started after the file last changed, so what runs has read that file."""
    shown = host.run(
        "systemctl show -p ActiveState -p ActiveEnterTimestamp --timestamp=us+utc %s", unit
    ).stdout
    props = dict(line.partition("=")[::2] for line in shown.splitlines())
    mtime = host.run("date -u -r %s '+%%s.%%N'", path)
    started = _systemd_time(props.get("ActiveEnterTimestamp", ""))
    if props.get("ActiveState") != "active" or started is None:
        return False, f"{unit} is not running ({props.get('ActiveState') or 'unknown'})"
    try:
        changed = datetime.fromtimestamp(float(mtime.stdout.strip()), UTC)
    except ValueError:
        return False, f"{path} missing"
    started_text = f"{unit} started {started:%Y-%m-%d %H:%M:%S.%f} UTC"
    changed_text = f"{path} changed {changed:%Y-%m-%d %H:%M:%S.%f} UTC"
    if started >= changed:
        return True, f"{started_text}, after {changed_text}"
    return False, f"{started_text}, before {changed_text}: a restart was lost"


def sysctl_value(host: Any, key: str, want: str) -> ProbeResult:
    value = _stat(lambda: host.sysctl(key))
    if value is None:
        return False, "unknown key"
    value = " ".join(value.split())
    return value == want, value


def sysctl_persisted(host: Any, path: str, want: str) -> ProbeResult:
    """`want` (`key = value`) is the one line of `path` that sets the key."""
    key, _, value = want.partition(" = ")
    answer = host.run("cat -- %s", path)
    if answer.rc != 0:
        return False, f"{path} missing"
    content = str(answer.stdout)
    setting = re.compile(r"^\s*-?" + re.escape(key) + r"\s*=(.*)$")
    found = [m.group(1) for m in map(setting.match, content.splitlines()) if m]
    values = [" ".join(v.split()) for v in found]
    if not values:
        return False, f"{key} not in {path}"
    shown = "; ".join(f"{key} = {v}" for v in values)
    return values == [value], shown if len(values) == 1 else f"{len(values)} lines: {shown}"


def user_present(host: Any, name: str, want: str) -> ProbeResult:
    exists = bool(host.user(name).exists)
    return exists, "present" if exists else "absent"


def user_absent(host: Any, name: str, want: str) -> ProbeResult:
    exists = bool(host.user(name).exists)
    return not exists, "present" if exists else "absent"


def _user_field(host: Any, name: str, field: str) -> str | None:
    return _stat(lambda: getattr(host.user(name), field))


def user_uid(host: Any, name: str, want: str) -> ProbeResult:
    uid = _user_field(host, name, "uid")
    return uid == want, uid or "no such user"


def user_group(host: Any, name: str, want: str) -> ProbeResult:
    group = _user_field(host, name, "group")
    return group == want, group or "no such user"


def user_groups(host: Any, name: str, want: str) -> ProbeResult:
    try:
        groups = list(host.user(name).groups)
    except AssertionError:
        return False, "no such user"
    missing = [g for g in want.split(",") if g not in groups]
    return not missing, "member of " + ",".join(groups) + (
        f" (missing {','.join(missing)})" if missing else ""
    )


def user_groups_exact(host: Any, name: str, want: str) -> ProbeResult:
    """The supplementary groups (all but the primary group) are exactly `want`."""
    try:
        user = host.user(name)
        groups, primary = list(user.groups), str(user.group)
    except AssertionError:
        return False, "no such user"
    wanted = {g for g in want.split(",") if g}
    have = sorted(set(groups) - {primary})
    extra, missing = sorted(set(have) - wanted), sorted(wanted - set(have))
    notes = [f"not in {','.join(missing)}"] if missing else []
    notes += [f"also in {','.join(extra)}"] if extra else []
    shown = ",".join(have) or "no supplementary group"
    return not notes, shown + (f" ({'; '.join(notes)})" if notes else "")


def user_home_exists(host: Any, home: str, want: str) -> ProbeResult:
    return path_directory(host, home, want)


def user_password(host: Any, name: str, digest: str) -> ProbeResult:
    """The /etc/shadow hash matches, compared by its sha256 on the host's side of the wire:
    neither the hash nor anything of it but that digest leaves the host."""
    answer = host.run(
        "getent shadow %s >/dev/null && getent shadow %s | cut -d: -f2 | tr -d '\\n' | sha256sum",
        name,
        name,
    )
    if answer.rc != 0:
        return False, "no such user in /etc/shadow"
    matches = answer.stdout.split()[:1] == [digest]
    return matches, "the policy's hash" if matches else "a different hash"


def group_present(host: Any, name: str, want: str) -> ProbeResult:
    exists = bool(host.group(name).exists)
    return exists, "present" if exists else "absent"


def group_absent(host: Any, name: str, want: str) -> ProbeResult:
    exists = bool(host.group(name).exists)
    return not exists, "present" if exists else "absent"


def group_gid(host: Any, name: str, want: str) -> ProbeResult:
    gid = _stat(lambda: host.group(name).gid)
    return gid == want, gid or "no such group"


def user_home(host: Any, name: str, want: str) -> ProbeResult:
    home = _user_field(host, name, "home")
    return home == want, home if home is not None else "no such user"


def user_shell(host: Any, name: str, want: str) -> ProbeResult:
    shell = _user_field(host, name, "shell")
    return shell == want, shell if shell is not None else "no such user"


def command_creates(host: Any, path: str, want: str) -> ProbeResult:
    exists = bool(host.file(path).exists)
    return exists, "exists" if exists else "missing"


def command_unless(host: Any, command: str, want: str) -> ProbeResult:
    status = host.run(command).rc
    return status == 0, f"exit status {status}"


PROBES: dict[str, Callable[[Any, str, str], ProbeResult]] = {
    "package.installed": package_installed,
    "package.version": package_version,
    "package.absent": package_absent,
    "package.held": package_held,
    "package.latest": package_latest,
    "patch.fixed": patch_fixed,
    "path.file": path_file,
    "path.directory": path_directory,
    "path.sha256": path_sha256,
    "path.owner": path_owner,
    "path.group": path_group,
    "path.mode": path_mode,
    "service.running": service_running,
    "service.stopped": service_stopped,
    "service.enabled": service_enabled,
    "service.disabled": service_disabled,
    "service.restarted": service_restarted,
    "sysctl.value": sysctl_value,
    "sysctl.persisted": sysctl_persisted,
    "user.present": user_present,
    "user.absent": user_absent,
    "user.uid": user_uid,
    "user.group": user_group,
    "user.groups": user_groups,
    "user.groups_exact": user_groups_exact,
    "user.home": user_home,
    "user.home_exists": user_home_exists,
    "user.shell": user_shell,
    "user.password": user_password,
    "group.present": group_present,
    "group.absent": group_absent,
    "group.gid": group_gid,
    "command.creates": command_creates,
    "command.unless": command_unless,
}
