"""Parsers for what a host prints about its packages: pure functions from text to models.

Each parser reads one command's output (`dpkg-query -W`, `apt-get -s dist-upgrade`, bare
`apt-cache policy`, the `/proc/*/maps` ` (deleted)` scan, `/proc/*/cgroup`, `/etc/os-release`,
`/run/reboot-required.pkgs`, the `/boot/vmlinuz-*` names, apt list mtimes). Host output is never
trusted: a line a parser does not understand is skipped and counted, never raised. The command
lines the probe must run are the constants `*_COMMAND`. Imports only the package's model and
`patching.versions`; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from orchestrator.model.patching import (
    AptOrigin,
    HostAssessment,
    InstalledPackage,
    PendingUpdate,
    RebootStatus,
    StaleProcess,
)
from orchestrator.patching.versions import compare_versions, is_debian_version, newest

T = TypeVar("T")

INSTALLED_COMMAND = (
    "dpkg-query -W -f='${db:Status-Abbrev} ${binary:Package} ${Version} "
    "${source:Package} ${source:Version} ${Architecture}\\n'"
)
SIMULATE_COMMAND = (
    "LC_ALL=C apt-get -s -o Dir::Log::Planner=/dev/null "
    "-o APT::Get::Show-User-Simulation-Note=false dist-upgrade"
)
POLICY_COMMAND = "LC_ALL=C apt-cache policy"
DELETED_MAPS_COMMAND = "grep -H ' (deleted)$' /proc/[0-9]*/maps"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_STATUS = re.compile(r"^[a-z][a-zA-Z][ R]$")
_ARCH = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_INST = re.compile(r"^Inst (\S+) (?:\[([^\]]+)\] )?\((\S+) (.+?)(?: \[([^\]]+)\])?\)")
_MAPS = re.compile(r"^/proc/([0-9]+)/maps:\S+ \S+ \S+ \S+ \S+\s+(/.*) \(deleted\)$")
_LATEST_EPOCH = 253_402_300_799  # 9999-12-31T23:59:59Z
_KERNEL_BUILD = re.compile(r"\bDebian (\S+)")
_CGROUP = re.compile(r"^/proc/([0-9]+)/cgroup:[^:]*:[^:]*:(.*)$")
_UNIT_SUFFIXES = (".service", ".scope", ".socket", ".mount", ".timer")
# Deleted mappings every host has that no upgrade explains: shared memory and devices.
_IGNORED_DELETED = ("/memfd:", "/dev/", "/SYSV", "/run/", "/tmp/", "/var/tmp/", "/dev/shm/")


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """What a parser understood, and how many lines it had to skip."""

    items: tuple[T, ...]
    skipped: int = 0


def _package_name(text: str) -> tuple[str, str | None]:
    """(`libssl3`, `amd64`) from `libssl3:amd64`; the qualifier is None when absent."""
    name, colon, arch = text.partition(":")
    return name, (arch if colon else None)


def parse_installed(text: str) -> Parsed[InstalledPackage]:
    """Installed packages from `INSTALLED_COMMAND` output; only installed ones without error
    count (`ii `, and `hi ` for a held package), others (`rc`, half-installed) are ignored.
    Names lose their `:arch` qualifier (the architecture is its own field), so they join
    `apt-get -s` lines, which omit it for the native architecture."""
    found: list[InstalledPackage] = []
    skipped = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        status, fields = line[:3], line[3:].split()
        if not _STATUS.match(status):
            skipped += 1
            continue
        if status[1:] != "i ":
            continue
        if len(fields) != 5:
            skipped += 1
            continue
        binary, version, source, source_version, arch = fields
        name, _ = _package_name(binary)
        valid = (
            _NAME.match(name)
            and _NAME.match(source)
            and _ARCH.match(arch)
            and is_debian_version(version)
            and is_debian_version(source_version)
        )
        if not valid:
            skipped += 1
            continue
        found.append(
            InstalledPackage(
                name=name,
                version=version,
                architecture=arch,
                source=source,
                source_version=source_version,
            )
        )
    return Parsed(tuple(found), skipped)


def parse_release_string(text: str) -> AptOrigin:
    """One `REL` of an `Inst` line: `Label:Version/Archive`, `Label:Archive`, `Version/Archive`
    or `Archive` (apt's `RelStr`; a repository without a Release file shows its site instead)."""
    label, colon, rest = text.partition(":")
    if not colon:
        label, rest = "", text
    version, slash, archive = rest.rpartition("/")
    if not slash:
        version, archive = "", rest
    return AptOrigin(label=label, version=version, archive=archive)


def parse_simulated_upgrade(text: str) -> Parsed[PendingUpdate]:
    """Pending updates from `SIMULATE_COMMAND` output. Only `Inst` lines matter (`Conf`, `Remv`
    and apt's chatter are ignored); an `Inst` line that does not parse is skipped and counted.
    Origins carry only label, version and archive here: `enrich_origins` adds the rest."""
    found: list[PendingUpdate] = []
    skipped = 0
    for line in text.splitlines():
        if not line.startswith("Inst "):
            continue
        match = _INST.match(line)
        if match is None:
            skipped += 1
            continue
        package, installed, candidate, releases, arch = match.groups()
        name, qualifier = _package_name(package)
        arch = arch or qualifier or ""
        valid = (
            _NAME.match(name)
            and is_debian_version(candidate)
            and (installed is None or is_debian_version(installed))
            and (not arch or _ARCH.match(arch))
        )
        if not valid:
            skipped += 1
            continue
        origins = tuple(parse_release_string(part) for part in releases.split(", ") if part)
        found.append(
            PendingUpdate(
                package=name,
                installed_version=installed,
                candidate_version=candidate,
                architecture=arch,
                origins=origins,
            )
        )
    return Parsed(tuple(found), skipped)


_RELEASE_KEYS = {
    "o": "origin",
    "l": "label",
    "a": "archive",
    "n": "codename",
    "c": "component",
    "v": "version",
}


def parse_policy_releases(text: str) -> Parsed[AptOrigin]:
    """Every repository of bare `apt-cache policy`: its `release v=…,o=…,a=…,n=…,l=…,c=…` line
    and the `origin SITE` line after it. The dpkg status pseudo-repository (`a=now`) is left out.
    """
    found: list[AptOrigin] = []
    skipped = 0
    current: dict[str, str] | None = None

    def flush() -> None:
        if current is not None and current.get("archive") != "now":
            found.append(AptOrigin(**current))

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("release "):
            flush()
            current = {}
            for term in stripped.removeprefix("release ").split(","):
                key, equals, value = term.partition("=")
                if not equals:
                    skipped += 1
                    current = None
                    break
                if key in _RELEASE_KEYS:
                    current[_RELEASE_KEYS[key]] = value
        elif stripped.startswith("origin ") and current is not None:
            current["site"] = stripped.removeprefix("origin ").strip()
            flush()
            current = None
    flush()
    return Parsed(tuple(found), skipped)


def enrich_origins(
    updates: Iterable[PendingUpdate], releases: Sequence[AptOrigin]
) -> tuple[PendingUpdate, ...]:
    """Replace each `Inst` origin (label, version, archive) by the full repositories
    `apt-cache policy` lists for it (origin, codename, component, site). `Inst` lines do not say
    which component, so an archive with several components gives one origin per component; an
    origin no repository matches is kept as it is."""
    by_key: dict[tuple[str, str, str], list[AptOrigin]] = {}
    for release in releases:
        key = (release.label, release.version, release.archive)
        if release not in by_key.setdefault(key, []):
            by_key[key].append(release)
    enriched: list[PendingUpdate] = []
    for update in updates:
        origins: list[AptOrigin] = []
        for origin in update.origins:
            for full in by_key.get((origin.label, origin.version, origin.archive), [origin]):
                if full not in origins:
                    origins.append(full)
        enriched.append(update.model_copy(update={"origins": tuple(origins)}))
    return tuple(enriched)


def parse_deleted_maps(text: str) -> Parsed[tuple[int, str]]:
    """(pid, deleted file) pairs from `DELETED_MAPS_COMMAND` output, each once, skipping
    shared-memory, device and temporary files that every host maps."""
    found: dict[tuple[int, str], None] = {}
    skipped = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _MAPS.match(line)
        if match is None:
            skipped += 1
            continue
        path = match.group(2).strip()
        if not path.startswith(_IGNORED_DELETED):
            found[(int(match.group(1)), path)] = None
    return Parsed(tuple(found), skipped)


def parse_process_units(text: str) -> Parsed[tuple[int, str]]:
    """(pid, systemd unit) from `grep -H '' /proc/PID/cgroup` output: the innermost cgroup path
    component that names a unit (`/system.slice/nginx.service` -> `nginx.service`)."""
    found: dict[int, str] = {}
    skipped = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        match = _CGROUP.match(line)
        if match is None:
            skipped += 1
            continue
        units = [part for part in match.group(2).split("/") if part.endswith(_UNIT_SUFFIXES)]
        if units:
            found.setdefault(int(match.group(1)), units[-1])
    return Parsed(tuple(found.items()), skipped)


def group_stale_processes(
    deleted: Iterable[tuple[int, str]], units: Mapping[int, str]
) -> tuple[StaleProcess, ...]:
    """One `StaleProcess` per pid, with its unit when known, sorted by pid."""
    files: dict[int, list[str]] = {}
    for pid, path in deleted:
        files.setdefault(pid, []).append(path)
    return tuple(
        StaleProcess(pid=pid, unit=units.get(pid, ""), deleted_files=tuple(sorted(paths)))
        for pid, paths in sorted(files.items())
    )


def parse_os_release(text: str) -> str:
    """VERSION_CODENAME from /etc/os-release (quotes removed), or '' when it has none."""
    for line in text.splitlines():
        key, equals, value = line.strip().partition("=")
        if equals and key == "VERSION_CODENAME":
            return value.strip().strip("\"'")
    return ""


def parse_reboot_packages(text: str) -> tuple[str, ...]:
    """The names in /run/reboot-required.pkgs, each once, in file order."""
    names = [line.strip() for line in text.splitlines()]
    return tuple(dict.fromkeys(name for name in names if _NAME.match(name)))


def newest_kernel(boot_files: str) -> str:
    """The newest kernel release among `/boot/vmlinuz-*` names (one per line), or ''."""
    releases = [
        line.strip().rsplit("/", 1)[-1].removeprefix("vmlinuz-")
        for line in boot_files.splitlines()
        if line.strip().rsplit("/", 1)[-1].startswith("vmlinuz-")
    ]
    valid = [release for release in releases if is_debian_version(release)]
    return newest(valid) if valid else ""


def _abi_rebuild(kernel_build: str, installed_package_version: str) -> bool:
    """An ABI-compatible kernel upgrade keeps `uname -r` and changes only `uname -v`
    (`#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)`): compare that Debian version with
    the installed `linux-image-$(uname -r)` package's version."""
    match = _KERNEL_BUILD.search(kernel_build)
    installed = installed_package_version.strip()
    if match is None or not is_debian_version(installed) or not is_debian_version(match[1]):
        return False
    return compare_versions(installed, match[1]) > 0


def reboot_status(
    flag: bool,
    packages_text: str,
    running_kernel: str,
    boot_files: str,
    kernel_build: str = "",
    kernel_package_version: str = "",
) -> RebootStatus:
    """The reboot facts: the flag file, its packages, and whether a newer kernel is installed
    than the one running: a newer `/boot/vmlinuz-*` (Debian ordering: `6.1.0-10` is newer than
    `6.1.0-9`), or a newer build of the running release (`kernel_build` is `uname -v`,
    `kernel_package_version` the version of `linux-image-$(uname -r)`)."""
    running = running_kernel.strip()
    latest = newest_kernel(boot_files)
    outdated = bool(
        running and latest and is_debian_version(running) and compare_versions(latest, running) > 0
    ) or _abi_rebuild(kernel_build, kernel_package_version)
    return RebootStatus(
        required_flag=flag,
        packages=parse_reboot_packages(packages_text),
        running_kernel=running,
        newest_kernel=latest,
        kernel_outdated=outdated,
    )


def parse_lists_mtime(text: str) -> datetime | None:
    """The newest of `stat -c %Y` epoch seconds (one per line) as UTC, or None; a value no
    clock can hold (before 1970 or after 9999) is ignored."""
    stamps = [int(line) for line in (raw.strip() for raw in text.splitlines()) if line.isdigit()]
    usable = [stamp for stamp in stamps if stamp < _LATEST_EPOCH]
    return datetime.fromtimestamp(max(usable), UTC) if usable else None


@dataclass(frozen=True)
class ProbeOutput:
    """The raw texts one probe of one host returns (empty when a command printed nothing)."""

    os_release: str = ""
    installed: str = ""
    simulated_upgrade: str = ""
    policy: str = ""
    reboot_required: bool = False
    reboot_packages: str = ""
    running_kernel: str = ""
    boot_files: str = ""
    kernel_build: str = ""
    kernel_package_version: str = ""
    deleted_maps: str = ""
    cgroups: str = ""
    lists_mtimes: str = ""


def build_assessment(host: str, output: ProbeOutput, assessed_at: datetime) -> HostAssessment:
    """The whole assessment of one host from its probe output; never raises on bad output
    (what no parser understood is counted in `skipped_lines`)."""
    installed = parse_installed(output.installed)
    pending = parse_simulated_upgrade(output.simulated_upgrade)
    releases = parse_policy_releases(output.policy)
    deleted = parse_deleted_maps(output.deleted_maps)
    units = parse_process_units(output.cgroups)
    skipped = (
        installed.skipped + pending.skipped + releases.skipped + deleted.skipped + units.skipped
    )
    return HostAssessment(
        host=host,
        codename=parse_os_release(output.os_release),
        assessed_at=assessed_at,
        installed=installed.items,
        pending=enrich_origins(pending.items, releases.items),
        reboot=reboot_status(
            output.reboot_required,
            output.reboot_packages,
            output.running_kernel,
            output.boot_files,
            output.kernel_build,
            output.kernel_package_version,
        ),
        stale_processes=group_stale_processes(deleted.items, dict(units.items)),
        lists_updated_at=parse_lists_mtime(output.lists_mtimes),
        skipped_lines=skipped,
    )
