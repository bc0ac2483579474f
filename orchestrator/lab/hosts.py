"""Lab hosts: identity, upper layer, start (systemd-nspawn runner), stop, and sshd readiness.

Each host runs as a detached runner (`host-runner.sh` under `unshare --mount --propagation
private`) that has joined the host's cgroups before it forks anything; the runner mounts the
overlay (shared base image below, the host's own upper directory above) and loops
`systemd-nspawn -b` so `reboot` works. A host's identity (ed25519 host key, machine-id) is made
on the controller once per lab and written into its upper layer before every start, so a reset
host keeps its key and address. Stopping is SIGTERM to nspawn (a clean poweroff), then SIGKILL
of whatever is left in the host's cgroups. Imports only `orchestrator.errors` and siblings.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from orchestrator.errors import LabError

from . import cgroups
from .cgroups import CgroupRoots
from .config import HostPlan
from .state import HostRecord, LabPaths, ProcessRecord
from .system import process_alive, run_command, spawn_daemon, tail_file

RUNNER_ASSET = Path(__file__).with_name("assets") / "host-runner.sh"
STOP_GRACE = 10.0


def ensure_client_key(paths: LabPaths, lab: str) -> str:
    """The lab's ssh client key pair (made once per lab); returns the public key line."""
    if not paths.identity_file.exists():
        paths.root.mkdir(parents=True, exist_ok=True)
        run_command(
            [
                "ssh-keygen",
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                f"patchring-lab-{lab}",
                "-f",
                str(paths.identity_file),
            ]
        )
    paths.identity_file.chmod(0o600)
    return paths.identity_file.with_suffix(".pub").read_text().strip()


def ensure_host_identity(paths: LabPaths, host: str) -> tuple[Path, str]:
    """(private host key path, machine-id) of one host, made once per lab and kept."""
    paths.identities.mkdir(parents=True, exist_ok=True)
    key = paths.identities / f"{host}_ed25519"
    if not key.exists():
        run_command(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{host}", "-f", str(key)]
        )
    machine_id = paths.identities / f"{host}.machine-id"
    if not machine_id.exists():
        machine_id.write_text(uuid.uuid4().hex + "\n")
    return key, machine_id.read_text().strip()


def write_known_hosts(paths: LabPaths, plans: tuple[HostPlan, ...]) -> None:
    """Every host's key by address, for `StrictHostKeyChecking=yes`."""
    lines = []
    for plan in plans:
        public = (paths.identities / f"{plan.name}_ed25519.pub").read_text().split()
        lines.append(f"{plan.address} {public[0]} {public[1]}\n")
    paths.known_hosts.write_text("".join(lines))


def prepare_upper(
    paths: LabPaths, base: Path, plan: HostPlan, plans: tuple[HostPlan, ...], client_key: str
) -> None:
    """A fresh upper layer for the host holding only its identity files."""
    host_dir = paths.host_dir(plan.name)
    for part in ("upper", "work"):
        shutil.rmtree(host_dir / part, ignore_errors=True)
    for part in ("upper", "work", "merged"):
        (host_dir / part).mkdir(parents=True, exist_ok=True)
    key, machine_id = ensure_host_identity(paths, plan.name)
    hosts = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
    hosts += "".join(f"{other.address}\t{other.name}\n" for other in plans)
    files: dict[str, tuple[str, int]] = {
        "etc/hostname": (plan.name + "\n", 0o644),
        "etc/hosts": (hosts, 0o644),
        "etc/machine-id": (machine_id + "\n", 0o444),
        "etc/ssh/ssh_host_ed25519_key": (key.read_text(), 0o600),
        "etc/ssh/ssh_host_ed25519_key.pub": (key.with_suffix(".pub").read_text(), 0o644),
        "root/.ssh/authorized_keys": (client_key + "\n", 0o600),
    }
    upper = host_dir / "upper"
    for relative, (text, mode) in files.items():
        _make_dirs_like(base, upper, Path(relative).parent)
        target = upper / relative
        target.write_text(text)
        target.chmod(mode)


def _make_dirs_like(base: Path, upper: Path, relative: Path) -> None:
    """Create upper/relative with the mode and owner of the base's directory (overlayfs shows
    the upper directory's attributes); directories new to the base get 0700."""
    current = Path()
    for part in relative.parts:
        current = current / part
        target = upper / current
        if target.exists():
            continue
        target.mkdir()
        try:
            info = (base / current).stat()
            os.chown(target, info.st_uid, info.st_gid)
            target.chmod(info.st_mode & 0o7777)
        except FileNotFoundError:
            target.chmod(0o700)


def install_runner(paths: LabPaths) -> None:
    """Copy the runner script into the state directory: running hosts never read package files."""
    paths.run.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(RUNNER_ASSET, paths.runner_script)


def start_host(
    paths: LabPaths, base: Path, plan: HostPlan, roots: CgroupRoots, lab: str
) -> ProcessRecord:
    """Start the host's runner in fresh cgroups; returns its PID record (sshd not yet up)."""
    dirs = cgroups.unit_dirs(roots, lab, plan.name)
    if cgroups.pids_in(dirs):
        raise LabError(
            f"host {plan.name} still has processes in {dirs[0]}",
            hint="run `patchring lab down` first",
        )
    cgroups.remove(dirs)
    cgroups.create(dirs)
    host_dir = paths.host_dir(plan.name)
    stop_file = paths.run / f"{plan.name}.stop"
    stop_file.unlink(missing_ok=True)
    env = dict(os.environ)
    env.update(
        LAB_LOWER=str(base),
        LAB_UPPER=str(host_dir / "upper"),
        LAB_WORK=str(host_dir / "work"),
        LAB_MERGED=str(host_dir / "merged"),
        LAB_MACHINE=plan.name,
        LAB_NETNS=plan.netns,
        LAB_STOP_FILE=str(stop_file),
        LAB_NSPAWN_PID_FILE=str(paths.run / f"{plan.name}.nspawn.pid"),
    )
    argv = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "--",
        "/bin/sh",
        str(paths.runner_script),
    ]
    pid, start_time = spawn_daemon(
        argv,
        pid_file=paths.run / f"{plan.name}.pid",
        log_file=paths.host_log(plan.name),
        cgroup_dirs=dirs,
        env=env,
    )
    return ProcessRecord(pid=pid, start_time=start_time, cgroups=tuple(str(path) for path in dirs))


def stop_hosts(
    paths: LabPaths, names: list[str], roots: CgroupRoots, lab: str, grace: float = STOP_GRACE
) -> None:
    """Power the hosts off cleanly, all at once; SIGKILL what is left after `grace` seconds."""
    every_dir: list[Path] = []
    for name in names:
        dirs = cgroups.unit_dirs(roots, lab, name)
        every_dir.extend(dirs)
        paths.run.mkdir(parents=True, exist_ok=True)
        (paths.run / f"{name}.stop").touch()
        cgroups.thaw_tree(dirs[0])
        members = cgroups.pids_in(dirs)
        try:
            nspawn = int((paths.run / f"{name}.nspawn.pid").read_text())
        except (OSError, ValueError):
            continue
        if nspawn in members:
            os.kill(nspawn, signal.SIGTERM)
    dirs_tuple = tuple(every_dir)
    if not cgroups.wait_empty(dirs_tuple, grace):
        cgroups.kill(dirs_tuple)
        cgroups.wait_empty(dirs_tuple, 5.0)
    cgroups.remove(dirs_tuple)


def host_state(record: HostRecord, roots: CgroupRoots, lab: str) -> str:
    """ "running", "frozen" or "stopped", read from the runner PID and the host's cgroups."""
    dirs = cgroups.unit_dirs(roots, lab, record.name)
    runner = record.runner
    if (
        runner is None
        or not process_alive(runner.pid, runner.start_time)
        or runner.pid not in cgroups.pids_in(dirs)
    ):
        return "stopped"
    return "frozen" if cgroups.is_frozen(dirs[0]) else "running"


def probe_sshd(address: str, timeout: float = 1.0) -> bool:
    """True when sshd at address:22 sends its banner within `timeout` seconds."""
    try:
        with socket.create_connection((address, 22), timeout=timeout) as connection:
            connection.settimeout(timeout)
            return connection.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def wait_for_sshd(paths: LabPaths, records: list[HostRecord], timeout: float) -> None:
    """Wait until every host's sshd answers; fail early (with its log) if a runner dies."""
    deadline = time.monotonic() + timeout

    def wait_one(record: HostRecord) -> str | None:
        while time.monotonic() < deadline:
            runner = record.runner
            if runner is None or not process_alive(runner.pid, runner.start_time):
                log = tail_file(paths.host_log(record.name))
                return f"{record.name} stopped while booting:\n{log}"
            if probe_sshd(record.address, timeout=1.0):
                return None
            time.sleep(0.05)
        return f"{record.name} ({record.address}): sshd did not answer in {timeout:.0f} s"

    with ThreadPoolExecutor(max_workers=min(32, max(1, len(records)))) as pool:
        problems = [problem for problem in pool.map(wait_one, records) if problem]
    if problems:
        raise LabError(
            "lab hosts did not come up: " + "\n".join(problems), hint=f"host logs: {paths.logs}"
        )
