"""Benchmark: validating and resolving a large generated project, as a user runs it.

Run: `.venv/bin/python -m bench.validate_scale [--hosts 10000] [--policies 50]`. Generates, in a
temporary folder, an inventory of `--hosts` hosts (three rings, 20 groups, each host in two
groups and with a variable of its own, in one file per ring) and `--policies` policies (each: 3
pinned packages, one version templated from a ring variable; 2 templated files, one reading
group and ring variables, one reading the host's own variable and name; a sysctl and a
service; 12 policies select every host, the others two groups each). Then runs, as
subprocesses, `patchring validate` (load, validate, resolve every host) and `patchring explain
HOST` (one host's resolved state: the path `plan --host HOST` takes before it contacts the
host), and prints wall time, CPU time and peak RSS of each beside the goal (5 s and 1 GiB for
validate; well under a second for one host). `--source` runs another checkout's `orchestrator`
package, for a before/after comparison. Prints figures; asserts nothing. Offline.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import PROJECT, compile_project

RINGS = ("canary", "pilot", "broad")
GROUPS = 20
POLICIES_FOR_ALL = 12
GOAL_SECONDS = 5.0
GOAL_BYTES = 2**30
GOAL_ONE_HOST_SECONDS = 1.0


def host_name(index: int) -> str:
    return f"h{index:05d}"


def _ring_of(index: int, hosts: int) -> str:
    # 1% canary, 19% pilot, the rest broad: the shape of a real fleet.
    share = index / hosts
    return RINGS[0] if share < 0.01 else RINGS[1] if share < 0.20 else RINGS[2]


def inventory_files(hosts: int) -> dict[str, str]:
    """The inventory: fleet.yml (rings, groups, vars) and hosts-<ring>.yml per ring."""
    fleet = ["rings:"]
    fleet += [f"  - name: {ring}\n    vars: {{minor: {n}}}" for n, ring in enumerate(RINGS)]
    fleet += ["vars:", "  agent_port: 7070", "  log_level: info", "groups:"]
    fleet += [f"  g{g:02d}:\n    vars: {{tier: t{g % 4}, shard: {g}}}" for g in range(GROUPS)]
    files = {"inventory/fleet.yml": "\n".join(fleet) + "\n"}
    per_ring: dict[str, list[str]] = {ring: ["hosts:"] for ring in RINGS}
    for index in range(hosts):
        first, second = index % GROUPS, (index * 7 + 3) % GROUPS
        if second == first:
            second = (first + 1) % GROUPS
        address = f"10.{index // 65536 % 256}.{index // 256 % 256}.{index % 256}"
        ring = _ring_of(index, hosts)
        per_ring[ring].append(
            f"  {host_name(index)}:\n    address: {address}\n    ring: {ring}\n"
            f"    groups: [g{first:02d}, g{second:02d}]\n    vars: {{host_id: {index}}}"
        )
    for ring, lines in per_ring.items():
        files[f"inventory/hosts-{ring}.yml"] = "\n".join(lines) + "\n"
    return files


def policy_files(policies: int) -> dict[str, str]:
    """Policies and their templates."""
    files: dict[str, str] = {}
    for p in range(policies):
        if p < POLICIES_FOR_ALL:
            select = "  all: true"
        else:
            select = f"  groups: [g{p % GROUPS:02d}, g{(p * 3 + 1) % GROUPS:02d}]"
        files[f"policies/p{p:02d}.yml"] = f"""name: p{p:02d}
description: Synthetic policy {p}.
select:
{select}
vars:
  app{p}_version: "2.{p}-1"
packages:
  - name: app{p}-core
    version: "1.{{{{ minor }}}}-1"
  - name: app{p}-tools
    version: "{{{{ app{p}_version }}}}"
  - name: app{p}-data
    version: "3.0-{p}"
files:
  - path: /etc/app{p}/app.conf
    template: templates/p{p:02d}-app.conf.j2
    mode: "0640"
    restart: [app{p}]
  - path: /etc/app{p}/host.conf
    template: templates/p{p:02d}-host.conf.j2
sysctl:
  - key: net.core.app{p}_budget
    value: {300 + p}
services:
  - name: app{p}
    running: true
    enabled: true
"""
        files[f"templates/p{p:02d}-app.conf.j2"] = (
            f"# app {p}\nport = {{{{ agent_port + {p} }}}}\ntier = {{{{ tier }}}}\n"
            "shard = {{ shard }}\nlog = {{ log_level }}\n"
            "{% for n in range(3) %}worker{{ n }} = {{ tier }}-{{ n }}\n{% endfor %}"
        )
        files[f"templates/p{p:02d}-host.conf.j2"] = (
            f"# app {p} on {{{{ host.name }}}}\nid = {{{{ host_id }}}}\n"
            "ring = {{ host.ring }}\naddress = {{ host.address }}\n"
        )
    return files


def write_project(folder: Path, hosts: int, policies: int) -> None:
    for name, text in (inventory_files(hosts) | policy_files(policies)).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def run_measured(
    command: list[str], env: dict[str, str], folder: Path
) -> tuple[float, float, int, str]:
    """(wall s, CPU s, peak RSS bytes, last output line) of one subprocess, run in `folder`
    (not in this checkout, whose `orchestrator/` would shadow `--source`). Each command runs
    under a small parent of its own, so RUSAGE_CHILDREN's peak is this command's alone."""
    probe = (
        "import resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - start\n"
        "use = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "tail = (done.stdout.strip() or done.stderr.strip()).splitlines()[-1:] or ['']\n"
        "print(wall, use.ru_utime + use.ru_stime, use.ru_maxrss * 1024, done.returncode)\n"
        "print(tail[0][:160])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *command],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        check=True,
    )
    figures, tail = done.stdout.splitlines()[:2]
    wall, cpu, rss, code = figures.split()
    return float(wall), float(cpu), int(rss), f"exit {code}: {tail}"


def report(name: str, figures: tuple[float, float, int, str], goal_s: float, goal_b: int) -> None:
    wall, cpu, rss, tail = figures
    print(
        f"{name:28} wall {wall:6.2f} s ({wall / goal_s:5.2f}x goal {goal_s:g} s)   "
        f"CPU {cpu:6.2f} s   peak RSS {rss / 2**20:6.0f} MiB ({rss / goal_b:4.2f}x goal "
        f"{goal_b / 2**20:.0f} MiB)"
    )
    print(f"{'':28} {tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--policies", type=int, default=50)
    parser.add_argument("--source", type=Path, help="checkout whose orchestrator/ to run")
    parser.add_argument("--keep", action="store_true", help="keep the generated project")
    args = parser.parse_args()
    compile_project()
    env = dict(os.environ, PYTHONPATH=str(args.source or PROJECT), PATCHRING_TODAY="2027-01-01")
    folder = Path(tempfile.mkdtemp(prefix="patchring-bench-scale-"))
    start = time.perf_counter()
    write_project(folder, args.hosts, args.policies)
    print(
        f"project: {args.hosts} hosts, {args.policies} policies, generated in "
        f"{time.perf_counter() - start:.1f} s ({folder if args.keep else 'temporary'})"
    )
    patchring = [sys.executable, "-m", "orchestrator"]
    where = ["--repo", str(folder)]
    validate = run_measured([*patchring, "validate", *where], env, folder)
    report("validate", validate, GOAL_SECONDS, GOAL_BYTES)
    one = host_name(args.hosts // 2)
    explain = run_measured([*patchring, "explain", one, *where], env, folder)
    report(f"explain {one} (one host)", explain, GOAL_ONE_HOST_SECONDS, GOAL_BYTES)
    if not args.keep:
        subprocess.run(["rm", "-rf", str(folder)], check=True)


if __name__ == "__main__":
    main()
