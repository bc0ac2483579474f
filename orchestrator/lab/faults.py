"""Faults to inject into a running lab host, and a way in that does not use ssh.

Everything acts only on the lab's own cgroups, links and namespaces: freeze/thaw (cgroup v2
`cgroup.freeze`: a hung host), crash (`cgroup.kill`), partition/heal (host-side veth down/up),
packet loss (an nftables table inside the host's own network namespace), sshd stop/start, and
`reset_host` (a fresh upper layer with the same key and address). `host_exec` runs a command in
the host through `nsenter` into its PID 1, so tests can change or read a host behind the
orchestrator's back. Imports only `orchestrator.errors` and sibling modules.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from orchestrator.errors import LabError

from . import cgroups, hosts, network
from .config import LabConfig, plan_hosts, state_dir_for
from .state import HostRecord, LabPaths, LabRecord, require_record, save_record
from .system import lab_lock, require_commands, require_root, run_command

HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FAULT_TABLE = "patchring_fault"


def _open(
    name: str, host: str, state_dir: Path | None
) -> tuple[LabPaths, LabRecord, HostRecord, cgroups.CgroupRoots]:
    require_root()
    paths = LabPaths(state_dir_for(name, state_dir))
    record = require_record(paths, name)
    return paths, record, record.host(host), cgroups.find_roots()


def _unified_dir(roots: cgroups.CgroupRoots, name: str, host: str) -> Path:
    return cgroups.unit_dirs(roots, name, host)[0]


def freeze_host(name: str, host: str, state_dir: Path | None = None) -> None:
    """Freeze every process of the host: it stays up but answers nothing (a hung host)."""
    _paths, _record, target, roots = _open(name, host, state_dir)
    _require_up(target, roots, name)
    cgroups.set_frozen(_unified_dir(roots, name, host), True)


def thaw_host(name: str, host: str, state_dir: Path | None = None) -> None:
    _paths, _record, _target, roots = _open(name, host, state_dir)
    cgroups.set_frozen(_unified_dir(roots, name, host), False)


def crash_host(name: str, host: str, state_dir: Path | None = None) -> None:
    """Kill every process of the host at once (a power cut); `reset_host` brings it back."""
    paths, _record, _target, roots = _open(name, host, state_dir)
    (paths.run / f"{host}.stop").touch()
    dirs = cgroups.unit_dirs(roots, name, host)
    cgroups.kill(dirs)
    if not cgroups.wait_empty(dirs, 5.0):
        raise LabError(f"host {host} still has processes after SIGKILL")


def partition_host(name: str, host: str, state_dir: Path | None = None) -> None:
    """Cut the host off the bridge (its host-side veth goes down): connections time out."""
    _paths, _record, target, _roots = _open(name, host, state_dir)
    network.set_link_up(target.veth, False)


def heal_host(name: str, host: str, state_dir: Path | None = None) -> None:
    _paths, _record, target, _roots = _open(name, host, state_dir)
    network.set_link_up(target.veth, True)


def add_packet_loss(name: str, host: str, percent: int, state_dir: Path | None = None) -> None:
    """Drop about `percent` % of the host's packets, in and out (nftables in its namespace)."""
    if not 0 < percent <= 100:
        raise LabError(f"packet loss must be 1 to 100 percent, not {percent}")
    require_commands(["nft"])
    _paths, _record, target, _roots = _open(name, host, state_dir)
    rule = f"numgen random mod 100 < {percent} drop"
    ruleset = (
        f"table inet {FAULT_TABLE} {{\n"
        f"  chain input {{ type filter hook input priority 0; policy accept; {rule}; }}\n"
        f"  chain output {{ type filter hook output priority 0; policy accept; {rule}; }}\n"
        "}\n"
    )
    clear_packet_loss(name, host, state_dir)
    run_command(
        ["nsenter", f"--net=/run/netns/{target.netns}", "--", "nft", "-f", "-"], input_text=ruleset
    )


def clear_packet_loss(name: str, host: str, state_dir: Path | None = None) -> None:
    require_commands(["nft"])
    _paths, _record, target, _roots = _open(name, host, state_dir)
    _delete_fault_table(target)


def _delete_fault_table(target: HostRecord) -> None:
    argv = ["nsenter", f"--net=/run/netns/{target.netns}", "--", "nft", "delete", "table", "inet"]
    run_command([*argv, FAULT_TABLE], check=False)


def stop_sshd(name: str, host: str, state_dir: Path | None = None) -> None:
    """Stop sshd inside the host: new connections are refused, open sessions finish."""
    _check(host_exec(name, host, ["systemctl", "stop", "ssh.service"], state_dir), host)


def start_sshd(name: str, host: str, state_dir: Path | None = None) -> None:
    _check(host_exec(name, host, ["systemctl", "start", "ssh.service"], state_dir), host)


def host_exec(
    name: str,
    host: str,
    argv: list[str],
    state_dir: Path | None = None,
    *,
    input_text: str | None = None,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """Run argv inside the host (all its namespaces, via its PID 1), without ssh.

    Returns the completed process (text output, not checked). Blocks while the host is frozen.
    """
    _paths, _record, target, roots = _open(name, host, state_dir)
    init = _container_init(roots, name, target)
    command = [
        "nsenter",
        f"--target={init}",
        "--mount",
        "--uts",
        "--ipc",
        "--net",
        "--pid",
        "--cgroup",
    ]
    command += [
        "--root",
        "--wd",
        "--",
        "env",
        "-i",
        f"PATH={HOST_PATH}",
        "HOME=/root",
        "LANG=C.UTF-8",
        *argv,
    ]
    return subprocess.run(
        command,
        input=input_text,
        stdin=None if input_text is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def reset_host(name: str, host: str, state_dir: Path | None = None, timeout: float = 60.0) -> None:
    """A fresh host: stop it, wipe its upper layer, boot it again (same key and address)."""
    reset_hosts(name, [host], state_dir, timeout)


def reset_hosts(
    name: str,
    names: Sequence[str] | None = None,
    state_dir: Path | None = None,
    timeout: float = 60.0,
) -> None:
    """`reset_host` for several hosts (default: all) at once: stopped and booted in parallel."""
    require_root()
    paths = LabPaths(state_dir_for(name, state_dir))
    record = require_record(paths, name)
    roots = cgroups.find_roots()
    chosen = list(names) if names is not None else [h.name for h in record.host_records]
    targets = [record.host(host) for host in chosen]
    config = LabConfig(
        name=record.name, hosts=record.hosts, subnet=record.subnet, rings=record.rings
    )
    plans = plan_hosts(config)
    client_key = paths.identity_file.with_suffix(".pub").read_text().strip()
    hosts.stop_hosts(paths, chosen, roots, name)

    def start(target: HostRecord) -> HostRecord:
        network.set_link_up(target.veth, True)
        if shutil.which("nft"):
            _delete_fault_table(target)
        plan = next(item for item in plans if item.name == target.name)
        base = Path(record.base_images[target.release])
        hosts.prepare_upper(paths, base, plan, plans, client_key)
        return replace(target, runner=hosts.start_host(paths, base, plan, roots, name))

    with ThreadPoolExecutor(max_workers=min(16, max(1, len(targets)))) as pool:
        fresh = {item.name: item for item in pool.map(start, targets)}
    with lab_lock():  # read-modify-write: other resets may run at the same time
        record = require_record(paths, name)
        updated = tuple(fresh.get(h.name, h) for h in record.host_records)
        save_record(paths, replace(record, host_records=updated))
    hosts.wait_for_sshd(paths, list(fresh.values()), timeout)


def _require_up(target: HostRecord, roots: cgroups.CgroupRoots, name: str) -> None:
    if hosts.host_state(target, roots, name) == "stopped":
        raise LabError(f"host {target.name} is not running", hint="bring it back with reset_host")


def _container_init(roots: cgroups.CgroupRoots, name: str, target: HostRecord) -> int:
    """The host's PID 1 as seen from here: the process in its cgroups whose inner PID is 1."""
    for pid in sorted(cgroups.pids_in(cgroups.unit_dirs(roots, name, target.name))):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:") and len(line.split()) >= 3 and line.split()[-1] == "1":
                return pid
    raise LabError(
        f"host {target.name} is not running (no init process found)",
        hint="reset it with reset_host",
    )


def _check(result: subprocess.CompletedProcess[str], host: str) -> None:
    if result.returncode != 0:
        raise LabError(
            f"command in host {host} failed: {result.stderr.strip() or result.stdout.strip()}"
        )
