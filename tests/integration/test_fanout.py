"""Bounded fan-out on real hosts: `--parallel 2` (and the inventory's `settings: parallel`) over
four lab hosts, so every command runs in two windows of two; plan shows the real diff, apply
converges, verify's generated checks pass, and a second apply changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Lab
from tests.integration.fleet import host, make_repo, patchring

pytestmark = pytest.mark.integration

TIMEOUTS = {"connect_timeout": 3, "command_timeout": 120}


@pytest.fixture
def chosen(lab: Lab) -> list[str]:
    names = lab.hosts[:4]
    lab.reset(names)
    yield names
    lab.reset(names)


def test_parallel_two_over_four_hosts(tmp_path: Path, lab: Lab, chosen: list[str]) -> None:
    repo = make_repo(tmp_path / "repo", lab.inventory, ssh=TIMEOUTS)
    only = [arg for name in chosen for arg in ("--host", name)]

    plan = patchring(repo, "plan", "--json", "--parallel", "2", *only)
    assert plan.code == 0, plan.stderr
    doc = plan.json()
    assert [h["host"] for h in doc["hosts"]] == chosen  # every window's hosts, in order
    assert {h["status"] for h in doc["hosts"]} == {"drifted"}
    for entry in doc["hosts"]:
        changes = {c["resource_id"]: c for c in entry["changes"]}
        assert changes["package:acme-agent"]["summary"] == "acme-agent (absent) -> 1.0-2"
        assert f"+name = {entry['host']}" in changes["file:/etc/acme/agent.conf"]["diff"]

    applied = patchring(repo, "apply", "--json", "--parallel", "2", *only)
    assert applied.code == 0, applied.stdout + applied.stderr
    assert {h["host"]: h["status"] for h in applied.json()["hosts"]} == dict.fromkeys(
        chosen, "changed"
    )
    for name in chosen:
        h = host(lab.address(name), lab.ssh_config)
        assert h.package("acme-agent").version == "1.0-2"
        assert h.service("acme-agent").is_running
        assert name in h.file("/etc/acme/agent.conf").content_string

    verified = patchring(repo, "verify", "--json", "--parallel", "2", *only)
    assert verified.code == 0, verified.stdout + verified.stderr
    hosts = verified.json()["verify"]
    assert [v["host"] for v in hosts] == chosen
    assert {v["status"] for v in hosts} == {"passed"}
    assert all(c["status"] == "passed" for v in hosts for c in v["results"])

    # The cap from the inventory this time (no flag): the same four hosts, nothing to change.
    lab_file = repo / "inventory" / "lab.yml"
    data = yaml.safe_load(lab_file.read_text())
    lab_file.write_text(yaml.safe_dump({**data, "settings": {"parallel": 2}}, sort_keys=False))
    again = patchring(repo, "apply", "--json", *only)
    assert again.code == 0, again.stderr
    assert {h["status"] for h in again.json()["hosts"]} == {"unchanged"}
    assert {h["remote_commands"] for h in again.json()["hosts"]} == {1}

    lab_file.write_text(yaml.safe_dump({**data, "settings": {"parallel": 0}}, sort_keys=False))
    refused = patchring(repo, "plan", *only)
    assert refused.code == 1
    assert "inventory/lab.yml:" in refused.stderr
    assert "error: must be greater than or equal to 1, got 0" in refused.stderr
