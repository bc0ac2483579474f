"""Benchmark: a first apply on fresh hosts, patchring against the pyinfra CLI doing the same work.

Run as root: `.venv/bin/python -m bench.first_apply --hosts 10 --rounds 3`. It boots a lab of
its own ("benchfirst", 10.213.45.0/24) and, each round, resets every host to a fresh one before
each tool: patchring `apply` of the example policies, and the pyinfra CLI running the very
operations patchring compiles for those hosts (the deploy `bench.converge` builds). The order of
the two tools alternates from round to round, so neither profits from the other's warm caches.
A reset keeps a host's network namespace (its net.* sysctls), so one unmeasured apply runs
first and every measured run starts from the same reset state.
Both run under `bench.sessions`, which counts every SSH channel and file transfer the same way
for both. Prints, per tool, the median over the rounds of wall time, remote sessions per host
and controller CPU (user + sys of the child process), and the ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench import compile_project
from bench.converge import make_repo, pyinfra_files
from orchestrator.lab import LabConfig, lab_down, lab_up
from orchestrator.lab.faults import reset_hosts

LAB, SUBNET = "benchfirst", "10.213.45.0/24"
TOOLS = ("patchring", "pyinfra")


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu: float
    sessions: float  # SSH channels opened + files transferred, per host
    exit_code: int
    facts: Counter[str]


def run_counted(target: str, argv: list[str], cwd: Path, hosts: int, out: Path) -> Run:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.sessions", str(out), target, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        print(f"  {target} exit {proc.returncode}:\n{(proc.stderr or proc.stdout)[-3000:]}")
    counts = json.loads(out.read_text())
    total = sum(counts["channels"].values()) + sum(counts["transfers"].values())
    return Run(seconds, cpu, total / hosts, proc.returncode, Counter(counts["facts"]))


def main() -> int:
    compile_project()
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--facts", action="store_true", help="list the facts each tool read")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="patchring-bench-first-"))
    inventory = work / "lab.yml"
    status = lab_up(LabConfig(name=LAB, hosts=args.hosts, subnet=SUBNET, inventory_path=inventory))
    try:
        repo = make_repo(work / "repo", inventory)
        inv, deploy = pyinfra_files(repo, work, refresh_lists=True, observe=True)
        pyinfra_argv = ["-y", str(inv), str(deploy)]
        # A reset host gets a fresh file system, but its network namespace (and so the net.*
        # sysctls the example sets) survives: one unmeasured apply first, so that every
        # measured run, of either tool, starts from the same reset state.
        run_counted(
            "orchestrator.cli.entry:run", ["apply"], repo, args.hosts, work / "warm-up.json"
        )
        runs: dict[str, list[Run]] = {tool: [] for tool in TOOLS}
        for round_no in range(args.rounds):
            order = TOOLS if round_no % 2 == 0 else TOOLS[::-1]
            for tool in order:
                reset_hosts(LAB, state_dir=status.state_dir)
                out = work / f"{tool}-{round_no}.json"
                if tool == "patchring":
                    run = run_counted(
                        "orchestrator.cli.entry:run", ["apply", "--json"], repo, args.hosts, out
                    )
                else:
                    run = run_counted("pyinfra_cli.main:main", pyinfra_argv, work, args.hosts, out)
                runs[tool].append(run)
                print(
                    f"round {round_no + 1} {tool:<9} {run.seconds:6.2f} s wall "
                    f"{run.sessions:6.1f} sessions/host {run.cpu:6.2f} s CPU (exit {run.exit_code})"
                )
        report(runs, args)
    finally:
        lab_down(LAB)
    return 0


def report(runs: dict[str, list[Run]], args: argparse.Namespace) -> None:
    load = os.getloadavg()
    med = {
        tool: (
            statistics.median(r.seconds for r in rs),
            statistics.median(r.sessions for r in rs),
            statistics.median(r.cpu for r in rs),
        )
        for tool, rs in runs.items()
    }
    print(
        f"\nfirst apply of the example on {args.hosts} fresh hosts, median of {args.rounds} "
        f"rounds (order alternating; load average after: {load[0]:.2f} {load[1]:.2f})"
    )
    print(f"  {'tool':<36} {'wall s':>8} {'sessions/host':>14} {'controller CPU s':>17}")
    names = {"patchring": "patchring apply", "pyinfra": "pyinfra CLI, same operations"}
    for tool, (seconds, sessions, cpu) in med.items():
        print(f"  {names[tool]:<36} {seconds:>8.2f} {sessions:>14.1f} {cpu:>17.2f}")
    ours, theirs = med["patchring"], med["pyinfra"]
    print(
        f"  ratio patchring/pyinfra: {ours[0] / theirs[0]:.2f} wall, "
        f"{ours[1] / theirs[1]:.2f} sessions, {ours[2] / theirs[2]:.2f} CPU"
    )
    if args.facts:
        for tool, rs in runs.items():
            print(f"\nfacts read by {tool} (last round, all hosts):")
            for fact, count in sorted(rs[-1].facts.items(), key=lambda item: -item[1]):
                print(f"  {count:>4}  {fact}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
