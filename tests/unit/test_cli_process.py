"""The `patchring` command as a real process (gevent patched, as installed), with no host
reachable: the exit code, and a stderr free of Python's tracebacks and "Exception ignored"
finalizer noise (GitPython's `git cat-file` processes outliving gevent's hub)."""

from __future__ import annotations

import argparse
import json
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


def _modules_loaded(*args: str) -> set[str]:
    """The modules a real `patchring ARGS` process had imported when it exited."""
    probe = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
        f"sys.argv = ['patchring', *{list(args)!r}]\n"
        "from orchestrator.cli.entry import run\n"
        "run()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


def test_version_imports_no_command_and_patches_nothing() -> None:
    loaded = _modules_loaded("--version")
    heavy = {"gevent", "pydantic", "pyinfra", "paramiko", "jinja2", "rich", "git"}
    assert not heavy & {name.split(".")[0] for name in loaded}
    assert not {name for name in loaded if name.startswith("orchestrator.cli.")} - {
        "orchestrator.cli.entry",
        "orchestrator.cli.main",
        "orchestrator.cli.console",
    }


def test_a_command_imports_only_its_own_command_module() -> None:
    loaded = _modules_loaded("plan", "--help")
    assert "orchestrator.cli.commands" in loaded
    assert not {"orchestrator.cli.rollouts", "orchestrator.cli.assess", "rich"} & loaded
    assert "gevent" in loaded  # a command may reach hosts: sockets are patched first
    # validate reaches no host and forks its workers: it does not patch
    assert "gevent" not in _modules_loaded("validate", "--help")


def test_every_registered_command_is_in_the_command_table() -> None:
    from orchestrator.cli.main import COMMAND_MODULES, MODULE_ORDER, build_parser

    parser = build_parser(MODULE_ORDER)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == set(COMMAND_MODULES)
    for command, module in COMMAND_MODULES.items():
        alone = build_parser((module,))
        inner = next(a for a in alone._actions if isinstance(a, argparse._SubParsersAction))
        assert command in inner.choices
