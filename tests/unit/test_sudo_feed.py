"""Users' testinfra files on hosts whose sudo needs a password: the password reaches the
pytest subprocess on a pipe (not argv, not the environment), and testinfra's backend gives it
to `sudo -S` on standard input, only for commands that go through sudo."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from orchestrator.model.desired import DesiredState, HostTarget, UserCheckFile
from orchestrator.source import SourceLocation
from orchestrator.verify.sudofeed import feed_sudo_password
from orchestrator.verify.usertests import UserRun, plan_user_runs, pytest_argv, run_pytest

SECRET = "s3cret-Pw"

# Runs inside the pytest subprocess; uses no `host`, so it never connects anywhere.
PROBE = f"""\
from pathlib import Path

from orchestrator.verify.sudofeed import PASSWORDS


def test_the_plugin_got_the_passwords(pytestconfig):
    assert pytestconfig.stash[PASSWORDS] == {{"10.0.0.1": "{SECRET}"}}


def test_the_password_is_not_in_argv_or_environment():
    for name in ("cmdline", "environ"):
        assert "{SECRET}".encode() not in Path(f"/proc/self/{{name}}").read_bytes()
"""


class FakeBackend:
    """The parts of testinfra's backend that `feed_sudo_password` uses; runs commands locally."""

    sudo = True

    @staticmethod
    def quote(command: str, *args: str) -> str:
        return command % tuple(shlex.quote(a) for a in args) if args else command

    @staticmethod
    def encode(data: str) -> bytes:
        return data.encode()

    def result(self, rc: int, cmd: bytes, stdout: bytes, stderr: bytes) -> Any:
        return rc, cmd, stdout, stderr


def test_sudo_reads_the_password_only_for_commands_through_sudo() -> None:
    backend: Any = FakeBackend()
    feed_sudo_password(backend, SECRET)
    wrapped = backend.get_sudo_command("id -u", "app")
    assert shlex.split(wrapped) == [
        "sudo",
        "-S",
        "-k",
        "-p",
        "",
        "-u",
        "app",
        "/bin/sh",
        "-c",
        "id -u",
    ]
    assert SECRET not in wrapped
    rc, cmd, stdout, _ = backend.run_local("cat")  # stands in for sudo reading its stdin
    assert (rc, stdout) == (0, f"{SECRET}\n".encode())
    assert SECRET.encode() not in cmd
    backend.sudo = False  # `with host.sudo(False)`: the command's stdin stays empty
    assert backend.run_local("cat")[2] == b""


def _state(name: str, address: str, password: str | None) -> DesiredState:
    check = UserCheckFile(
        path="checks/test_probe.py", policy="p", location=SourceLocation("p.yml", 1, 1),
        content=PROBE,
    )  # fmt: skip
    host = HostTarget(
        name=name, address=address, ring="canary", sudo=True,
        sudo_password=SecretStr(password) if password else None,
    )  # fmt: skip
    return DesiredState(host=host, resources=(), user_checks=(check,))


def test_a_run_with_sudo_passwords_loads_the_plugin_and_hands_them_over(tmp_path: Path) -> None:
    fleet = {"a": _state("a", "10.0.0.1", SECRET), "b": _state("b", "10.0.0.2", None)}
    (run,) = plan_user_runs(fleet)
    assert {a: p.get_secret_value() for a, p in run.sudo_passwords.items()} == {"10.0.0.1": SECRET}
    argv = pytest_argv(run, tmp_path / "cfg", tmp_path / "j.xml", tmp_path / "pytest.ini")
    assert argv[-3:] == ["--sudo", "-p", "orchestrator.verify.sudofeed"]
    assert SECRET not in " ".join(argv)

    results = run_pytest(run, tmp_path / "ssh_config", tmp_path / "run", str)
    assert {(h, r.check_id, r.status) for h, r in results} == {
        (host, f"p/checks/test_probe.py::{test}", "passed")
        for host in ("a", "b")
        for test in (
            "test_the_plugin_got_the_passwords",
            "test_the_password_is_not_in_argv_or_environment",
        )
    }, [(r.actual, r.message) for _, r in results]


def test_a_run_without_passwords_loads_no_plugin(tmp_path: Path) -> None:
    run = UserRun(hosts={"10.0.0.2": "b"}, files={}, timeout=5, sudo=(True, None))
    argv = pytest_argv(run, tmp_path / "cfg", tmp_path / "j.xml", tmp_path / "pytest.ini")
    assert "orchestrator.verify.sudofeed" not in argv
