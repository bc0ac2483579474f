"""A pytest plugin for users' testinfra files on hosts whose sudo asks for a password.

testinfra's `--sudo` wraps each command in `sudo /bin/sh -c ...` and runs `ssh` with an empty
standard input, so a sudo that wants a password fails ("a terminal is required"). `usertests`
loads this plugin (`-p orchestrator.verify.sudofeed`) into such a run and hands it the
passwords per host address as JSON on an inherited pipe, whose descriptor number is in
`PATCHRING_SUDO_PASSWORD_FD`: never on a command line, in the environment or in a file. For a
`host` whose address has a password, sudo becomes `sudo -S -k -p ''` (read the password from
standard input, no cached credentials, no prompt text) and the password line is written on the
standard input of each command that goes through sudo, and of no other. Runs inside the pytest
subprocess; adapts testinfra's backend object without importing testinfra.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

FD_VARIABLE = "PATCHRING_SUDO_PASSWORD_FD"
PASSWORDS = pytest.StashKey[dict[str, str]]()


def encode_passwords(passwords: dict[str, str]) -> bytes:
    """What `usertests` writes on the pipe: address -> password."""
    return json.dumps(passwords).encode()


def pytest_configure(config: pytest.Config) -> None:
    """Read the passwords once, before any test, and close the pipe."""
    number = os.environ.pop(FD_VARIABLE, None)
    if number is None:
        return
    descriptor = int(number)
    chunks = []
    while chunk := os.read(descriptor, 65536):
        chunks.append(chunk)
    os.close(descriptor)
    config.stash[PASSWORDS] = json.loads(b"".join(chunks) or b"{}")


@pytest.fixture(autouse=True)
def _patchring_sudo_password(request: pytest.FixtureRequest) -> Iterator[None]:
    passwords = request.config.stash.get(PASSWORDS, {})
    if passwords and "host" in request.fixturenames:
        backend = request.getfixturevalue("host").backend
        address = getattr(getattr(backend, "host", None), "name", None)
        if address in passwords:
            feed_sudo_password(backend, passwords[address])
    yield


def feed_sudo_password(backend: Any, password: str) -> None:
    """Make `backend` (testinfra's, for one host) give sudo its password on standard input."""
    if getattr(backend, "_patchring_sudo_fed", False):
        return  # testinfra keeps one backend per host for the whole session
    line = (password + "\n").encode()

    def get_sudo_command(command: str, sudo_user: str | None) -> str:
        user = ["-u", sudo_user] if sudo_user else []
        return shlex.join(["sudo", "-S", "-k", "-p", "", *user, "/bin/sh", "-c", command])

    def run_local(command: str, *args: str) -> Any:
        # testinfra builds the sudo command and runs it in the same call: `sudo` is still
        # what it was then, so only commands through sudo ever see the password.
        cmd = backend.encode(backend.quote(command, *args))
        proc = subprocess.run(
            cmd, shell=True, input=line if backend.sudo else b"", capture_output=True, check=False
        )
        return backend.result(proc.returncode, cmd, proc.stdout, proc.stderr)

    backend.get_sudo_command = get_sudo_command
    backend.run_local = run_local
    backend._patchring_sudo_fed = True
