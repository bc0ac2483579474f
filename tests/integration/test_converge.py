"""Plan and apply on real hosts over SSH: exact changes, convergence, idempotency, drift, faults."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.lab import faults
from tests.integration.conftest import LAB_NAME, Lab
from tests.integration.fleet import break_canary, host, make_repo, patchring, write_yaml

pytestmark = pytest.mark.integration

TIMEOUTS = {"connect_timeout": 3, "command_timeout": 90}


@pytest.fixture
def repo(tmp_path: Path, lab: Lab) -> Path:
    lab.reset()
    return make_repo(tmp_path / "repo", lab.inventory, ssh=TIMEOUTS)


def _changes(doc: dict, name: str) -> dict[str, dict]:
    entry = next(h for h in doc["hosts"] if h["host"] == name)
    return {c["resource_id"]: c for c in entry["changes"]}


def test_plan_apply_then_nothing_left_to_change(repo: Path, lab: Lab) -> None:
    first = lab.hosts[0]
    plan = patchring(repo, "plan", "--json", "--detailed-exitcode")
    assert plan.code == 2, plan.stderr
    doc = plan.json()
    assert doc["schema"] == "patchring.plan/v1"
    assert doc["summary"]["drifted"] == len(lab.hosts)
    changes = _changes(doc, first)
    assert changes["package:acme-agent"]["summary"] == "acme-agent (absent) -> 1.0-2"
    conf = changes["file:/etc/acme/agent.conf"]
    assert conf["actions"] == ["create"]
    assert conf["diff"].startswith("--- /etc/acme/agent.conf (current)\n+++ /etc/acme/agent.conf\n")
    assert f"+# host: {first}" in conf["diff"] or first in conf["diff"]
    assert changes["sysctl:net.ipv4.conf.all.send_redirects"]["summary"].endswith("-> 0")
    assert changes["user:acme"]["summary"] == "user acme (absent) -> created"

    text = patchring(repo, "plan")
    assert text.code == 0
    assert f"on {len(lab.hosts)} hosts" in text.stdout  # identical changes shown once, counted

    applied = patchring(repo, "apply", "--json")
    assert applied.code == 0, applied.stdout + applied.stderr
    results = {h["host"]: h for h in applied.json()["hosts"]}
    assert {r["status"] for r in results.values()} == {"changed"}

    for name in lab.hosts:
        h = host(lab.address(name), lab.ssh_config)
        assert h.package("acme-agent").version == "1.0-2"
        assert h.package("acme-tool").is_installed
        assert h.service("acme-agent").is_running
        assert h.service("acme-agent").is_enabled
        conf_file = h.file("/etc/acme/agent.conf")
        assert conf_file.mode == 0o640
        assert name in conf_file.content_string
        assert h.user("acme").shell == "/usr/sbin/nologin"
        assert h.run("sysctl -n net.ipv4.conf.all.send_redirects").stdout.strip() == "0"

    again = patchring(repo, "apply", "--json")
    assert again.code == 0
    hosts = again.json()["hosts"]
    assert {h["status"] for h in hosts} == {"unchanged"}
    assert {h["remote_commands"] for h in hosts} == {1}  # one probe per host, nothing else
    assert patchring(repo, "plan", "--detailed-exitcode").code == 0

    # A pin to a version the lab repository does not have fails in the plan, on every host,
    # naming where it was pinned; the apply that follows changes nothing.
    policy = repo / "policies" / "acme-agent.yml"
    policy.write_text(
        policy.read_text().replace('agent_version: "1.0-2"', 'agent_version: "1.0-9"')
    )
    unavailable = patchring(repo, "plan", "--json")
    assert unavailable.code == 3, unavailable.stderr
    errors = {h["host"]: h["error"] for h in unavailable.json()["hosts"]}
    assert all("acme-agent 1.0-9 (pinned at policies/acme-agent.yml:" in e for e in errors.values())
    refused = patchring(repo, "apply", "--json")
    assert {h["status"] for h in refused.json()["hosts"]} == {"failed"}
    assert host(lab.address(first), lab.ssh_config).package("acme-agent").version == "1.0-2"


def test_changes_behind_our_back_show_in_the_next_plan(repo: Path, lab: Lab) -> None:
    assert patchring(repo, "apply").code == 0
    edited, downgraded = lab.hosts[1], lab.hosts[2]
    lab.exec(edited, "sh", "-c", "echo 'debug = true' >> /etc/acme/agent.conf")
    lab.exec(downgraded, "apt-get", "install", "-y", "-q", "--allow-downgrades", "acme-agent=1.0-1")

    doc = patchring(repo, "plan", "--json").json()
    assert set(_changes(doc, edited)) == {"file:/etc/acme/agent.conf", "restart:acme-agent.service"}
    assert "-debug = true\n" in _changes(doc, edited)["file:/etc/acme/agent.conf"]["diff"]
    assert _changes(doc, downgraded)["package:acme-agent"]["summary"] == "acme-agent 1.0-1 -> 1.0-2"
    in_sync = {h["host"] for h in doc["hosts"] if h["status"] == "in-sync"}
    assert in_sync == set(lab.hosts) - {edited, downgraded}

    assert patchring(repo, "apply").code == 0
    assert host(lab.address(downgraded), lab.ssh_config).package("acme-agent").version == "1.0-2"


def test_broken_update_fails_its_hosts_and_the_others_converge(repo: Path, lab: Lab) -> None:
    canary = lab.ring("canary")
    break_canary(repo)

    applied = patchring(repo, "apply", "--json")
    assert applied.code == 3
    results = {h["host"]: h for h in applied.json()["hosts"]}
    for name in canary:
        assert results[name]["status"] == "failed"
        failed = {o["resource_id"]: o for o in results[name]["outcomes"]}["package:acme-agent"]
        assert "simulated broken postinst" in failed["error"]
        assert "dpkg" in failed["error"]
    assert {results[n]["status"] for n in lab.hosts if n not in canary} == {"changed"}
    text = patchring(repo, "apply")
    assert text.code == 3
    assert "simulated broken postinst" in text.stdout


def test_frozen_host_becomes_a_failed_result(repo: Path, lab: Lab) -> None:
    frozen = lab.hosts[3]
    faults.freeze_host(LAB_NAME, frozen, state_dir=lab.status.state_dir)
    try:
        result = patchring(repo, "apply", "--json", timeout=180)
    finally:
        faults.thaw_host(LAB_NAME, frozen, state_dir=lab.status.state_dir)
    assert result.code == 3
    hosts = {h["host"]: h for h in result.json()["hosts"]}
    assert hosts[frozen]["status"] in {"unreachable", "failed"}
    assert hosts[frozen]["error"]
    assert {hosts[n]["status"] for n in lab.hosts if n != frozen} == {"changed"}


def test_unreachable_host_is_reported_as_unreachable(repo: Path, lab: Lab) -> None:
    gone = lab.hosts[4]
    faults.partition_host(LAB_NAME, gone, state_dir=lab.status.state_dir)
    try:
        result = patchring(repo, "plan", "--json", timeout=120)
    finally:
        faults.heal_host(LAB_NAME, gone, state_dir=lab.status.state_dir)
    assert result.code == 3
    hosts = {h["host"]: h for h in result.json()["hosts"]}
    assert hosts[gone]["status"] == "unreachable"
    assert hosts[gone]["error"].startswith("unreachable:")
    assert patchring(repo, "plan", "--host", gone).code == 0  # reachable again once healed


def test_a_deploy_from_deploys_runs_and_pyinfra_decides_its_changes(repo: Path, lab: Lab) -> None:
    write_yaml(repo / "policies" / "motd.yml", {
        "name": "motd", "select": {"rings": ["canary"]},
        "deploy": [{"name": "motd", "use": "motd:configure_motd",
                    "args": {"message": "{{ host.name }} is managed by patchring"}}],
    })  # fmt: skip
    canary = lab.ring("canary")[0]
    assert patchring(repo, "apply").code == 0
    h = host(lab.address(canary), lab.ssh_config)
    assert h.file("/etc/motd").content_string == f"{canary} is managed by patchring\n"
    doc = patchring(repo, "plan", "--json").json()
    assert doc["summary"]["drifted"] == 0  # pyinfra's dry run: the deploy would change nothing
    lab.exec(canary, "sh", "-c", "echo tampered > /etc/motd")
    doc = patchring(repo, "plan", "--json").json()
    assert _changes(doc, canary)["deploy:motd"]["summary"] == (
        "deploy motd:configure_motd: Message of the day | Write /etc/motd"
    )
