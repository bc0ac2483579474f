"""An inventory and a policy carrying injection attempts are refused by every command, with
located errors, and nothing runs: no marker file appears on the controller or on any lab host."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Lab
from tests.integration.fleet import make_repo, patchring

pytestmark = pytest.mark.integration


def _hostile_repo(tmp_path: Path, lab: Lab, marker: str) -> Path:
    repo = make_repo(tmp_path / "repo", lab.inventory, ssh={"connect_timeout": 3})
    path = repo / "inventory" / "lab.yml"
    data = yaml.safe_load(path.read_text())
    first, second, third, *_ = data["hosts"]
    touch = f"touch {marker}"
    data["ssh"]["user"] = f"root\nProxyCommand sh -c '{touch}'"
    data["hosts"][first]["address"] += f"\nProxyCommand {touch}"
    data["hosts"][second]["address"] = f"-oProxyCommand={touch}"
    data["hosts"][third]["groups"] = [f"$({touch})"]
    data["hosts"][f"evil\n{touch}"] = {"address": "10.0.0.1"}
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=1000))
    (repo / "policies" / "evil.yml").write_text(
        "name: evil\nselect: {all: true}\n"
        f'sysctl: [{{key: net.ipv4.ip_forward, value: "1; {touch}"}}]\n'
        f'files: [{{path: "/etc/`{touch}`", content: x}}, {{path: "/etc/a\\0b", content: y}}]\n'
        f'packages: [{{name: "-o APT::Update::Pre-Invoke::={touch}"}}]\n'
    )
    return repo


def _located(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": error: " in line]


def test_injection_attempts_are_refused_by_every_command_and_nothing_runs(
    tmp_path: Path, lab: Lab
) -> None:
    marker = f"/tmp/pwned-{secrets.token_hex(6)}"
    repo = _hostile_repo(tmp_path, lab, marker)
    expected: list[str] | None = None
    for command in (["validate"], ["plan"], ["plan", "--json"], ["apply"], ["verify"]):
        result = patchring(repo, *command, timeout=120)
        assert result.code == 1, (command, result.stdout, result.stderr)
        assert result.stderr.splitlines()[-1].endswith("; nothing was changed"), result.stderr
        errors = _located(result.stderr)
        assert expected is None or errors == expected, command
        expected = errors
    assert expected is not None
    short = marker.removeprefix("/tmp/")
    location = re.compile(r"(inventory/lab\.yml|policies/evil\.yml):\d+:\d+: error: ")
    assert all(location.match(line) for line in expected), expected
    messages = "\n".join(expected)
    for needle in (
        "' is not a valid user or group name",  # ssh.user
        "' is not an IP address or a DNS name: it contains a newline",  # address + ProxyCommand
        f"'-oProxyCommand=touch /tmp/{short}' is not an IP address or a DNS name",
        f"'$(touch /tmp/{short})' is not a valid name",  # group
        f"'evil\\ntouch /tmp/{short}' is not a valid name",  # host name
        f"'1; touch /tmp/{short}' is not a sysctl value",
        "contains a character not allowed in a path",  # backticks
        "'/etc/a\\x00b' contains a NUL character",
        "' is not a Debian package name",
    ):
        assert needle in messages, (needle, messages)
    assert len(expected) == 9, messages

    assert not Path(marker).exists(), "a command from the inventory ran on the controller"
    for name in lab.hosts:
        lab.exec(name, "sh", "-c", f"test ! -e {marker}")  # asserts the exit status is 0
