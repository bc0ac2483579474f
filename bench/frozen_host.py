"""Benchmark: how long an apply of a 10-host lab takes when one host freezes mid-apply.

Run as root: `.venv/bin/python -m bench.frozen_host [--source DIR]`. It boots a lab of its own
(`--lab`, `--subnet`), converges it, then changes the agent's config on every host and gives one
host a slow command between the file and its restart. Once that command runs, the host is
frozen (cgroup freezer) and the apply is timed to its end, with the inventory's default ssh
timeouts (connect 10 s, command 300 s) unless given. `--source` runs another checkout's
`orchestrator` package (e.g. an older commit, exported with `git archive`) for a before/after
comparison. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from orchestrator.lab import LabConfig, faults, lab_down, lab_up

PROJECT = Path(__file__).resolve().parents[1]


def make_repo(dest: Path, inventory: Path, ssh: dict[str, float]) -> Path:
    for folder in ("policies", "templates", "files", "inventory"):
        shutil.copytree(PROJECT / folder, dest / folder, ignore=shutil.ignore_patterns("lab.yml"))
    data = yaml.safe_load(inventory.read_text())
    data["ssh"].update(ssh)
    (dest / "inventory" / "lab.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default="bench-frozen")
    parser.add_argument("--subnet", default="10.213.7.0/24")
    parser.add_argument("--source", type=Path, help="checkout whose orchestrator/ to run")
    parser.add_argument("--connect-timeout", type=float)
    parser.add_argument("--command-timeout", type=float)
    args = parser.parse_args()
    ssh = {
        k: v
        for k, v in (
            ("connect_timeout", args.connect_timeout),
            ("command_timeout", args.command_timeout),
        )
        if v is not None
    }
    env = dict(os.environ, PYTHONPATH=str(args.source or PROJECT))
    folder = Path(tempfile.mkdtemp(prefix="patchring-bench-frozen-"))
    status = lab_up(
        LabConfig(name=args.lab, hosts=10, subnet=args.subnet, inventory_path=folder / "lab.yml")
    )
    try:
        repo = make_repo(folder / "repo", folder / "lab.yml", ssh)
        cli = [sys.executable, "-m", "orchestrator"]
        subprocess.run([*cli, "apply"], cwd=repo, env=env, check=True, capture_output=True)
        frozen = status.hosts[4].name
        template = repo / "templates" / "agent.conf.j2"
        template.write_text(template.read_text().replace("{{ agent_log_level }}", "debug"))
        slow = {
            "name": "slow",
            "run": "sleep 25 && touch /var/tmp/slow",
            "creates": "/var/tmp/slow",
        }
        (repo / "policies" / "slow.yml").write_text(
            yaml.safe_dump({"name": "slow", "select": {"hosts": [frozen]}, "commands": [slow]})
        )
        started = time.monotonic()
        apply = subprocess.Popen(
            [*cli, "apply", "--json"], cwd=repo, env=env, stdout=subprocess.PIPE, text=True
        )
        while faults.host_exec(args.lab, frozen, ["pgrep", "-f", "sleep 25"]).returncode != 0:
            time.sleep(0.2)
        frozen_at = time.monotonic() - started
        faults.freeze_host(args.lab, frozen)
        try:
            out, _ = apply.communicate(timeout=900)
        finally:
            faults.thaw_host(args.lab, frozen)
        total = time.monotonic() - started
        hosts = {h["host"]: h for h in json.loads(out)["hosts"]}
        healthy = [h for name, h in hosts.items() if name != frozen]
        print(f"source: {args.source or PROJECT}")
        print(f"host frozen {frozen_at:.1f} s into the apply; apply ended after {total:.1f} s")
        print(
            f"healthy hosts: {sorted({h['status'] for h in healthy})}, "
            f"their results after at most {max(h['seconds'] for h in healthy):.1f} s"
        )
        print(f"frozen host: {hosts[frozen]['status']}: {hosts[frozen]['error']}")
    finally:
        lab_down(args.lab, status.state_dir)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
