"""Benchmark: patchring's verify against plain `pytest --hosts` running the same checks.

Run as root: `python -m bench.verify --hosts 30`. It boots a lab of its own ("vbench",
10.213.7.0/24), applies the example policies, then times side by side, from a cold start each
time (no ssh connection left open between runs):

- patchring `verify_hosts` on every host (hosts in parallel, one batch per host, evidence kept);
- plain pytest-testinfra on the same checks exported as a test file (`export.py`), with the
  ssh backend and an ssh config using ControlMaster/ControlPath (the best plain setup);
- the same without ControlPath (every command a new ssh connection).

Prints wall seconds, checks per second, seconds per host and the ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import compile_project
from orchestrator.lab import LabConfig, lab_down, lab_up
from orchestrator.model.desired import DesiredState
from orchestrator.policy import WorktreeSource, load_project
from orchestrator.verify import checks_for, render_pytest_module, verify_hosts
from orchestrator.verify.export import checks_by_address

PROJECT = Path(__file__).resolve().parents[1]
LAB, SUBNET = "vbench", "10.213.7.0/24"


def make_repo(dest: Path, inventory: Path) -> Path:
    for folder in ("policies", "templates", "files", "inventory"):
        shutil.copytree(PROJECT / folder, dest / folder, ignore=shutil.ignore_patterns("lab.yml"))
    shutil.copy(inventory, dest / "inventory" / "lab.yml")
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def plain_ssh_config(path: Path, state: DesiredState, control: bool) -> Path:
    """What a careful user writes for `pytest --hosts=ssh://...`: key, known_hosts, and (with
    `control`) connection sharing."""
    h = state.host
    lines = [
        "Host *",
        f"  User {h.user}",
        f"  IdentityFile {h.identity_file}",
        f"  UserKnownHostsFile {h.known_hosts}",
        "  StrictHostKeyChecking yes",
        "  BatchMode yes",
        "  LogLevel ERROR",
    ]
    if control:
        lines += [
            "  ControlMaster auto",
            f"  ControlPath {path.parent}/cm-%C",
            "  ControlPersist 60",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def time_patchring(fleet: dict[str, DesiredState]) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    results = verify_hosts(fleet)
    seconds = time.perf_counter() - started
    bad = [(n, v.status) for n, v in results.items() if v.status != "passed"]
    if bad:
        print("  patchring verify: not every host passed:", bad[:5])
    sessions = statistics.mean(v.remote_commands for v in results.values())
    commands = statistics.mean(
        len({e.command for r in v.results for e in r.evidence}) for v in results.values()
    )
    host_seconds = statistics.mean(v.seconds for v in results.values())
    return seconds, {"sessions": sessions, "commands": commands, "host_seconds": host_seconds}


def time_plain(
    module: Path, fleet: dict[str, DesiredState], work: Path, control: bool
) -> tuple[float, str]:
    folder = Path(tempfile.mkdtemp(prefix="plain-", dir=work))  # cold: no master left running
    config = plain_ssh_config(folder / "ssh_config", next(iter(fleet.values())), control)
    hosts = ",".join(f"ssh://{state.host.address}" for state in fleet.values())
    argv = [sys.executable, "-m", "pytest", str(module), f"--hosts={hosts}",
            f"--ssh-config={config}", "-q", "-p", "no:cacheprovider", "--rootdir",
            str(work)]  # fmt: skip
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=work, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    for state in fleet.values():  # end the masters testinfra left (ControlPersist)
        subprocess.run(["ssh", "-F", str(config), "-O", "exit", state.host.address],
                       capture_output=True, check=False)  # fmt: skip
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
    return seconds, summary


def main() -> int:
    compile_project()
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--no-plain-without-controlpath",
        action="store_true",
        help="skip the slowest variant (a new ssh connection per command)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="patchring-vbench-"))
    inventory = work / "lab.yml"
    started = time.perf_counter()
    lab_up(LabConfig(name=LAB, hosts=args.hosts, subnet=SUBNET, inventory_path=inventory))
    print(f"lab up, {args.hosts} hosts: {time.perf_counter() - started:.2f} s")
    try:
        repo = make_repo(work / "repo", inventory)
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "orchestrator", "apply"], cwd=repo,
                              capture_output=True, text=True)  # fmt: skip
        print(f"apply (converge), exit {proc.returncode}: {time.perf_counter() - started:.2f} s")
        report(repo, work, args)
    finally:
        started = time.perf_counter()
        lab_down(LAB)
        shutil.rmtree(work, ignore_errors=True)
        print(f"lab down: {time.perf_counter() - started:.2f} s")
    return 0


def report(repo: Path, work: Path, args: argparse.Namespace) -> None:
    fleet = dict(load_project(WorktreeSource(repo)).desired)
    checks = sum(len(checks_for(state)) for state in fleet.values())
    module = work / "test_generated.py"
    module.write_text(render_pytest_module(checks_by_address(fleet)))
    hosts = len(fleet)
    print(f"\n{checks} checks on {hosts} hosts ({checks / hosts:.0f} per host), "
          f"median of {args.repeat} cold runs:")  # fmt: skip
    ours = [time_patchring(fleet) for _ in range(args.repeat)]
    ours_s = statistics.median(s for s, _ in ours)
    detail = ours[-1][1]
    rows = [("patchring verify_hosts (parallel, batched, evidence)", ours_s, "")]
    plain = [time_plain(module, fleet, work, control=True) for _ in range(args.repeat)]
    plain_s = statistics.median(s for s, _ in plain)
    rows.append(("plain pytest --hosts, ssh + ControlMaster", plain_s, plain[-1][1]))
    if not args.no_plain_without_controlpath:
        seconds, summary = time_plain(module, fleet, work, control=False)
        rows.append(("plain pytest --hosts, ssh, no ControlPath (1 run)", seconds, summary))
    print(f"  {'':<54} {'wall s':>8} {'checks/s':>9} {'s/host':>7} {'x slower':>9}")
    for name, seconds, _ in rows:
        print(f"  {name:<54} {seconds:>8.2f} {checks / seconds:>9.0f} {seconds / hosts:>7.3f} "
              f"{seconds / ours_s:>9.1f}")  # fmt: skip
    for name, _, summary in rows[1:]:
        print(f"  pytest said ({name}): {summary}")
    print(
        f"  patchring per host: {detail['sessions']:.1f} ssh sessions, "
        f"{detail['commands']:.0f} distinct testinfra commands answered, "
        f"{detail['host_seconds']:.3f} s from first command to last (hosts run in parallel)"
    )


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
