"""Benchmark: controller CPU of a no-change `patchring apply` and `plan`, per host, and where it
goes.

Run as root: `python -m bench.noop_apply --hosts 10`. It boots a lab ("bench100",
10.213.50.0/24; `--keep` leaves it running for the next run), applies the example policies once,
then runs no-change `apply` and `plan` `--repeat` times each as real processes and reports, per
command, the wall time and the controller CPU per host (user + system of the child process,
getrusage RUSAGE_CHILDREN, divided by the hosts), split into:

- start-up: `patchring --version` (the interpreter and our entry point, no project);
- loading: `patchring validate` minus start-up (policies, inventory, resolution);
- fixed: the command's own cost whatever the hosts (imports, loading, Git, records), and per
  host: what each further host costs, from the same command on one host and on all of them;
- SSH handshake: a bare paramiko connect + auth to the same hosts (`bench.handshake`);
- the rest (per host minus handshake): probing, comparing, results: our code, pyinfra,
  paramiko's channel work, gevent.

Then one apply under cProfile, its time summed per package (our code, pyinfra, paramiko,
cryptography, gevent, pydantic, yaml, ...). Prints the figures and their ratio to the goal of
10 ms of CPU per host plus the handshake; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench import compile_project
from bench.converge import make_repo
from orchestrator.lab import LabConfig, lab_down, lab_up

PROJECT = Path(__file__).resolve().parents[1]
LAB, SUBNET = "bench100", "10.213.50.0/24"
GOAL_MS = 10.0
CLI = [sys.executable, "-m", "orchestrator"]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measured(argv: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall seconds, CPU seconds and the finished process of one command."""
    cpu, started = children_cpu(), time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started, children_cpu() - cpu, proc


def median_of(argv: list[str], cwd: Path, repeat: int) -> tuple[float, float]:
    runs = [measured(argv, cwd) for _ in range(repeat)]
    for _, _, proc in runs:
        if proc.returncode not in (0, 2):
            raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


PACKAGES = (
    ("orchestrator", "/orchestrator/"),
    ("pyinfra", "/pyinfra/"),
    ("paramiko", "/paramiko/"),
    ("cryptography", "/cryptography/"),
    ("gevent", "/gevent/"),
    ("pydantic", "/pydantic"),
    ("yaml", "/yaml/"),
    ("jinja2", "/jinja2/"),
    ("rich", "/rich/"),
    ("git", "/git/"),
    ("stdlib", "/lib/python3"),
)


def package_of(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C)"
    return next((name for name, mark in PACKAGES if mark in filename), "other")


def profile(repo: Path, work: Path, top: int) -> None:
    """One no-change apply under cProfile: own time per package, and our slowest functions."""
    out = work / "apply.prof"
    code = (
        "import cProfile, sys; sys.argv = ['patchring', 'apply', '--json']; "
        "from orchestrator.cli.entry import run; "
        f"cProfile.run('run()', {str(out)!r})"
    )
    subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    stats = pstats.Stats(str(out))
    raw = stats.stats  # type: ignore[attr-defined]
    per_package: dict[str, float] = defaultdict(float)
    ours = []
    for (filename, line, name), (_cc, _nc, tottime, cumtime, _callers) in raw.items():
        per_package[package_of(filename)] += tottime
        if "/orchestrator/" in filename:
            ours.append((tottime, cumtime, f"{filename.split('/orchestrator/')[-1]}:{line} {name}"))
    total = sum(per_package.values())
    print(f"\nprofile of one no-change apply (own time per package, {total:.2f} s under cProfile):")
    for name, seconds in sorted(per_package.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<14} {seconds:6.3f} s {100 * seconds / total:5.1f} %")
    print(f"our {top} functions with the most own time (own s, cumulative s):")
    for tottime, cumtime, where in sorted(ours, reverse=True)[:top]:
        print(f"  {tottime:6.3f} {cumtime:6.3f}  {where}")


def report(repo: Path, hosts: int, repeat: int) -> None:
    _, startup = median_of([*CLI, "--version"], repo, repeat)
    _, validate = median_of([*CLI, "validate"], repo, repeat)
    shake = [
        json.loads(
            subprocess.run(
                [sys.executable, "-m", "bench.handshake", str(repo)],
                cwd=PROJECT,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )["cpu"]
        for _ in range(repeat)
    ]
    handshake = statistics.median(shake) / hosts
    load = max(0.0, validate - startup)
    first = json.loads(
        subprocess.run(
            [*CLI, "validate", "--json"], cwd=repo, capture_output=True, text=True
        ).stdout
    )
    one = _first_host(repo)
    print(f"\nno-change runs on {hosts} hosts (median of {repeat}; CPU of the controller process):")
    print(f"  start-up (--version)          {startup * 1000:7.0f} ms per command")
    print(
        f"  loading (validate - start-up) {load * 1000:7.0f} ms per command"
        f" ({first['hosts']} hosts)"
    )
    print(f"  SSH handshake (paramiko)      {handshake * 1000:7.1f} ms per host")
    print(
        f"  {'command':<8} {'wall s':>7} {'CPU ms/host':>12} {'fixed ms':>9} {'per host':>9}"
        f" {'- handshake':>12} {'goal ratio':>11}"
    )
    for verb in ("plan", "apply"):
        wall, cpu = median_of([*CLI, verb, "--json"], repo, repeat)
        _, single = median_of([*CLI, verb, "--json", "--host", one], repo, repeat)
        marginal = (cpu - single) / max(1, hosts - 1)  # what one more host costs
        fixed = single - marginal  # the command's own cost, whatever the hosts
        rest = marginal - handshake
        print(
            f"  {verb:<8} {wall:7.2f} {cpu / hosts * 1000:12.1f} {fixed * 1000:9.0f}"
            f" {marginal * 1000:9.1f} {rest * 1000:12.1f} {rest * 1000 / GOAL_MS:10.2f}x"
        )
    print(
        "  (CPU ms/host: the whole command / hosts; fixed: a command's cost whatever the hosts, "
        "from a one-host run;\n   per host: what each more host costs; - handshake: without "
        f"the SSH handshake; goal: {GOAL_MS:g} ms/host + handshake)"
    )


def _first_host(repo: Path) -> str:
    status = subprocess.run(
        [*CLI, "plan", "--json"], cwd=repo, capture_output=True, text=True, check=False
    )
    return str(json.loads(status.stdout)["hosts"][0]["host"])


def main() -> int:
    compile_project()
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--top", type=int, default=15, help="our functions to list in the profile")
    parser.add_argument("--keep", action="store_true", help="leave the lab running afterwards")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="patchring-bench-noop-"))
    inventory = work / "lab.yml"
    started = time.perf_counter()
    lab_up(LabConfig(name=LAB, hosts=args.hosts, subnet=SUBNET, inventory_path=inventory))
    print(f"lab up, {args.hosts} hosts: {time.perf_counter() - started:.1f} s")
    try:
        repo = make_repo(work / "repo", inventory)
        wall, _, proc = measured([*CLI, "apply", "--json"], repo)
        print(f"first apply: {wall:.1f} s, exit {proc.returncode}")
        report(repo, args.hosts, args.repeat)
        profile(repo, work, args.top)
    finally:
        if not args.keep:
            lab_down(LAB)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
