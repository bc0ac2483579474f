"""Jump hosts on the lab: two hosts the controller cannot reach, reached through a third as bastion.

A firewall rule on the controller drops every new connection from it to the two hosts (their
replies to connections they open, e.g. to the lab's apt repository, still pass), while the
bastion, on the same bridge, reaches them. Plan, apply, verify (with a user's own testinfra
file), a second apply and a rollout with canary's health check go through the bastion, its host
key checked too; an unknown bastion key, and a jump host that does not exist, fail each host
with its reason within the connect timeout.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import LAB_NAME, Lab
from tests.integration.fleet import make_repo, patchring

pytestmark = pytest.mark.integration

CONNECT_TIMEOUT = 3
USER_CHECK = """\
def test_the_agent_answers_on_its_host(host):
    assert host.service("acme-agent").is_running
    assert host.file("/etc/acme/agent.conf").user == "root"
"""
TABLE = f"patchring_jump_{LAB_NAME}".replace("-", "_")


@pytest.fixture
def cut_off(lab: Lab) -> Iterator[tuple[str, list[str]]]:
    """(bastion, [two hosts only it reaches]): the controller's new connections to them dropped."""
    # The targets are a canary and a pilot host, so a rollout runs canary's health check too.
    bastion, targets = lab.ring("broad")[0], [lab.ring("canary")[0], lab.ring("pilot")[0]]
    addresses = ", ".join(lab.address(name) for name in targets)
    lab.reset(targets)
    rules = (
        f"add table ip {TABLE}\n"
        f"add chain ip {TABLE} out {{ type filter hook output priority 0 ; }}\n"
        f"add rule ip {TABLE} out ip daddr {{ {addresses} }} ct state new drop\n"
    )
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
    try:
        yield bastion, targets
    finally:
        subprocess.run(["nft", "delete", "table", "ip", TABLE], check=False)
        lab.reset(targets)


def _repo(path: Path, lab: Lab, targets: list[str], ssh: dict[str, object]) -> Path:
    """The example project with an inventory of `targets` only."""
    repo = make_repo(path, lab.inventory, ssh={"connect_timeout": CONNECT_TIMEOUT, **ssh})
    inventory = repo / "inventory" / "lab.yml"
    data = yaml.safe_load(inventory.read_text())
    data["hosts"] = {name: data["hosts"][name] for name in targets}
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    subprocess.run(["git", "commit", "-qam", "two hosts", "--author", "T <t@e.invalid>"], cwd=repo)
    return repo


def _errors(doc: dict) -> dict[str, str]:
    return {h["host"]: h.get("error") or "" for h in doc["hosts"]}


def test_plan_apply_verify_through_a_bastion(
    tmp_path: Path, lab: Lab, cut_off: tuple[str, list[str]]
) -> None:
    bastion, targets = cut_off
    direct = _repo(tmp_path / "direct", lab, targets, {})
    unreachable = patchring(direct, "plan", "--json", timeout=120)
    assert unreachable.code == 3
    assert set(_errors(unreachable.json())) == set(targets)  # really cut off from the controller

    repo = _repo(tmp_path / "repo", lab, targets, {"jump_host": f"root@{lab.address(bastion)}"})
    (repo / "checks").mkdir()
    (repo / "checks" / "test_through_bastion.py").write_text(USER_CHECK)
    policy = {
        "name": "bastion-check",
        "select": {"all": True},
        "checks": ["checks/test_through_bastion.py"],
    }
    (repo / "policies" / "bastion-check.yml").write_text(yaml.safe_dump(policy))
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(
        ["git", "commit", "-qm", "a user check", "--author", "T <t@e.invalid>"], cwd=repo
    )
    plan = patchring(repo, "plan", "--json", "--detailed-exitcode", timeout=300)
    assert plan.code == 2, plan.stdout + plan.stderr
    for entry in plan.json()["hosts"]:
        changes = {c["resource_id"]: c for c in entry["changes"]}
        assert changes["package:acme-agent"]["summary"] == "acme-agent (absent) -> 1.0-2"

    applied = patchring(repo, "apply", "--json", timeout=600)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert {h["status"] for h in applied.json()["hosts"]} == {"changed"}

    verified = patchring(repo, "verify", "--json", timeout=300)
    assert verified.code == 0, verified.stdout + verified.stderr
    user = [
        (v["host"], c["status"])
        for v in verified.json()["verify"]
        for c in v["results"]
        if c["source"] == "user"
    ]
    assert sorted(user) == sorted((name, "passed") for name in targets)
    again = patchring(repo, "apply", "--json", timeout=300)
    assert {h["status"] for h in again.json()["hosts"]} == {"unchanged"}

    # A rollout through the bastion: each ring's batch, verify and canary's health check
    # (`systemctl is-active acme-agent` on the host) go through it; an unreachable health
    # check would leave the gate inconclusive, not passed.
    rolled = patchring(repo, "rollout", "--json", timeout=600)
    assert rolled.code == 0, rolled.stdout + rolled.stderr
    rings = {r["ring"]: r["status"] for r in rolled.json()["rings"]}
    assert rings["canary"] == rings["pilot"] == "passed", rings

    # An ssh_config names the bastion instead: the same hosts, nothing left to change.
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host bastion\n  HostName {lab.address(bastion)}\n  User root\n"
        f"Host {' '.join(lab.address(name) for name in targets)}\n  ProxyJump bastion\n"
        "  ForwardAgent no\n"
    )
    via_config = _repo(tmp_path / "via-config", lab, targets, {"config_file": str(config)})
    planned = patchring(via_config, "plan", "--detailed-exitcode", timeout=300)
    assert planned.code == 0, planned.stdout + planned.stderr
    validated = patchring(via_config, "validate")
    assert validated.code == 0, validated.stdout + validated.stderr
    warning = "option 'ForwardAgent' is not used by patchring; ignored"
    assert warning in validated.stdout + validated.stderr


def test_bastion_key_checked_and_missing_jump_host(
    tmp_path: Path, lab: Lab, cut_off: tuple[str, list[str]]
) -> None:
    bastion, targets = cut_off
    known = Path(lab.status.known_hosts).read_text().splitlines()
    without_bastion = tmp_path / "known_hosts"
    without_bastion.write_text(
        "\n".join(line for line in known if not line.startswith(lab.address(bastion) + " "))
    )
    jump = f"root@{lab.address(bastion)}"
    unknown = _repo(
        tmp_path / "unknown", lab, targets, {"jump_host": jump, "known_hosts": str(without_bastion)}
    )
    refused = patchring(unknown, "plan", "--json", timeout=120)
    assert refused.code == 3
    for name, error in _errors(refused.json()).items():
        assert f"jump host {jump}:22 (hop 1 of 1): host key not in known_hosts" in error, name

    absent = lab.address(bastion).rsplit(".", 1)[0] + ".250"  # a lab address nobody holds
    missing = _repo(tmp_path / "missing", lab, targets, {"jump_host": f"root@{absent}"})
    failed = patchring(missing, "plan", "--json", timeout=120)
    assert failed.code == 3
    for name, error in _errors(failed.json()).items():
        assert error.startswith(f"unreachable: jump host root@{absent}:22 (hop 1 of 1): "), name
