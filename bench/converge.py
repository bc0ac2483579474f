"""Benchmark: patchring's plan/apply against the pyinfra CLI on the same lab and the same work.

Run as root: `.venv/bin/python -m bench.converge --hosts 30`. It boots a lab of its own ("bench",
10.213.6.0/24), applies the example policies, then measures runs that change nothing: patchring
plan and apply, and the pyinfra CLI running the very operations patchring compiles (one deploy
file, same hosts, same SSH settings). Prints figures and ratios; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import compile_project
from orchestrator.compiler import compile_host
from orchestrator.engine import plan_hosts
from orchestrator.lab import LabConfig, lab_down, lab_up
from orchestrator.policy import WorktreeSource, load_project

PROJECT = Path(__file__).resolve().parents[1]
LAB, SUBNET = "bench", "10.213.6.0/24"

DEPLOY = """
import base64
import json
from io import BytesIO
from pyinfra import host
from pyinfra.operations import apt, files, server, systemd

OPS = {"apt.packages": apt.packages, "apt.update": apt.update, "files.put": files.put,
       "files.directory": files.directory, "server.shell": server.shell,
       "server.sysctl": server.sysctl, "server.user": server.user,
       "server.group": server.group, "systemd.service": systemd.service}
for spec in json.load(open(SPECS))[host.name]:
    if spec["operation"] == "apt.update" and not REFRESH_LISTS:
        continue  # patchring refreshes lists only when packages change; so does this deploy
    kwargs = dict(spec["args"])
    content = spec["content"]  # text, or {"base64": ...} for bytes that are not UTF-8
    if content is not None:
        text = isinstance(content, str)
        kwargs["src"] = BytesIO(content.encode() if text else base64.b64decode(content["base64"]))
    OPS[spec["operation"]](name=spec["description"], **kwargs)
"""


def timed(argv: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started, proc


def make_repo(dest: Path, inventory: Path) -> Path:
    for folder in ("policies", "templates", "files", "inventory"):
        shutil.copytree(PROJECT / folder, dest / folder, ignore=shutil.ignore_patterns("lab.yml"))
    shutil.copy(inventory, dest / "inventory" / "lab.yml")
    (dest / ".gitignore").write_text("inventory/lab.yml\n.patchring/\n")
    for argv in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "example policies"]):
        subprocess.run(
            ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", *argv],
            cwd=dest,
            check=True,
        )
    return dest


def pyinfra_files(
    repo: Path, work: Path, refresh_lists: bool = False, observe: bool = False
) -> tuple[Path, Path]:
    """An inventory and a deploy running the operations patchring compiles for each host;
    `refresh_lists` keeps the `apt.update` (a first apply needs it); `observe` probes the hosts
    first, as patchring's apply does, so partial file edits (computed from the files the probe
    saw) are among the operations too."""
    project = load_project(WorktreeSource(repo), "inventory")
    seen = plan_hosts(project.desired) if observe else {}
    specs = {
        name: [
            op.model_dump(mode="json")
            for op in compile_host(state, observed=seen[name].observed if seen else None)
        ]
        for name, state in project.desired.items()
    }
    (work / "specs.json").write_text(json.dumps(specs))
    header = f"SPECS = {str(work / 'specs.json')!r}\nREFRESH_LISTS = {refresh_lists!r}\n"
    (work / "deploy.py").write_text(header + DEPLOY)
    hosts = []
    for name, state in project.desired.items():
        h = state.host
        hosts.append(
            (
                name,
                {
                    "ssh_hostname": h.address,
                    "ssh_user": h.user,
                    "ssh_key": h.identity_file,
                    "ssh_known_hosts_file": h.known_hosts,
                    "ssh_strict_host_key_checking": "yes",
                },
            )
        )
    (work / "inventory.py").write_text(f"hosts = {hosts!r}\n")
    return work / "inventory.py", work / "deploy.py"


def main() -> int:
    compile_project()
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rollout", action="store_true", help="converge with a ring rollout")
    args = parser.parse_args()
    cli = [sys.executable, "-m", "orchestrator"]
    work = Path(tempfile.mkdtemp(prefix="patchring-bench-"))
    inventory = work / "lab.yml"
    started = time.perf_counter()
    lab_up(LabConfig(name=LAB, hosts=args.hosts, subnet=SUBNET, inventory_path=inventory))
    print(f"lab up, {args.hosts} hosts: {time.perf_counter() - started:.2f} s")
    try:
        repo = make_repo(work / "repo", inventory)
        if args.rollout:
            seconds, proc = timed([*cli, "rollout", "--json"], repo)
            record = json.loads(proc.stdout)
            rings = ", ".join(
                f"{r['ring']} {len(r['hosts'])} {r['status']}" for r in record["rings"]
            )
            checks = sum(len(v["results"]) for v in record["verify"])
            print(
                f"first rollout of the example over three rings, {args.hosts} hosts: "
                f"{seconds:.2f} s (exit {proc.returncode}; {rings}; {checks} checks verified)"
            )
            seconds, proc = timed([*cli, "rollout", "--json"], repo)
            print(f"second rollout (nothing to change, every ring verified): {seconds:.2f} s")
        else:
            seconds, proc = timed([*cli, "apply", "--json"], repo)
            doc = json.loads(proc.stdout)
            print(
                f"first apply of the example, {args.hosts} hosts: {seconds:.2f} s "
                f"(exit {proc.returncode}, {doc['summary']})"
            )
        report(cli, repo, work, args)
    finally:
        started = time.perf_counter()
        lab_down(LAB)
        print(f"lab down: {time.perf_counter() - started:.2f} s")
    return 0


def report(cli: list[str], repo: Path, work: Path, args: argparse.Namespace) -> None:
    rows = {}
    for verb in ("plan", "apply"):
        runs = [timed([*cli, verb, "--json"], repo) for _ in range(args.repeat)]
        doc = json.loads(runs[-1][1].stdout)
        per_host = statistics.mean(h["remote_commands"] for h in doc["hosts"])
        rows[f"patchring {verb} (no change)"] = (statistics.median(s for s, _ in runs), per_host)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    inv, deploy = pyinfra_files(repo, work)
    pyinfra = shutil.which("pyinfra", path=str(Path(sys.executable).parent)) or "pyinfra"
    runs = [
        timed([pyinfra, "-y", "--debug", str(inv), str(deploy)], work) for _ in range(args.repeat)
    ]
    commands = runs[-1][1].stderr.count("Running command on") + runs[-1][1].stdout.count(
        "Running command on"
    )
    if runs[-1][1].returncode != 0:
        print("pyinfra failed:", runs[-1][1].stderr[-2000:])
    rows["pyinfra CLI, same operations (no change)"] = (
        statistics.median(s for s, _ in runs),
        commands / args.hosts,
    )
    print(f"\nno-change runs on {args.hosts} hosts (median of {args.repeat}):")
    print(f"  {'tool':<44} {'wall s':>8} {'remote cmds/host':>17}")
    for name, (seconds, per_host) in rows.items():
        print(f"  {name:<44} {seconds:>8.2f} {per_host:>17.1f}")
    ours, theirs = (
        rows["patchring apply (no change)"],
        rows["pyinfra CLI, same operations (no change)"],
    )
    print(
        f"  ratio pyinfra/patchring: {theirs[0] / ours[0]:.1f}x wall, "
        f"{theirs[1] / max(ours[1], 1e-9):.0f}x remote commands"
    )
    print(f"peak memory of a patchring process (max RSS of children): {peak:.0f} MiB")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
