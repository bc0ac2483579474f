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

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from debian.debian_support import version_compare

from orchestrator.openpgp import OpenPGPError, key_fingerprints  # export.py inlines it

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


def path_openpgp_key(host: Any, path: str, want: str) -> ProbeResult:
    """The keyring at `path` holds the OpenPGP key with fingerprint `want`."""
    try:
        data = host.file(path).content
    except AssertionError:  # testinfra: cat failed (no such file)
        return False, "missing"
    try:
        held = key_fingerprints(data)
    except OpenPGPError as error:
        return False, f"not a public key ({error})"
    return want in held, "key " + ", ".join(held)


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


# --- Settings, lines and blocks inside a file --------------------------------------------------
# One reading of these formats serves both the edits (`drift.textedit` imports these functions)
# and the checks below, so an edit and the check of it cannot disagree about a file.
SECTION_HEADER = re.compile(r"^\s*\[([^\]]*)\]\s*$")
_SPACE_SETTING = re.compile(r"^(\s*)([^\s#]\S*)(?:(\s+)(.*?))?\s*$")
_EQUALS_SETTING = re.compile(r"^(\s*)([^\s#;=\[][^=]*?)(\s*=\s*)(.*?)\s*$")
_MATCH_BLOCK = re.compile(r"^\s*Match\s", re.IGNORECASE)


def split_lines(text: str) -> list[str]:
    """The lines of `text`, each with its newline (the last may lack one); only `\n` splits."""
    parts = text.split("\n")  # str.split, not a regular expression: this runs per edit, per host
    lines = [part + "\n" for part in parts[:-1]]
    return [*lines, parts[-1]] if parts[-1] else lines


def setting_parts(body: str, fmt: str) -> tuple[str, str, str, str] | None:
    """(indent, key as written, separator, value) of an active setting line, None for any
    other line (blank, comment, section header)."""
    m = (_SPACE_SETTING if fmt == "space" else _EQUALS_SETTING).match(body)
    if not m or (fmt == "ini" and SECTION_HEADER.match(body)):
        return None
    return (m.group(1), m.group(2), m.group(3) or "", m.group(4) or "")


def same_key(written: str, key: str, fmt: str) -> bool:
    """sshd reads `key value` keywords case-insensitively; `=` and INI keys are exact."""
    return written.lower() == key.lower() if fmt == "space" else written == key


def setting_scope(bodies: list[str], fmt: str, section: str | None) -> list[range]:
    """Where a key of `section` lives: INI, every stretch under a `[section]` header (the part
    before the first header when no section is named); `space`, the lines before sshd's first
    `Match` block (keys inside one are conditional, never edited); `equals`, the whole file."""
    if fmt == "space":
        end = next(
            (i for i, b in enumerate(bodies) if b.lstrip()[:1] in "mM" and _MATCH_BLOCK.match(b)),
            len(bodies),
        )
        return [range(0, end)]
    if fmt != "ini":
        return [range(0, len(bodies))]
    ranges: list[range] = []
    current, start = None, 0
    for index, body in enumerate(bodies):
        header = SECTION_HEADER.match(body)
        if header:
            if current == section:
                ranges.append(range(start, index))
            current, start = header.group(1).strip(), index + 1
    if current == section:
        ranges.append(range(start, len(bodies)))
    return ranges


def line_bodies(text: str) -> list[str]:
    """The lines of `text` without their newlines (as `split_lines` cuts them)."""
    parts = text.split("\n")
    return parts if parts[-1] else parts[:-1]


def find_setting(
    bodies: list[str], fmt: str, section: str | None, key: str
) -> list[tuple[int, str]]:
    """(line index, value) of every active line setting `key` in `section`."""
    found = []
    # A line sets `key` only if it contains it (in any case, for sshd's keywords): testing that
    # first skips the regular expressions on nearly every line (a no-change plan runs this for
    # each setting of each host, over the whole file).
    wanted = key.lower() if fmt == "space" else key
    for scope in setting_scope(bodies, fmt, section):
        for index in scope:
            body = bodies[index]
            if wanted not in (body.lower() if fmt == "space" else body):
                continue
            parts = setting_parts(body, fmt)
            if parts is not None and same_key(parts[1], key, fmt):
                found.append((index, parts[3]))
    return found


def block_markers(marker: str, name: str) -> tuple[str, str]:
    """The BEGIN and END lines of a block: `{mark}` and `{name}` of its marker filled in."""
    named = marker.replace("{name}", name)
    return named.replace("{mark}", "BEGIN"), named.replace("{mark}", "END")


def find_block(bodies: list[str], begin: str, end: str) -> tuple[int, int] | None:
    """Line indexes of the BEGIN and END markers of a block, None when there is no BEGIN;
    raises ValueError for a BEGIN without its END."""
    start = next((i for i, b in enumerate(bodies) if b.strip() == begin.strip()), None)
    if start is None:
        return None
    stop = next(
        (i for i in range(start + 1, len(bodies)) if bodies[i].strip() == end.strip()), None
    )
    if stop is None:
        raise ValueError(f"line {start + 1} opens the block ({begin!r}) but no {end!r} follows")
    return start, stop


def _shown_lines(bodies: list[str], indexes: list[int], limit: int = 5) -> str:
    shown = [f"line {i + 1}: {bodies[i]!r}" for i in indexes[:limit]]
    more = f" (and {len(indexes) - limit} more)" if len(indexes) > limit else ""
    return "; ".join(shown) + more


def _file_text(host: Any, path: str) -> str | None:
    try:
        return str(host.file(path).content_string)
    except AssertionError:  # testinfra: cat failed (no such file)
        return None


def setting_value(host: Any, path: str, want: str) -> ProbeResult:
    """`want` is JSON: [format, section, key, value]; every active line of the key has it."""
    fmt, section, key, value = json.loads(want)
    text = _file_text(host, path)
    if text is None:
        return False, f"{path} missing"
    bodies = line_bodies(text)
    found = find_setting(bodies, fmt, section, key)
    if not found:
        return False, f"no active {key} line"
    ok = all(have == value for _, have in found)
    return ok, _shown_lines(bodies, [i for i, _ in found])


def setting_absent(host: Any, path: str, want: str) -> ProbeResult:
    fmt, section, key, _value = json.loads(want)
    text = _file_text(host, path)
    if text is None:
        return True, f"{path} missing"
    bodies = line_bodies(text)
    found = find_setting(bodies, fmt, section, key)
    return not found, _shown_lines(bodies, [i for i, _ in found]) if found else f"no {key} line"


def line_present(host: Any, path: str, want: str) -> ProbeResult:
    """`want` is JSON: [line, match]; the line is there, and every line `match` finds is it."""
    line, match = json.loads(want)
    text = _file_text(host, path)
    if text is None:
        return False, f"{path} missing"
    bodies = line_bodies(text)
    matching = [i for i, b in enumerate(bodies) if match is not None and re.search(match, b)]
    other = [i for i in matching if bodies[i] != line]
    if other:
        return False, _shown_lines(bodies, other)
    exact = [i for i, b in enumerate(bodies) if b == line]
    return bool(exact), _shown_lines(bodies, exact) if exact else "line not found"


def line_absent(host: Any, path: str, want: str) -> ProbeResult:
    line, match = json.loads(want)
    text = _file_text(host, path)
    if text is None:
        return True, f"{path} missing"
    bodies = line_bodies(text)
    found = [
        i for i, b in enumerate(bodies) if (re.search(match, b) if match is not None else b == line)
    ]
    return not found, _shown_lines(bodies, found) if found else "no such line"


def block_present(host: Any, path: str, want: str) -> ProbeResult:
    """`want` is JSON: [begin marker, end marker, content]; the lines between are the content."""
    begin, end, content = json.loads(want)
    text = _file_text(host, path)
    if text is None:
        return False, f"{path} missing"
    bodies = line_bodies(text)
    try:
        span = find_block(bodies, begin, end)
    except ValueError as error:
        return False, str(error)
    if span is None:
        return False, f"no {begin!r} line"
    inner, wanted = bodies[span[0] + 1 : span[1]], line_bodies(content)
    where = f"lines {span[0] + 1}-{span[1] + 1}"
    if inner == wanted:
        return True, f"{where}: the block"
    first = next((i for i, (a, b) in enumerate(zip(inner, wanted, strict=False)) if a != b), None)
    at = min(len(inner), len(wanted)) if first is None else first
    seen = repr(inner[at]) if at < len(inner) else "the END marker"
    return False, f"{where}: block line {at + 1} is {seen}"


def block_absent(host: Any, path: str, want: str) -> ProbeResult:
    begin, end, _content = json.loads(want)
    text = _file_text(host, path)
    if text is None:
        return True, f"{path} missing"
    bodies = line_bodies(text)
    found = [i for i, b in enumerate(bodies) if b.strip() in (begin.strip(), end.strip())]
    return not found, _shown_lines(bodies, found) if found else "no block markers"


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
    "path.openpgp_key": path_openpgp_key,
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
    "setting.value": setting_value,
    "setting.absent": setting_absent,
    "line.present": line_present,
    "line.absent": line_absent,
    "block.present": block_present,
    "block.absent": block_absent,
}
