"""Saved plans on real hosts: `plan --out FILE` then `apply FILE` applies exactly that plan; a host
changed behind patchring's back since the plan is refused with the drift named; a plan made at
another commit, or from other input files, is refused before anything runs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Lab
from tests.integration.fleet import host, make_repo, patchring

pytestmark = pytest.mark.integration

TIMEOUTS = {"connect_timeout": 3, "command_timeout": 90}


@pytest.fixture
def pair(lab: Lab) -> Iterator[list[str]]:
    chosen = lab.hosts[:2]
    lab.reset(chosen)
    yield chosen
    lab.reset(chosen)


def _hosts(*names: str) -> list[str]:
    return [arg for name in names for arg in ("--host", name)]


def _commit(repo: Path, message: str) -> None:
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=T",
            "-c",
            "user.email=t@example.invalid",
            "commit",
            "-qam",
            message,
        ],
        cwd=repo,
        check=True,
    )


def test_saved_plan_applies_refuses_drift_and_other_commits(
    tmp_path: Path, lab: Lab, pair: list[str]
) -> None:
    repo = make_repo(tmp_path / "repo", lab.inventory, ssh=TIMEOUTS)
    first, second = pair
    saved = tmp_path / "first.plan.json"

    made = patchring(repo, "plan", *_hosts(first, second), "--out", str(saved), "--json")
    assert made.code == 0, made.stderr
    plan = json.loads(saved.read_text())
    assert plan["schema"] == "patchring.saved-plan/v1"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True)
    assert plan["source"]["commit"] == head.stdout.strip()
    assert {h["host"]: h["status"] for h in plan["hosts"]} == {first: "drifted", second: "drifted"}
    assert plan["inputs"]["policies/acme-agent.yml"] != "missing"
    planned = {c["resource_id"] for c in plan["hosts"][0]["changes"]}
    assert {"package:acme-agent", "file:/etc/acme/agent.conf"} <= planned

    applied = patchring(repo, "apply", str(saved), "--json")
    assert applied.code == 0, applied.stdout + applied.stderr
    assert {h["host"]: h["status"] for h in applied.json()["hosts"]} == {
        first: "changed",
        second: "changed",
    }
    assert host(lab.address(first), lab.ssh_config).package("acme-agent").version == "1.0-2"
    verified = patchring(repo, "verify", *_hosts(first, second))
    assert verified.code == 0, verified.stdout + verified.stderr
    again = patchring(repo, "apply", *_hosts(first, second), "--json")
    assert {h["status"] for h in again.json()["hosts"]} == {"unchanged"}

    # A plan of the converged pair, then one host changed behind patchring's back.
    in_sync = tmp_path / "in-sync.plan.json"
    assert patchring(repo, "plan", *_hosts(first, second), "--out", str(in_sync)).code == 0
    lab.exec(second, "sh", "-c", "echo 'log_level = debug' >> /etc/acme/agent.conf")
    before = lab.exec(second, "sha256sum", "/etc/acme/agent.conf")
    refused = patchring(repo, "apply", str(in_sync), "--json")
    assert refused.code == 3, refused.stdout + refused.stderr
    assert f"patchring: {second}: refused: drifted since the plan: path /etc/acme/agent.conf: " in (
        refused.stderr
    )
    assert "sha256 " in refused.stderr
    results = {h["host"]: h for h in refused.json()["hosts"]}
    assert results[first]["status"] == "unchanged"  # the other host proceeds
    assert results[second]["status"] == "failed"
    assert results[second]["error"].startswith("refused: drifted since the plan")
    assert lab.exec(second, "sha256sum", "/etc/acme/agent.conf") == before  # left alone

    # The same plan after a new commit (and after an uncommitted edit): refused, exit 1.
    policy = repo / "policies" / "acme-agent.yml"
    policy.write_text(policy.read_text().replace("log_level: info", "log_level: warning"))
    edited = patchring(repo, "apply", str(in_sync))
    assert edited.code == 1
    assert "the inputs differ from the plan's (policies/acme-agent.yml: changed" in edited.stderr
    _commit(repo, "another commit")
    moved = patchring(repo, "apply", str(in_sync))
    assert moved.code == 1
    assert f"{in_sync}: the plan was made at commit {plan['source']['commit'][:12]}" in moved.stderr
    assert "nothing was changed" in moved.stderr
    assert lab.exec(second, "sha256sum", "/etc/acme/agent.conf") == before

    # The new commit's impact, and with --live what the two hosts differ from it today.
    live = patchring(repo, "plan", "--base", "HEAD~1", *_hosts(first, second), "--live", "--json")
    assert live.code == 0, live.stderr
    impact = live.json()
    changed = {h for c in impact["changes"] for h in c["hosts"]}  # web hosts set their own level
    assert {c["summary"] for c in impact["changes"]} <= {"content: +1 -1 lines"}
    assert impact["live"]["schema"] == "patchring.plan/v1"
    drifted = {h["host"] for h in impact["live"]["hosts"] if h["status"] == "drifted"}
    assert drifted == changed | {second}  # the new commit's hosts, and the edit behind our back


@pytest.fixture
def ring_pair(lab: Lab) -> Iterator[list[str]]:
    chosen = [lab.ring("canary")[0], lab.ring("pilot")[0]]
    lab.reset(chosen)
    yield chosen
    lab.reset(chosen)


def test_rollout_of_a_saved_plan_refuses_the_host_that_drifted(
    tmp_path: Path, lab: Lab, ring_pair: list[str]
) -> None:
    canary, pilot = ring_pair
    repo = make_repo(tmp_path / "repo", lab.inventory, ssh=TIMEOUTS)
    lab_file = repo / "inventory" / "lab.yml"
    data = yaml.safe_load(lab_file.read_text())
    data["hosts"] = {name: data["hosts"][name] for name in ring_pair}  # a fleet of two
    lab_file.write_text(yaml.safe_dump(data, sort_keys=False))
    _commit(repo, "a fleet of two")
    assert patchring(repo, "apply").code == 0
    saved = tmp_path / "plan.json"
    assert patchring(repo, "plan", "--out", str(saved)).code == 0
    lab.exec(pilot, "systemctl", "stop", "acme-agent")

    result = patchring(repo, "rollout", "--plan", str(saved), "--json")
    assert result.code == 3, result.stdout + result.stderr
    assert (
        f"patchring: {pilot}: refused: drifted since the plan: service acme-agent.service: "
        "active_state active -> inactive"
    ) in result.stderr
    record = result.json()
    applied = {h["host"]: h["status"] for h in record["apply"]}
    assert applied == {canary: "unchanged", pilot: "failed"}
    assert lab.exec(pilot, "sh", "-c", "systemctl is-active acme-agent || true") == "inactive\n"

    other = patchring(repo, "rollout", "--plan", str(saved), "--ref", "HEAD~1")
    assert other.code == 1
    assert "the plan was made at commit" in other.stderr
