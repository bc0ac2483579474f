"""Benchmark: `patchring assess` on a lab fleet, its probe on a host with 400 packages, and what a
user would run instead (plain ssh with `apt list --upgradable`, sequential and parallel).

Run as root: `python -m bench.assess --hosts 30`. It boots a lab of its own ("benchassess",
10.213.35.0/24, Debian 12 and 13 mixed by default), applies a patch scenario (old acme-agent,
libacme1 + acme-libuser and acme-kernel, plus each release's security archive), then measures:

- `patchring assess --json` on every host, from a cold start each time: wall seconds (median
  of --repeat), remote commands per host, and the controller CPU (user + system) and max RSS of
  the patchring process, from the rusage of that one child (`os.wait4`);
- plain OpenSSH running `apt list --upgradable` on every host, one after the other and all at
  once (a new connection per host, as a shell loop or a parallel ssh tool does). That gives
  only pending updates: no origins checked, no CVEs, no reboot or deleted-library state;
- the probe alone (the same script over one ssh command) on a host topped up with small filler
  packages to 400 installed packages (some with a pending security update), against a base
  host: seconds on the host and bytes of output.

Prints figures and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench import compile_project
from orchestrator.lab import LabConfig, LabStatus, lab_down, lab_publish_many, lab_up
from orchestrator.patching.probescript import build_assess_script

PROJECT = Path(__file__).resolve().parents[1]
LAB, SUBNET = "benchassess", "10.213.35.0/24"
SECURITY_ORIGIN = "o=patchring-lab,l=patchring-lab-Security,n=${distro_codename}-security"
SCENARIO = {
    "name": "patch-scenario",
    "select": {"all": True},
    "apt_repositories": [
        {
            "name": "patchring-lab-security",
            "url": "{{ lab_apt_url }}",
            "suite": "{{ debian_release }}-security",
            "key": "{{ lab_apt_key }}",
        }
    ],
    "packages": [
        {"name": "acme-agent", "version": "1.0-1"},
        {"name": "libacme1", "version": "1.0-1"},
        {"name": "acme-libuser", "version": "1.0-1"},
        {"name": "acme-kernel", "version": "1.0-1"},
    ],
}


@dataclass(frozen=True)
class Run:
    seconds: float
    returncode: int
    stdout: str
    cpu_seconds: float
    max_rss_mib: float


def run_measured(argv: list[str], cwd: Path) -> Run:
    """Run one child to its end; its own rusage (CPU, peak RSS) from `os.wait4`."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    return Run(
        seconds, proc.returncode, text, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
    )


def make_repo(dest: Path, inventory: Path, status: LabStatus) -> Path:
    for folder in ("policies", "templates", "files", "inventory"):
        shutil.copytree(PROJECT / folder, dest / folder, ignore=shutil.ignore_patterns("lab.yml"))
    (dest / "policies" / "acme-agent.yml").unlink()  # it pins the agent to the fixed version
    (dest / "policies" / "patch-scenario.yml").write_text(yaml.safe_dump(SCENARIO))
    lab = yaml.safe_load(inventory.read_text())
    lab["ssh"].update({"connect_timeout": 5, "command_timeout": 180})
    (dest / "inventory" / "lab.yml").write_text(yaml.safe_dump(lab, sort_keys=False))
    assert status.security_data is not None
    (dest / "data").mkdir()
    shutil.copy(status.security_data, dest / "data" / "tracker.json")
    patching = {
        "patching": {"security_origins": [SECURITY_ORIGIN]},
        "security_data": "data/tracker.json",
    }
    (dest / "inventory" / "patching.yml").write_text(yaml.safe_dump(patching))
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def ssh_argv(status: LabStatus, address: str) -> list[str]:
    """Plain OpenSSH as a careful user runs it: the lab key, known_hosts checked, no sharing."""
    return [
        "ssh",
        "-F",
        "/dev/null",
        "-i",
        str(status.identity_file),
        "-o",
        f"UserKnownHostsFile={status.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        f"root@{address}",
    ]


def ssh(status: LabStatus, address: str, command: str, stdin: str = "") -> str:
    proc = subprocess.run(
        [*ssh_argv(status, address), command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{address}: {command[:60]}: exit {proc.returncode}: {proc.stderr[-500:]}"
        )
    return proc.stdout


def plain_loop(status: LabStatus, parallel: bool) -> float:
    addresses = [h.address for h in status.hosts]
    started = time.perf_counter()
    command = "apt list --upgradable 2>/dev/null"
    if parallel:
        with ThreadPoolExecutor(max_workers=len(addresses)) as pool:
            list(pool.map(lambda a: ssh(status, a, command), addresses))
    else:
        for address in addresses:
            ssh(status, address, command)
    return time.perf_counter() - started


def probe_figures(status: LabStatus, address: str, repeat: int) -> tuple[float, int]:
    """(median seconds the probe ran on the host, bytes it printed)."""
    times, sizes = [], []
    for _ in range(repeat):
        script = build_assess_script(secrets.token_hex(8))
        timed = (
            "s=$(date +%s%N); sh -s > /tmp/probe.out; e=$(date +%s%N);"
            " wc -c < /tmp/probe.out; echo $(( (e - s) / 1000000 ))"
        )
        size, millis = ssh(status, address, timed, stdin=script).split()
        times.append(int(millis) / 1000)
        sizes.append(int(size))
    return statistics.median(times), max(sizes)


def top_up_host(status: LabStatus, address: str, target: int, pending: int) -> int:
    """Install filler packages until the host has `target` installed packages; publish a newer
    version of `pending` of them to the security archives. Returns the installed count."""
    count = "dpkg-query -W -f='${db:Status-Abbrev}\\n' | grep -c '^ii'"
    have = int(ssh(status, address, count))
    fillers = [f"acme-filler-{i}" for i in range(1, max(0, target - have) + 1)]
    started = time.perf_counter()
    lab_publish_many([(name, "1.0-1") for name in fillers], "lab", name=LAB)
    lab_publish_many([(name, "1.0-2") for name in fillers[:pending]], "lab-security", name=LAB)
    print(
        f"published {len(fillers)} filler packages ({pending} with a security update):"
        f" {time.perf_counter() - started:.1f} s"
    )
    pins = " ".join(f"{name}=1.0-1" for name in fillers)
    ssh(status, address, f"apt-get update -qq && apt-get install -y -q {pins} >/dev/null")
    return int(ssh(status, address, count))


def main() -> int:
    compile_project()
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--release", default="mixed", help="bookworm, trixie or mixed")
    parser.add_argument(
        "--packages", type=int, default=400, help="installed packages on the big host"
    )
    args = parser.parse_args()
    cli = [sys.executable, "-m", "orchestrator"]
    work = Path(tempfile.mkdtemp(prefix="patchring-bench-assess-"))
    inventory = work / "lab.yml"
    started = time.perf_counter()
    status = lab_up(
        LabConfig(
            name=LAB,
            hosts=args.hosts,
            subnet=SUBNET,
            inventory_path=inventory,
            release=args.release,
        )
    )
    print(f"lab up, {args.hosts} hosts ({args.release}): {time.perf_counter() - started:.1f} s")
    try:
        repo = make_repo(work / "repo", inventory, status)
        applied = run_measured([*cli, "apply"], repo)
        print(f"apply of the patch scenario: {applied.seconds:.1f} s (exit {applied.returncode})")
        measure_assess(cli, repo, status, args)
        measure_probe(cli, repo, status, args)
    finally:
        started = time.perf_counter()
        lab_down(LAB)
        print(f"lab down: {time.perf_counter() - started:.1f} s")
    return 0


def measure_assess(cli: list[str], repo: Path, status: LabStatus, args: argparse.Namespace) -> None:
    runs = [run_measured([*cli, "assess", "--json"], repo) for _ in range(args.repeat)]
    doc: dict[str, Any] = json.loads(runs[-1].stdout)
    per_host = [h["remote_commands"] for h in doc["hosts"]]
    summary = doc["summary"]
    ours = statistics.median(r.seconds for r in runs)
    print(
        f"\npatchring assess --json, {args.hosts} hosts"
        f" (median of {args.repeat}, exit {runs[-1].returncode}):"
    )
    print(f"  wall: {ours:.2f} s ({', '.join(f'{r.seconds:.2f}' for r in runs)})")
    print(f"  remote commands per host: min {min(per_host)}, max {max(per_host)}")
    print(
        f"  controller CPU (user+sys): {statistics.median(r.cpu_seconds for r in runs):.2f} s,"
        f" max RSS {max(r.max_rss_mib for r in runs):.0f} MiB"
    )
    print(
        "  probe seconds per host (median):"
        f" {statistics.median(h['seconds'] for h in doc['hosts']):.2f}"
    )
    print(
        f"  found: {summary['security_updates']} security and"
        f" {summary['other_updates']} other updates,"
        f" {summary['open_cves']} open CVEs on {summary['hosts_exposed']} hosts"
    )
    loops = {
        "ssh apt list --upgradable, sequential": [
            plain_loop(status, False) for _ in range(args.repeat)
        ],
        "ssh apt list --upgradable, parallel": [
            plain_loop(status, True) for _ in range(args.repeat)
        ],
    }
    print(f"\nplain ssh per host (a new connection each, median of {args.repeat}):")
    for name, times in loops.items():
        median = statistics.median(times)
        print(f"  {name:<40} {median:6.2f} s   ratio to patchring assess: {median / ours:.2f}x")


def measure_probe(cli: list[str], repo: Path, status: LabStatus, args: argparse.Namespace) -> None:
    # two hosts of the same release (mixed labs alternate in pairs: hosts 1 and 5 are alike)
    big, base = status.hosts[0], status.hosts[min(4, len(status.hosts) - 1)]
    installed = top_up_host(status, big.address, args.packages, pending=40)
    run = run_measured([*cli, "assess", "--json", "--host", big.name], repo)
    [host] = json.loads(run.stdout)["hosts"]
    print(
        f"patchring assess --host {big.name} ({installed} packages): {run.seconds:.2f} s wall,"
        f" probe {host['seconds']:.2f} s, {len(host['pending'])} pending,"
        f" {host['remote_commands']} remote command, controller CPU {run.cpu_seconds:.2f} s"
    )
    base_count = "dpkg-query -W -f='${db:Status-Abbrev}\\n' | grep -c '^ii'"
    base_label = f"{ssh(status, base.address, base_count).strip()} installed packages"
    for label, address in (
        (f"{installed} installed packages", big.address),
        (base_label, base.address),
    ):
        seconds, size = probe_figures(status, address, args.repeat)
        print(
            f"probe on {label} ({address}): {seconds:.2f} s on the host,"
            f" {size / 1024:.1f} KiB of output"
        )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
