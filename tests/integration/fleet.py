"""Helpers for integration tests: a policy repo in a temp dir, the CLI as a real subprocess,
and testinfra hosts reached with the lab's key and known_hosts (host keys checked)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import testinfra
import yaml

PROJECT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def patchring(
    repo: Path, *args: str, timeout: float = 600, env: dict[str, str] | None = None
) -> CliResult:
    """The CLI as a real process; `env` adds to (or overrides) this process's environment."""
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **env} if env else None,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def make_repo(dest: Path, lab_inventory: Path, ssh: dict[str, Any] | None = None) -> Path:
    """Copy the example policies into a fresh Git repo and add the lab's inventory to it."""
    for folder in ("policies", "templates", "files", "inventory"):
        shutil.copytree(PROJECT / folder, dest / folder, ignore=shutil.ignore_patterns("lab.yml"))
    data = yaml.safe_load(lab_inventory.read_text())
    data["ssh"].update(ssh or {})
    (dest / "inventory" / "lab.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=Test",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-qm",
            "example policies",
        ],
        cwd=dest,
        check=True,
    )
    return dest


def write_yaml(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def ssh_config(path: Path, identity_file: Path, known_hosts: Path) -> Path:
    path.write_text(
        "Host *\n  User root\n"
        f"  IdentityFile {identity_file}\n  UserKnownHostsFile {known_hosts}\n"
        "  StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 5\n"
        f"  ControlMaster auto\n  ControlPath {path.parent}/cm-%h\n  ControlPersist 30\n"
    )
    return path


def host(address: str, config: Path) -> Any:
    return testinfra.get_host(f"ssh://{address}", ssh_config=str(config))


def break_canary(repo: Path) -> None:
    """Pin the canary ring to the agent's broken 1.0-3 (its postinst fails) from the lab's
    `broken` suite: a bad security update that must stop in the first ring."""
    inventory = repo / "inventory" / "fleet.yml"
    data = yaml.safe_load(inventory.read_text())
    for ring in data["rings"]:
        if ring["name"] == "canary":
            ring["vars"] = {"agent_version": "1.0-3"}
    write_yaml(inventory, data)
    write_yaml(
        repo / "policies" / "broken-suite.yml",
        {
            "name": "broken-suite",
            "select": {"rings": ["canary"]},
            "apt_repositories": [
                {
                    "name": "patchring-lab-broken",
                    "url": "{{ lab_apt_url }}",
                    "suite": "broken",
                    "key": "{{ lab_apt_key }}",
                }
            ],
        },
    )


def commit(repo: Path, message: str) -> None:
    """Rollouts take policies from Git: commit what the test changed."""
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=Test",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-qm",
            message,
        ],
        cwd=repo,
        check=True,
    )
