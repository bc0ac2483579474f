"""Non-root logins with sudo on the lab: an unprivileged `deploy` user on two hosts, one with
`NOPASSWD`, one whose sudo asks for a password (given from an environment variable).

Root's key is taken off both hosts, so every command patchring runs there (the probe, pyinfra's
operations, verify's generated checks, a user's testinfra file, the gate's health check) can
only have reached root as `deploy` through sudo. A wrong and a missing password fail that host
alone, with a clear message, within the timeouts; no password is in any output or file.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from orchestrator.lab import faults
from tests.integration.conftest import LAB_NAME, Lab
from tests.integration.fleet import CliResult, commit, make_repo, patchring, write_yaml

pytestmark = pytest.mark.integration

PASSWORD_ENV = "PATCHRING_TEST_SUDO_PASSWORD"
TIMEOUTS = {"connect_timeout": 3, "command_timeout": 60}

# Passes only as root: /etc/shadow is root's alone, and `id -u` says who runs the commands.
ROOT_CHECKS = """\
def test_runs_as_root(host):
    assert host.check_output("id -u") == "0"


def test_reads_the_shadow_file(host):
    assert "deploy:" in host.file("/etc/shadow").content_string
"""


@dataclass(frozen=True)
class SudoHosts:
    nopasswd: str
    password_host: str
    password: str


def _exec(lab: Lab, name: str, argv: list[str], text: str | None = None) -> None:
    proc = faults.host_exec(LAB_NAME, name, argv, state_dir=lab.status.state_dir, input_text=text)
    assert proc.returncode == 0, f"{argv} on {name}: {proc.stderr}"


def _add_deploy_user(lab: Lab, name: str, sudoers: str, password: str | None) -> None:
    """`deploy` with the controller's lab key and `sudoers`; root's own key taken away."""
    key = Path(lab.status.identity_file).with_suffix(".pub").read_text()
    _exec(lab, name, ["useradd", "--create-home", "--shell", "/bin/sh", "deploy"])
    _exec(lab, name, ["install", "-d", "-m", "700", "-o", "deploy", "/home/deploy/.ssh"])
    _exec(lab, name, ["sh", "-c", "cat > /home/deploy/.ssh/authorized_keys"], key)
    _exec(lab, name, ["chown", "deploy:", "/home/deploy/.ssh/authorized_keys"])
    _exec(lab, name, ["sh", "-c", "umask 337 && cat > /etc/sudoers.d/deploy"], sudoers + "\n")
    if password is None:
        _exec(lab, name, ["usermod", "-p", "*", "deploy"])  # no password, not locked
    else:
        _exec(lab, name, ["chpasswd"], f"deploy:{password}\n")  # on stdin, not argv
    _exec(lab, name, ["rm", "-f", "/root/.ssh/authorized_keys"])


@pytest.fixture(scope="module")
def sudo_hosts(lab: Lab) -> Iterator[SudoHosts]:
    nopasswd, password_host = lab.hosts[-2:]
    lab.reset([nopasswd, password_host])
    password = "pw-" + secrets.token_hex(12)
    _add_deploy_user(lab, nopasswd, "deploy ALL=(ALL) NOPASSWD:ALL", None)
    _add_deploy_user(lab, password_host, "deploy ALL=(ALL) ALL", password)
    try:
        yield SudoHosts(nopasswd, password_host, password)
    finally:
        lab.reset([nopasswd, password_host])  # the user, the sudoers file, root's key


def _repo(path: Path, lab: Lab, hosts: SudoHosts, password_ssh: dict[str, object]) -> Path:
    """The example project on the two hosts (both in canary), logging in as `deploy`."""
    repo = make_repo(path, lab.inventory, ssh=TIMEOUTS)
    inventory = repo / "inventory" / "lab.yml"
    data = yaml.safe_load(inventory.read_text())
    chosen = {hosts.nopasswd: {}, hosts.password_host: password_ssh}
    data["hosts"] = {
        name: {**data["hosts"][name], "ring": "canary", "ssh": {"user": "deploy", **extra}}
        for name, extra in chosen.items()
    }
    data["ssh"]["sudo"] = True
    write_yaml(inventory, data)
    fleet = yaml.safe_load((repo / "inventory" / "fleet.yml").read_text())
    gate = next(ring for ring in fleet["rings"] if ring["name"] == "canary")["gate"]
    gate["health_checks"].append({"name": "root-only", "command": "head -c1 /etc/shadow"})
    write_yaml(repo / "inventory" / "fleet.yml", fleet)  # healthy only when run as root
    (repo / "checks").mkdir()
    (repo / "checks" / "test_root.py").write_text(ROOT_CHECKS)
    policy = repo / "policies" / "acme-agent.yml"
    write_yaml(policy, {**yaml.safe_load(policy.read_text()), "checks": ["checks/test_root.py"]})
    commit(repo, "two hosts, as deploy with sudo")
    return repo


def _by_host(result: CliResult) -> dict[str, dict]:
    return {entry["host"]: entry for entry in result.json()["hosts"]}


def _assert_nowhere(secret: str, results: list[CliResult], repo: Path) -> None:
    for result in results:
        assert secret not in result.stdout and secret not in result.stderr
    written = [p for p in (repo / ".patchring").rglob("*") if p.is_file()]
    assert written  # run records, reports and the ledger were written
    for path in written:
        assert secret.encode() not in path.read_bytes(), path


def test_plan_apply_verify_and_rollout_as_a_sudo_user(
    tmp_path: Path, lab: Lab, sudo_hosts: SudoHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, sudo_hosts.password)
    repo = _repo(tmp_path / "repo", lab, sudo_hosts, {"sudo_password_env": PASSWORD_ENV})
    both = [sudo_hosts.nopasswd, sudo_hosts.password_host]
    outputs = []

    plan = patchring(repo, "plan", "--json", "--detailed-exitcode", timeout=300)
    outputs.append(plan)
    assert plan.code == 2, plan.stdout + plan.stderr
    for name, entry in _by_host(plan).items():
        changes = {c["resource_id"]: c for c in entry["changes"]}
        assert changes["package:acme-agent"]["summary"] == "acme-agent (absent) -> 1.0-2", name
        assert changes["file:/etc/acme/agent.conf"]["actions"] == ["create"], name

    applied = patchring(repo, "apply", "--json", timeout=600)
    outputs.append(applied)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert {h["status"] for h in applied.json()["hosts"]} == {"changed"}
    for name in both:
        facts = lab.exec(
            name,
            "sh",
            "-c",
            "dpkg-query -W -f '${Version}\\n' acme-agent; stat -c '%U:%G %a' /etc/acme/agent.conf;"
            " systemctl is-active acme-agent; journalctl -q _COMM=sudo | grep -c 'deploy :'",
        ).split("\n")
        assert facts[:3] == ["1.0-2", "root:root 640", "active"], name
        assert int(facts[3]) > 0, name  # sudo logged deploy's commands

    again = patchring(repo, "plan", "--json", "--detailed-exitcode", timeout=300)
    outputs.append(again)
    assert again.code == 0, again.stdout + again.stderr
    assert {h["status"] for h in again.json()["hosts"]} == {"in-sync"}

    verified = patchring(repo, "verify", "--json", timeout=300)
    outputs.append(verified)
    assert verified.code == 0, verified.stdout + verified.stderr
    for entry in verified.json()["verify"]:
        by_source: dict[str, set[str]] = {}
        for check in entry["results"]:
            by_source.setdefault(check["source"], set()).add(check["status"])
        assert by_source == {"generated": {"passed"}, "user": {"passed"}}, entry
        user = {c["check_id"] for c in entry["results"] if c["source"] == "user"}
        assert user == {
            "acme-agent/checks/test_root.py::test_runs_as_root",
            "acme-agent/checks/test_root.py::test_reads_the_shadow_file",
        }

    rollout = patchring(repo, "rollout", "--to", "canary", "--json", timeout=600)
    outputs.append(rollout)
    assert rollout.code == 0, rollout.stdout + rollout.stderr
    record = rollout.json()
    assert [(r["ring"], r["status"]) for r in record["rings"]][:1] == [("canary", "passed")]
    assert {v["host"] for v in record["verify"]} == set(both)
    _assert_nowhere(sudo_hosts.password, outputs, repo)


def test_a_wrong_or_missing_sudo_password_fails_that_host_alone(
    tmp_path: Path, lab: Lab, sudo_hosts: SudoHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-" + secrets.token_hex(12)
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    repo = _repo(tmp_path / "wrong", lab, sudo_hosts, {"sudo_password_env": PASSWORD_ENV})
    refused = f"sudo on {sudo_hosts.password_host} refused the password from env:{PASSWORD_ENV}"
    outputs = []
    for command in ("plan", "apply", "verify"):
        result = patchring(repo, command, "--json", timeout=120)
        outputs.append(result)
        assert result.code == 3, result.stdout + result.stderr
        entries = (
            _by_host(result)
            if command != "verify"
            else {v["host"]: v for v in result.json()["verify"]}
        )
        assert refused in str(entries[sudo_hosts.password_host]), command
        assert not entries[sudo_hosts.nopasswd].get("error"), command
    text = patchring(repo, "plan", timeout=120)
    outputs.append(text)
    assert refused in text.stdout + text.stderr
    _assert_nowhere(wrong, outputs, repo)

    missing = _repo(tmp_path / "missing", lab, sudo_hosts, {})
    result = patchring(missing, "plan", "--json", timeout=120)
    assert result.code == 3, result.stdout + result.stderr
    error = _by_host(result)[sudo_hosts.password_host]["error"]
    assert f"sudo on {sudo_hosts.password_host} asks for a password" in error
    assert "ssh.sudo_password_env" in error
    assert not _by_host(result)[sudo_hosts.nopasswd].get("error")
    assert sudo_hosts.password not in result.stdout + result.stderr
