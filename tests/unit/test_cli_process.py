"""The `patchring` command as a real process (gevent patched, as installed), with no host
reachable: the exit code, and a stderr free of Python's tracebacks and "Exception ignored"
finalizer noise (GitPython's `git cat-file` processes outliving gevent's hub)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
# A host on the loopback interface where nothing listens: refused at once, no traffic leaves.
INVENTORY = """\
ssh: {user: root, identity_file: /nonexistent/id, known_hosts: /nonexistent/known_hosts,
      connect_timeout: 2}
vars: {lab_apt_url: "http://127.0.0.1:1/", lab_apt_key: "x"}
hosts:
  lab-01: {address: 127.0.0.1, port: 1, ring: canary}
  lab-02: {address: 127.0.0.1, port: 1, ring: pilot}
  lab-03: {address: 127.0.0.1, port: 1, ring: pilot}
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    for folder in ("policies", "templates", "files", "inventory"):
        shutil.copytree(PROJECT / folder, root / folder, ignore=shutil.ignore_patterns("lab.yml"))
    (root / "inventory" / "lab.yml").write_text(INVENTORY)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "policies"], cwd=root, check=True)
    return root


def _run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    "args",
    [
        ("plan", "--json"),
        ("apply", "--json"),
        ("plan", "--host", "lab-02", "--host", "lab-03"),
    ],
)
def test_no_traceback_or_finalizer_noise_on_stderr(repo: Path, args: tuple[str, ...]) -> None:
    proc = _run(repo, *args)
    assert proc.returncode == 3, proc.stderr  # hosts unreachable
    assert "Exception ignored" not in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_repeated_host_flag_takes_every_host(repo: Path) -> None:
    proc = _run(repo, "plan", "--json", "--host", "lab-03", "--host", "lab-01")
    hosts = [line for line in proc.stdout.splitlines() if '"host": "lab-' in line]
    assert [h.strip() for h in hosts] == ['"host": "lab-01",', '"host": "lab-03",']
