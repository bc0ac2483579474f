"""Rollout ring by ring on real hosts, with verification and reports for auditors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Lab
from tests.integration.fleet import break_canary, commit, host, make_repo, patchring, write_yaml

pytestmark = pytest.mark.integration

USER_CHECK = """\
def test_agent_binary_is_there(host):
    assert host.file("/usr/bin/acme-agent").exists


def test_agent_listens_on_the_moon(host):
    assert host.file("/etc/acme/agent.conf").contains("moon")
"""


@pytest.fixture
def repo(tmp_path: Path, lab: Lab) -> Path:
    lab.reset()
    return make_repo(
        tmp_path / "repo", lab.inventory, ssh={"connect_timeout": 3, "command_timeout": 90}
    )


def test_rollout_over_three_rings_passes_and_verifies_every_host(repo: Path, lab: Lab) -> None:
    result = patchring(repo, "rollout", "--json")
    assert result.code == 0, result.stderr
    record = result.json()
    assert record["schema"] == "patchring.run/v1"
    assert record["kind"] == "rollout"
    assert [(r["ring"], r["status"]) for r in record["rings"]] == [
        ("canary", "passed"),
        ("pilot", "passed"),
        ("broad", "passed"),
    ]
    assert {v["host"] for v in record["verify"]} == set(lab.hosts)
    assert all(c["status"] == "passed" for v in record["verify"] for c in v["results"])
    assert record["source"]["commit"] and record["source"]["dirty"] is False
    runs = repo / ".patchring" / "runs"
    for suffix in (".json", ".html", ".junit.xml", ".md"):
        assert (runs / f"{record['id']}{suffix}").is_file()


def test_broken_update_stops_the_rollout_in_the_first_ring(repo: Path, lab: Lab) -> None:
    break_canary(repo)
    commit(repo, "acme-agent 1.0-3 for canary")
    result = patchring(repo, "rollout", "--json")
    assert result.code == 3
    record = result.json()
    assert [(r["ring"], r["status"]) for r in record["rings"]] == [
        ("canary", "failed"),
        ("pilot", "not-started"),
        ("broad", "not-started"),
    ]
    assert set(record["rings"][0]["failed_hosts"]) == set(lab.ring("canary"))
    for name in lab.ring("pilot") + lab.ring("broad"):  # later rings untouched, seen on the hosts
        assert not host(lab.address(name), lab.ssh_config).package("acme-agent").is_installed
    html = (repo / ".patchring" / "runs" / f"{record['id']}.html").read_text()
    assert "simulated broken postinst" in html
    for name in lab.ring("canary"):
        assert name in html
    report = patchring(repo, "report", record["id"], "--format", "markdown")
    assert report.code == 0
    assert "canary" in report.stdout and "failed" in report.stdout


def test_users_testinfra_file_runs_and_appears_in_the_report(repo: Path, lab: Lab) -> None:
    (repo / "checks").mkdir()
    (repo / "checks" / "test_agent.py").write_text(USER_CHECK)
    policy = repo / "policies" / "acme-agent.yml"
    data = yaml.safe_load(policy.read_text())
    data["checks"] = ["checks/test_agent.py"]
    write_yaml(policy, data)
    assert patchring(repo, "apply").code == 0
    result = patchring(repo, "verify", "--json")
    assert result.code == 3  # the moon check fails on every host
    record = result.json()
    for verification in record["verify"]:
        user = {c["check_id"]: c for c in verification["results"] if c["source"] == "user"}
        passed = [c for i, c in user.items() if i.endswith("test_agent_binary_is_there")]
        failed = [c for i, c in user.items() if i.endswith("test_agent_listens_on_the_moon")]
        assert [c["status"] for c in passed] == ["passed"]
        assert [c["status"] for c in failed] == ["failed"]
    junit = (repo / ".patchring" / "runs" / f"{record['id']}.junit.xml").read_text()
    assert "test_agent_listens_on_the_moon" in junit


def test_drift_fails_verify_with_the_evidence(repo: Path, lab: Lab) -> None:
    assert patchring(repo, "apply").code == 0
    drifted = lab.hosts[1]
    lab.exec(drifted, "chmod", "0666", "/etc/acme/agent.conf")
    result = patchring(repo, "verify", "--host", drifted, "--json")
    assert result.code == 3
    (verification,) = result.json()["verify"]
    failed = [c for c in verification["results"] if c["status"] == "failed"]
    assert [c["check_id"] for c in failed] == ["acme-agent/file:/etc/acme/agent.conf/mode"]
    assert failed[0]["expected"] != failed[0]["actual"]
    assert failed[0]["evidence"], "the failing check carries the commands it ran"
