"""Benchmark: a 100-host lab end to end, and the controller's memory per in-flight host.

Run as root: `python -m bench.fleet100` (`--hosts N` for another size). It boots a lab of its
own ("bench100", 10.213.50.0/24; each lab host costs some 8-10 MB), then runs, as real
`patchring` processes on the example project: a plan (every host drifted), a rollout over the
example's three rings (canary one host at a time, pilot in halves, broad at once; every batch
applied and verified, every gate checked), a no-change plan, a no-change apply and a verify. For
each command it prints the wall time, the controller CPU per host and the peak RSS of that
process (`os.wait4`). Then a no-change plan with `--parallel 1`, `50` and all hosts: the
difference in peak RSS per extra host connected at once is the memory per in-flight host. The
lab is torn down at the end. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench import compile_project
from bench.converge import make_repo
from bench.noop_apply import CLI
from orchestrator.errors import LabNotRunningError
from orchestrator.lab import LabConfig, lab_down, lab_up

LAB, SUBNET = "bench100", "10.213.50.0/24"


def run_measured(argv: list[str], cwd: Path) -> tuple[float, float, float, int, str]:
    """Wall seconds, CPU seconds, peak RSS in MiB, exit code and stdout of one command."""
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        text = out.read().decode()
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024, proc.returncode, text


def summary(verb: str, text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return "(no JSON)"
    if verb == "rollout":
        return ", ".join(f"{r['ring']} {len(r['hosts'])} {r['status']}" for r in doc["rings"])
    if verb == "verify":
        return str(doc.get("summary") or {v["status"] for v in doc["verify"]})
    return str(doc.get("summary"))


def main() -> int:
    compile_project()
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=100)
    args = parser.parse_args()
    hosts = args.hosts
    work = Path(tempfile.mkdtemp(prefix="patchring-bench-fleet-"))
    inventory = work / "lab.yml"
    with contextlib.suppress(LabNotRunningError):  # a smaller one, left by noop_apply --keep
        lab_down(LAB)
    started = time.perf_counter()
    lab_up(LabConfig(name=LAB, hosts=hosts, subnet=SUBNET, inventory_path=inventory))
    print(f"lab up, {hosts} hosts: {time.perf_counter() - started:.1f} s")
    try:
        repo = make_repo(work / "repo", inventory)
        print(
            f"\n  {'command':<26} {'exit':>4} {'wall s':>8} {'CPU ms/host':>12}"
            f" {'peak RSS MiB':>13}"
        )
        steps = [
            ("plan (all drifted)", "plan"),
            ("rollout, three rings", "rollout"),
            ("plan (no change)", "plan"),
            ("apply (no change)", "apply"),
            ("verify", "verify"),
        ]
        for label, verb in steps:
            wall, cpu, rss, code, text = run_measured([*CLI, verb, "--json"], repo)
            print(
                f"  {label:<26} {code:>4} {wall:8.1f} {cpu * 1000 / hosts:12.1f} {rss:13.0f}"
                f"  {summary(verb, text)}"
            )
        peaks = {}
        for parallel in sorted({1, min(50, hosts), hosts}):
            wall, cpu, rss, code, _ = run_measured(
                [*CLI, "plan", "--json", "--parallel", str(parallel)], repo
            )
            peaks[parallel] = rss
            print(
                f"  {f'plan --parallel {parallel}':<26} {code:>4} {wall:8.1f}"
                f" {cpu * 1000 / hosts:12.1f} {rss:13.0f}"
            )
        if len(peaks) > 1:
            low, high = min(peaks), max(peaks)
            per_host = (peaks[high] - peaks[low]) * 1024 / (high - low)
            print(
                f"\nmemory per in-flight host (plan, --parallel {high} vs {low}):"
                f" {per_host:.0f} KiB"
            )
    finally:
        started = time.perf_counter()
        lab_down(LAB)
        print(f"lab down: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
