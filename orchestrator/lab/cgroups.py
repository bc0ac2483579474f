"""The lab's cgroups: one per host (and one for the apt HTTP server) under `patchring/<lab>/`.

Works with the hybrid layout (cgroup v1 `name=systemd` plus the v2 unified hierarchy at
`/sys/fs/cgroup/unified`) and with a pure v2 machine. A unit's cgroup exists in every hierarchy
found; the v2 one gives `cgroup.freeze` and `cgroup.kill`. Processes are listed recursively, since
systemd-nspawn and the hosts' own systemd create sub-cgroups. Imports only `orchestrator.errors`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import LabError

from .config import CGROUP_PREFIX


@dataclass(frozen=True)
class CgroupRoots:
    """Mount points of the v2 unified hierarchy and of the v1 `name=systemd` one (if any)."""

    unified: Path
    named_systemd: Path | None

    def all(self) -> tuple[Path, ...]:
        return (self.unified,) if self.named_systemd is None else (self.unified, self.named_systemd)


def find_roots() -> CgroupRoots:
    unified: Path | None = None
    named: Path | None = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype, _source, options = ([*right.split(), "", ""])[:3]
        mount_point = Path(left.split()[4])
        if fstype == "cgroup2" and unified is None:
            unified = mount_point
        elif fstype == "cgroup" and "name=systemd" in options.split(","):
            named = mount_point
    if unified is None:
        raise LabError(
            "no cgroup v2 (unified) hierarchy is mounted",
            hint="mount one: mkdir -p /sys/fs/cgroup/unified && "
            "mount -t cgroup2 none /sys/fs/cgroup/unified",
        )
    return CgroupRoots(unified=unified, named_systemd=named)


def lab_dirs(roots: CgroupRoots, lab: str) -> tuple[Path, ...]:
    return tuple(root / CGROUP_PREFIX / lab for root in roots.all())


def unit_dirs(roots: CgroupRoots, lab: str, unit: str) -> tuple[Path, ...]:
    """The cgroup of one unit (a host name, or "apt-http") in every hierarchy; v2 first."""
    return tuple(path / unit for path in lab_dirs(roots, lab))


def create(dirs: tuple[Path, ...]) -> None:
    for path in dirs:
        path.mkdir(parents=True, exist_ok=True)


def pids(path: Path) -> set[int]:
    """Every process in this cgroup and its descendants (empty if the cgroup does not exist)."""
    found: set[int] = set()
    if not path.is_dir():
        return found
    for directory, _subdirs, files in os.walk(path):
        if "cgroup.procs" in files:
            with contextlib.suppress(OSError):
                found.update(
                    int(pid) for pid in Path(directory, "cgroup.procs").read_text().split()
                )
    return found


def pids_in(dirs: tuple[Path, ...]) -> set[int]:
    found: set[int] = set()
    for path in dirs:
        found |= pids(path)
    return found


def set_frozen(unified_dir: Path, frozen: bool, timeout: float = 5.0) -> None:
    """Freeze or thaw a v2 cgroup and wait until the kernel reports it done."""
    freeze_file = unified_dir / "cgroup.freeze"
    if not freeze_file.exists():
        raise LabError(f"cgroup {unified_dir} does not exist or cannot be frozen")
    freeze_file.write_text("1\n" if frozen else "0\n")
    deadline = time.monotonic() + timeout
    want = "frozen 1" if frozen else "frozen 0"
    while time.monotonic() < deadline:
        if want in (unified_dir / "cgroup.events").read_text().splitlines():
            return
        time.sleep(0.01)
    raise LabError(
        f"cgroup {unified_dir} did not become {'frozen' if frozen else 'thawed'} in {timeout} s"
    )


def is_frozen(unified_dir: Path) -> bool:
    try:
        return "frozen 1" in (unified_dir / "cgroup.events").read_text().splitlines()
    except OSError:
        return False


def thaw_tree(unified_dir: Path) -> None:
    """Thaw a cgroup and every descendant frozen on its own (before stopping what is inside)."""
    if not unified_dir.is_dir():
        return
    for directory, _subdirs, files in os.walk(unified_dir):
        if "cgroup.freeze" in files:
            with contextlib.suppress(OSError):
                freeze_file = Path(directory, "cgroup.freeze")
                if freeze_file.read_text().strip() == "1":
                    freeze_file.write_text("0\n")


def kill(dirs: tuple[Path, ...]) -> None:
    """SIGKILL everything in these cgroups: `cgroup.kill` where the kernel has it, else by PID."""
    for path in dirs:
        kill_file = path / "cgroup.kill"
        if kill_file.exists():
            with contextlib.suppress(OSError):
                kill_file.write_text("1\n")
    for pid in pids_in(dirs):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_empty(dirs: tuple[Path, ...], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if not pids_in(dirs):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def remove(dirs: tuple[Path, ...], timeout: float = 3.0) -> list[Path]:
    """rmdir these cgroups and their descendants, deepest first; returns those that remain."""
    deadline = time.monotonic() + timeout
    while True:
        left: list[Path] = []
        for path in dirs:
            if not path.is_dir():
                continue
            for directory, _subdirs, _files in os.walk(path, topdown=False):
                try:
                    os.rmdir(directory)
                except OSError as exc:
                    if exc.errno != errno.ENOENT:
                        left.append(Path(directory))
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)
