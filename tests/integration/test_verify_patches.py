"""The patch baseline's generated checks on real hosts: acme-agent 1.0-1 installed while the
lab repository offers 1.0-2 (from an origin the inventory calls security, fixing a high CVE in
the test's tracker file) fails `no-approved-security-pending` and `no-open-cve-with-fix` with
the hosts' own command output as evidence; once 1.0-2 is installed both pass."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from orchestrator.patching.probeparse import (
    INSTALLED_COMMAND,
    POLICY_COMMAND,
    SIMULATE_COMMAND,
)
from tests.integration.conftest import Lab
from tests.integration.fleet import commit, make_repo, patchring, write_yaml
from tests.integration.test_patch_lock import _prepare_host

pytestmark = pytest.mark.integration

LAB_ORIGIN = "o=patchring,l=patchring lab,n=lab"
PENDING = "patching/patch-baseline/no-approved-security-pending"
OPEN_CVES = "patching/patch-baseline/no-open-cve-with-fix"
TRACKER = {
    "acme-agent": {
        "CVE-2026-7001": {
            "description": "acme-agent trusts the moon",
            "scope": "remote",
            "releases": {
                "bookworm": {
                    "status": "resolved",
                    "repositories": {"bookworm": "1.0-2"},
                    "fixed_version": "1.0-2",
                    "urgency": "high",
                }
            },
        }
    }
}


@pytest.fixture
def repo(tmp_path: Path, lab: Lab) -> Path:
    lab.reset(lab.hosts[:2])
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda name: _prepare_host(lab, name), lab.hosts[:2]))
    repo = make_repo(
        tmp_path / "repo", lab.inventory, ssh={"connect_timeout": 3, "command_timeout": 90}
    )
    for name in ("acme-agent.yml", "hardening.yml"):  # they pin the agent themselves
        (repo / "policies" / name).unlink()
    write_yaml(
        repo / "policies" / "patching.yml",
        {
            "name": "patching",
            "select": {"all": True},
            "patch_baseline": {"classification": "security", "max_open_urgency": "high"},
        },
    )
    (repo / "data").mkdir()
    (repo / "data" / "tracker.json").write_text(json.dumps(TRACKER, indent=1))
    write_yaml(
        repo / "inventory" / "patching.yml",
        {"patching": {"security_origins": [LAB_ORIGIN]}, "security_data": "data/tracker.json"},
    )
    commit(repo, "a security baseline failing open high CVEs")
    return repo


def _verify(repo: Path, hosts: list[str]) -> tuple[int, dict[str, dict[str, Any]]]:
    args = [arg for name in hosts for arg in ("--host", name)]
    result = patchring(repo, "verify", "--json", *args)
    assert result.code in (0, 3), result.stderr
    record = json.loads(result.stdout)
    return result.code, {
        v["host"]: {r["check_id"]: r for r in v["results"]} for v in record["verify"]
    }


def test_pending_security_fix_and_open_cve_fail_with_evidence_then_pass(
    repo: Path, lab: Lab
) -> None:
    hosts = lab.hosts[:2]
    code, found = _verify(repo, hosts)
    assert code == 3
    for name in hosts:
        pending, cves = found[name][PENDING], found[name][OPEN_CVES]
        assert pending["status"] == "failed", pending
        assert pending["actual"] == (
            "1 approved security update(s) pending: acme-agent 1.0-1 -> 1.0-2"
        )
        commands = {e["command"]: e for e in pending["evidence"]}
        assert (
            "Inst acme-agent [1.0-1] (1.0-2 patchring lab:lab"
            in (commands[SIMULATE_COMMAND]["stdout"])
        )
        assert "o=patchring,a=lab,n=lab,l=patchring lab" in commands[POLICY_COMMAND]["stdout"]
        assert cves["status"] == "failed", cves
        assert cves["actual"] == (
            "1 open CVE(s) with a fix available: CVE-2026-7001 in acme-agent 1.0-1 (high), "
            "fixed in 1.0-2, by acme-agent 1.0-2"
        )
        installed = next(e for e in cves["evidence"] if e["command"] == INSTALLED_COMMAND)
        assert "ii  acme-agent 1.0-1 acme-agent 1.0-1" in installed["stdout"]
        # everything else the policies check passes: only the baseline's checks fail
        assert [c for c, r in found[name].items() if r["status"] != "passed"] == [
            PENDING,
            OPEN_CVES,
        ]

    for name in hosts:
        lab.exec(name, "apt-get", "install", "-y", "-q", "acme-agent=1.0-2")
    code, found = _verify(repo, hosts)
    assert code == 0, found
    for name in hosts:
        assert found[name][PENDING]["actual"] == "no approved security update pending"
        assert found[name][OPEN_CVES]["actual"] == (
            "no CVE of urgency high or higher open with a fix available"
        )
