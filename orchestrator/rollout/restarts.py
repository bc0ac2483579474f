"""Pure decisions for what follows an apply: reboot a host, restart its stale services, or
only report them, and when a rebooted host counts as back.

The probe (`RESTART_PROBE`, one remote command per host) reports the boot id, the flag
`/run/reboot-required` with its `.pkgs`, the processes still mapping deleted files with their
systemd units and the packages owning those files, and whether needrestart is installed.
`parse_restart_probe` reads it (host output is data: lines it does not understand are
skipped); `decide_reboot`, `stale_services` and `reboot_waves` decide, and `system_is_up`
reads `systemctl is-system-running`. Nothing here reads a clock or touches a host; the driver
is `rollout.reboots`. Imports `model` and `patching.probeparse` only.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from orchestrator.model.base import Frozen
from orchestrator.model.ring import RebootMode
from orchestrator.patching.probeparse import (
    DELETED_MAPS_COMMAND,
    group_stale_processes,
    parse_deleted_maps,
    parse_process_units,
    parse_reboot_packages,
)

SECTION = "@@patchring-restarts "
_SECTIONS: tuple[tuple[str, str], ...] = (
    ("boot_id", "cat /proc/sys/kernel/random/boot_id"),
    ("reboot_required", "if [ -e /run/reboot-required ]; then echo yes; else echo no; fi"),
    ("reboot_packages", "cat /run/reboot-required.pkgs 2>/dev/null; true"),
    ("deleted_maps", f"{DELETED_MAPS_COMMAND} 2>/dev/null; true"),
    (
        "cgroups",
        "for p in $(grep -l ' (deleted)$' /proc/[0-9]*/maps 2>/dev/null"
        " | sed -n 's#^/proc/\\([0-9]*\\)/maps$#\\1#p'); do"
        ' grep -H "" "/proc/$p/cgroup" 2>/dev/null; done; true',
    ),
    (
        # which package owns each deleted file (its new version installed the same path)
        "owners",
        "grep -h ' (deleted)$' /proc/[0-9]*/maps 2>/dev/null | awk '{print $6}' | sort -u"
        ' | while read -r f; do dpkg-query -S "$f" 2>/dev/null; done; true',
    ),
    ("needrestart", "command -v needrestart || true"),
)
RESTART_PROBE = "; ".join(
    f"echo {shlex.quote(SECTION + name)}; {command}" for name, command in _SECTIONS
)
BOOT_ID_COMMAND = "cat /proc/sys/kernel/random/boot_id; systemctl is-system-running || true"
UP_STATES = ("running", "degraded")
# Units a restart would take the host's own plumbing down with: they need a reboot instead.
_NEVER_RESTARTED = ("dbus.service", "dbus-broker.service", "systemd-", "user@", "getty@")


class StaleService(Frozen):
    """A systemd service whose processes still map files an upgrade deleted."""

    unit: str
    deleted_files: tuple[str, ...]
    packages: tuple[str, ...] = ()


class RestartNeeds(Frozen):
    """One host's probe: its boot, whether it asks for a reboot (and for which packages),
    the services on deleted files, and whether needrestart is there."""

    boot_id: str
    reboot_required: bool = False
    reboot_packages: tuple[str, ...] = ()
    services: tuple[StaleService, ...] = ()
    unknown_processes: tuple[int, ...] = ()
    needrestart: bool = False


class RebootDecision(Frozen):
    reboot: bool
    reason: str = ""


def _sections(output: str) -> dict[str, str]:
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith(SECTION):
            current = found.setdefault(line.removeprefix(SECTION).strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines) for name, lines in found.items()}


def _owners(text: str) -> dict[str, tuple[str, ...]]:
    """path -> packages from `dpkg-query -S` lines (`libacme1:amd64: /usr/lib/...`)."""
    owners: dict[str, tuple[str, ...]] = {}
    for line in text.splitlines():
        names, sep, path = line.partition(": ")
        if sep and path.startswith("/"):
            packages = tuple(n.strip().split(":")[0] for n in names.split(",") if n.strip())
            owners[path.strip()] = packages
    return owners


def parse_restart_probe(output: str) -> RestartNeeds:
    parts = _sections(output)
    deleted = parse_deleted_maps(parts.get("deleted_maps", "")).items
    units = dict(parse_process_units(parts.get("cgroups", "")).items)
    owners = _owners(parts.get("owners", ""))
    by_unit: dict[str, set[str]] = {}
    unknown: list[int] = []
    for process in group_stale_processes(deleted, units):
        if process.unit.endswith(".service"):
            by_unit.setdefault(process.unit, set()).update(process.deleted_files)
        else:
            unknown.append(process.pid)
    services = tuple(
        StaleService(
            unit=unit,
            deleted_files=tuple(sorted(files)),
            packages=tuple(sorted({p for f in files for p in owners.get(f, ())})),
        )
        for unit, files in sorted(by_unit.items())
    )
    return RestartNeeds(
        boot_id=parts.get("boot_id", "").strip(),
        reboot_required=parts.get("reboot_required", "").strip() == "yes",
        reboot_packages=parse_reboot_packages(parts.get("reboot_packages", "")),
        services=services,
        unknown_processes=tuple(unknown),
        needrestart=bool(parts.get("needrestart", "").strip()),
    )


def decide_reboot(mode: RebootMode, needs: RestartNeeds) -> RebootDecision:
    """Whether to reboot after apply, and why (the packages that asked for it). `never`
    never reboots; its reason still says a reboot is needed, so it is reported."""
    packages = ", ".join(needs.reboot_packages)
    needed = ""
    if needs.reboot_required:
        needed = f"/run/reboot-required ({packages})" if packages else "/run/reboot-required"
    if mode == "always":
        return RebootDecision(
            reboot=True, reason="; ".join(filter(None, ["reboot: always", needed]))
        )
    if not needed:
        return RebootDecision(reboot=False)
    if mode == "if-required":
        return RebootDecision(reboot=True, reason=needed)
    return RebootDecision(reboot=False, reason=f"{needed}; not rebooted (reboot: never)")


def restartable(unit: str) -> bool:
    """A service that may be restarted on its own (not the bus, systemd's own, sessions)."""
    return unit.endswith(".service") and not unit.startswith(_NEVER_RESTARTED)


def stale_services(needs: RestartNeeds) -> tuple[StaleService, ...]:
    """The services a restart would fix; the rest need a reboot."""
    return tuple(s for s in needs.services if restartable(s.unit))


def restart_command(needs: RestartNeeds) -> str | None:
    """The command that restarts the host's stale services: needrestart (automatic mode,
    libraries only) when installed, else `systemctl restart` of the detected units."""
    services = stale_services(needs)
    if not services:
        return None
    if needs.needrestart:
        return "NEEDRESTART_SUSPEND=1 needrestart -r a -l -q"
    return "systemctl restart -- " + " ".join(shlex.quote(s.unit) for s in services)


def reboot_waves(hosts: Sequence[str], max_rebooting: int) -> list[tuple[str, ...]]:
    """The hosts to reboot, in order, at most `max_rebooting` at once."""
    size = max(1, max_rebooting)
    return [tuple(hosts[i : i + size]) for i in range(0, len(hosts), size)]


def system_is_up(output: str, boot_id_before: str) -> bool:
    """Whether `BOOT_ID_COMMAND` output shows a host back from its reboot: a new boot id,
    and systemd running or degraded (not starting, not stopping)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if len(lines) < 2:
        return False
    return lines[0] != boot_id_before and lines[-1] in UP_STATES
