"""Verify on real hosts over SSH: generated checks with evidence, drift, users' testinfra files,
the exported pytest file, and hosts that hang."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.lab import faults
from orchestrator.policy import WorktreeSource, load_project
from orchestrator.verify import checks_for, render_pytest_module, verify_hosts
from orchestrator.verify.export import checks_by_address
from tests.integration.conftest import LAB_NAME, Lab
from tests.integration.fleet import make_repo, patchring, write_yaml

pytestmark = pytest.mark.integration

TIMEOUTS = {"connect_timeout": 3, "command_timeout": 60}

USER_CHECKS = """\
def test_agent_binary_is_there(host):
    assert host.file("/usr/bin/acme-agent").exists


def test_agent_listens_on_the_moon(host):
    assert host.file("/etc/acme/agent.conf").contains("moon")
"""


@pytest.fixture
def repo(tmp_path: Path, lab: Lab) -> Path:
    return make_repo(tmp_path / "repo", lab.inventory, ssh=TIMEOUTS)


def _applied(repo: Path, lab: Lab) -> Path:
    lab.reset()
    result = patchring(repo, "apply")
    assert result.code == 0, result.stdout + result.stderr
    return repo


def test_every_check_passes_after_apply_then_drift_fails_with_evidence(
    repo: Path, lab: Lab
) -> None:
    fleet = load_project(WorktreeSource(_applied(repo, lab))).desired
    started = time.monotonic()
    results = verify_hosts(fleet)
    assert time.monotonic() - started < 30
    assert set(results) == set(lab.hosts)
    for name, verification in results.items():
        assert verification.status == "passed", [
            (r.check_id, r.actual, r.message) for r in verification.results if r.status != "passed"
        ]
        assert [r.check_id for r in verification.results] == [c.id for c in checks_for(fleet[name])]
        assert verification.remote_commands == 1  # one ssh session answered every check
        assert all(r.evidence for r in verification.results)
        assert verification.ring == fleet[name].host.ring

    drifted = lab.hosts[2]
    lab.exec(drifted, "apt-get", "install", "-y", "-q", "--allow-downgrades", "acme-agent=1.0-1")
    lab.exec(drifted, "sh", "-c", "chmod 0666 /etc/acme/agent.conf && echo 'debug = true' "
             ">> /etc/acme/agent.conf && systemctl stop acme-agent")  # fmt: skip
    (verification,) = verify_hosts({drifted: fleet[drifted]}).values()
    assert verification.status == "failed"
    failed = {r.check_id: r for r in verification.results if r.status != "passed"}
    assert sorted(failed) == [
        "acme-agent/file:/etc/acme/agent.conf/content",
        "acme-agent/file:/etc/acme/agent.conf/mode",
        "acme-agent/file:/etc/acme/agent.conf/restarted:acme-agent.service",
        "acme-agent/package:acme-agent/version",
        "acme-agent/patch:DSA-9001-1/acme-agent/fixed",
        "acme-agent/service:acme-agent/running",
    ]
    assert {r.status for r in failed.values()} == {"failed"}
    mode = failed["acme-agent/file:/etc/acme/agent.conf/mode"]
    assert (mode.expected, mode.actual) == ("0640", "0666")
    assert [(e.command, e.exit_status, e.stdout) for e in mode.evidence] == [
        ("stat -Lc %a /etc/acme/agent.conf", 0, "666\n")
    ]
    version = failed["acme-agent/package:acme-agent/version"]
    assert (version.expected, version.actual) == ("1.0-2", "1.0-1")
    assert version.evidence[0].command == "dpkg-query -f '${Status} ${Version}' -W acme-agent"
    patch = failed["acme-agent/patch:DSA-9001-1/acme-agent/fixed"]
    assert (patch.expected, patch.actual) == (">= 1.0-2 or not installed", "1.0-1")
    running = failed["acme-agent/service:acme-agent/running"]
    assert running.actual == "not running"
    assert running.evidence[0].command == "systemctl is-active acme-agent"
    assert running.evidence[0].exit_status != 0


def test_the_exported_checks_pass_with_plain_pytest_testinfra(repo: Path, lab: Lab) -> None:
    fleet = load_project(WorktreeSource(_applied(repo, lab))).desired
    module = repo / "test_generated.py"
    module.write_text(render_pytest_module(checks_by_address(fleet)))
    hosts = ",".join(f"ssh://{lab.address(name)}" for name in lab.hosts)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(module), f"--hosts={hosts}",
         f"--ssh-config={lab.ssh_config}", "-q", "-p", "no:cacheprovider", "--rootdir", str(repo)],
        cwd=repo, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    count = sum(len(checks_for(state)) for state in fleet.values())
    assert f"{count} passed" in proc.stdout


def test_users_testinfra_files_pass_fail_and_error_per_host(repo: Path, lab: Lab) -> None:
    (repo / "checks").mkdir()
    (repo / "checks" / "test_agent.py").write_text(USER_CHECKS)
    (repo / "checks" / "test_broken.py").write_text("def test_x(host)\n    pass\n")
    policy = repo / "policies" / "acme-agent.yml"
    data = yaml.safe_load(policy.read_text())
    data["checks"] = ["checks/test_agent.py"]
    write_yaml(policy, data)
    write_yaml(repo / "policies" / "canary-extra.yml", {
        "name": "canary-extra", "select": {"rings": ["canary"]},
        "checks": ["checks/test_broken.py"],
    })  # fmt: skip
    fleet = load_project(WorktreeSource(_applied(repo, lab))).desired
    canary = set(lab.ring("canary"))

    results = verify_hosts(fleet)
    for name, verification in results.items():
        assert verification.status == "failed"
        user = {r.check_id: r for r in verification.results if r.source == "user"}
        expected = {
            "acme-agent/checks/test_agent.py::test_agent_binary_is_there",
            "acme-agent/checks/test_agent.py::test_agent_listens_on_the_moon",
        } | ({"canary-extra/checks/test_broken.py"} if name in canary else set())
        assert set(user) == expected
        there = user["acme-agent/checks/test_agent.py::test_agent_binary_is_there"]
        assert there.status == "passed"
        assert there.evidence[-1].command == "test -e /usr/bin/acme-agent"
        moon = user["acme-agent/checks/test_agent.py::test_agent_listens_on_the_moon"]
        assert moon.status == "failed"
        assert moon.actual.startswith("AssertionError: assert False")
        assert "contains('moon')" in moon.actual
        assert [e.command for e in moon.evidence][-1] == "grep -qs -- moon /etc/acme/agent.conf"
        assert moon.evidence[-1].exit_status == 1
        if name in canary:
            broken = user["canary-extra/checks/test_broken.py"]
            assert broken.status == "error"
            assert "SyntaxError: expected ':'" in broken.actual
            assert 'File "checks/test_broken.py", line 1' in broken.actual
        generated = [r for r in verification.results if r.source == "generated"]
        assert {r.status for r in generated} == {"passed"}


def test_a_frozen_host_is_reported_with_errors_not_a_hang(repo: Path, lab: Lab) -> None:
    (repo / "checks").mkdir()
    (repo / "checks" / "test_agent.py").write_text(USER_CHECKS)
    policy = repo / "policies" / "acme-agent.yml"
    write_yaml(policy, {**yaml.safe_load(policy.read_text()), "checks": ["checks/test_agent.py"]})
    fleet = load_project(WorktreeSource(repo)).desired
    frozen = lab.hosts[3]
    faults.freeze_host(LAB_NAME, frozen, state_dir=lab.status.state_dir)
    try:
        started = time.monotonic()
        results = verify_hosts(fleet)
        seconds = time.monotonic() - started
    finally:
        faults.thaw_host(LAB_NAME, frozen, state_dir=lab.status.state_dir)
    assert seconds < 45
    stuck = results[frozen]
    assert stuck.status == "unreachable"
    assert stuck.error and stuck.error.startswith("unreachable: ")
    assert len(stuck.results) == len(checks_for(fleet[frozen])) + 1
    assert {r.status for r in stuck.results} == {"error"}
    assert all(r.message == stuck.error for r in stuck.results)
    unrun = stuck.results[-1]  # the user's file: its tests are unknown, it is one error
    assert (unrun.check_id, unrun.source, unrun.actual) == (
        "acme-agent/checks/test_agent.py",
        "user",
        "not run",
    )
    for name in set(lab.hosts) - {frozen}:
        assert results[name].status in {"passed", "failed"}
        assert any(r.source == "user" for r in results[name].results)


def test_a_host_that_stops_answering_mid_way_times_out(repo: Path, lab: Lab) -> None:
    slow = lab.hosts[5]
    write_yaml(repo / "policies" / "slow.yml", {
        "name": "slow", "select": {"hosts": [slow]},
        "commands": [{"name": "wait", "run": "true", "unless": "sleep 600"}],
    })  # fmt: skip
    inventory = repo / "inventory" / "lab.yml"
    data = yaml.safe_load(inventory.read_text())
    data["ssh"]["command_timeout"] = 4
    write_yaml(inventory, data)
    fleet = load_project(WorktreeSource(repo)).desired
    started = time.monotonic()
    results = verify_hosts(fleet)
    assert time.monotonic() - started < 30
    assert results[slow].status == "unreachable"
    assert results[slow].error == "unreachable: no answer within 4 s"
    assert {results[n].status for n in lab.hosts if n != slow} <= {"passed", "failed"}
