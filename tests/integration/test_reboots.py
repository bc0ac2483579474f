"""Reboots and service restarts inside rollouts, on real lab hosts that really reboot.

The test repo's lab inventory keeps four hosts and gives them the rings each test needs. An
acme-kernel upgrade (its postinst writes /run/reboot-required) rolls out over three rings with
`reboot: if-required`: every host reboots (two in one batch, never at once with
`max_rebooting: 1`), comes back, is verified, and the record says when, why and how long; a
second rollout changes and reboots nothing. A host frozen during its reboot never comes back: it
counts against the failure budget as unreachable and halts its ring. A libacme1 upgrade leaves
acme-libuser on the deleted library: the ring with `restart_services: true` restarts it (no
`(deleted)` left in its maps), the ring without reports it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.drift.expected import apt_repository_files
from orchestrator.lab import faults
from orchestrator.model.policy import AptRepository
from orchestrator.rollout.conductor import inventory_key
from orchestrator.store.ledger import open_ledger
from tests.integration.conftest import LAB_NAME, Lab
from tests.integration.fleet import CliResult, commit, make_repo, patchring, write_yaml

pytestmark = pytest.mark.integration

SECURITY_REPO = {
    "name": "patchring-lab-security",
    "url": "{{ lab_apt_url }}",
    "suite": "{{ debian_release }}-security",
    "key": "{{ lab_apt_key }}",
}


def _prepare(lab: Lab, name: str, packages: str) -> None:
    """The lab repository (its `lab` suite only) and the old versions installed."""
    key = (lab.status.state_dir / "lab-archive-key.asc").read_text()
    repo = AptRepository(name="patchring-lab", url=lab.status.apt_url, suite="lab", key=key)
    keyring, sources = apt_repository_files(repo)
    line = (sources.content or b"").decode()
    script = (
        f"set -e; mkdir -p /etc/apt/keyrings; cat > {keyring.path}; "
        f"printf '%s' '{line}' > {sources.path}; "
        f"apt-get update -q >/dev/null; apt-get install -y -q {packages} >/dev/null"
    )
    proc = faults.host_exec(
        LAB_NAME, name, ["sh", "-c", script], state_dir=lab.status.state_dir, input_text=key
    )
    assert proc.returncode == 0, proc.stderr


def _repo(
    tmp_path: Path,
    lab: Lab,
    rings: dict[str, list[str]],
    settings: dict[str, dict[str, Any]],
    packages: dict[str, str],
) -> Path:
    """A repo whose lab inventory has only the given hosts, in the given rings, with a policy
    pinning `packages` from the security archive."""
    repo = make_repo(
        tmp_path / "repo", lab.inventory, ssh={"connect_timeout": 3, "command_timeout": 90}
    )
    for name in ("acme-agent.yml", "hardening.yml", "accounts.yml"):
        (repo / "policies" / name).unlink()
    lab_file = repo / "inventory" / "lab.yml"
    data = yaml.safe_load(lab_file.read_text())
    ring_of = {host: ring for ring, hosts in rings.items() for host in hosts}
    data["hosts"] = {
        h: {**spec, "ring": ring_of[h]} for h, spec in data["hosts"].items() if h in ring_of
    }
    write_yaml(lab_file, data)
    fleet = repo / "inventory" / "fleet.yml"
    inventory = yaml.safe_load(fleet.read_text())
    inventory["rings"] = [{"name": ring, **settings.get(ring, {})} for ring in rings]
    write_yaml(fleet, inventory)
    write_yaml(
        repo / "policies" / "patches.yml",
        {
            "name": "patches",
            "select": {"all": True},
            "apt_repositories": [SECURITY_REPO],
            "packages": [{"name": n, "version": v} for n, v in packages.items()],
        },
    )
    commit(repo, "security updates for this test")
    return repo


def _boot_id(lab: Lab, name: str) -> str:
    return lab.exec(name, "cat", "/proc/sys/kernel/random/boot_id").strip()


def _restarts(record: dict[str, Any]) -> list[dict[str, Any]]:
    return list(record["rollout"]["restarts"])


def test_kernel_upgrade_reboots_each_host_over_three_rings_within_the_cap(
    tmp_path: Path, lab: Lab
) -> None:
    canary, pilot, broad = lab.hosts[0:2], lab.hosts[2:3], lab.hosts[3:4]
    hosts = canary + pilot + broad
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda h: _prepare(lab, h, "acme-kernel=1.0-1"), hosts))
        reboot = {"reboot": "if-required", "max_rebooting": 1, "reboot_timeout": "3m"}
        repo = _repo(
            tmp_path,
            lab,
            {"canary": canary, "pilot": pilot, "broad": broad},
            {ring: reboot for ring in ("canary", "pilot", "broad")},
            {"acme-kernel": "1.0-2"},
        )
        boots = {h: _boot_id(lab, h) for h in hosts}
        plan = patchring(repo, "plan", "--json")
        assert plan.code == 0, plan.stderr
        changes = {
            h["host"]: [c["resource_id"] for c in h["changes"]] for h in plan.json()["hosts"]
        }
        assert all("package:acme-kernel" in changes[h] for h in hosts), changes

        result = patchring(repo, "rollout", "--json")
        assert result.code == 0, result.stdout[-3000:] + result.stderr
        record = result.json()
        assert [(r["ring"], r["status"]) for r in record["rings"]] == [
            ("canary", "passed"),
            ("pilot", "passed"),
            ("broad", "passed"),
        ]
        done = [e for e in _restarts(record) if e["kind"] == "reboot"]
        completed = {e["host"]: e for e in done if e["status"] == "completed"}
        assert set(completed) == set(hosts)
        for event in completed.values():
            assert event["packages"] == ["acme-kernel"]
            assert "acme-kernel" in event["reason"]
            assert event["seconds"] > 0 and event["started_at"]
        # the cap: canary's second host started rebooting only after the first was back
        started = {e["host"]: e["at"] for e in done if e["status"] == "started"}
        first, second = sorted(canary, key=lambda h: started[h])
        assert started[second] >= completed[first]["at"]
        for name in hosts:  # really rebooted, flag gone, upgraded, and verified after it
            assert _boot_id(lab, name) != boots[name]
            assert lab.exec(name, "sh", "-c", "test -e /run/reboot-required || echo gone") == (
                "gone\n"
            )
            assert lab.exec(name, "dpkg-query", "-W", "-f=${Version}", "acme-kernel") == "1.0-2"
        verified = {v["host"]: v["status"] for v in record["verify"]}
        assert verified == {h: "passed" for h in hosts}
        report = patchring(repo, "report", record["id"], "--format", "markdown")
        assert report.code == 0
        assert f"reboot {canary[0]} completed" in report.stdout

        rebooted = {h: _boot_id(lab, h) for h in hosts}
        again = patchring(repo, "rollout")  # a second rollout of the same commit
        assert again.code == 0, again.stderr
        assert "Reboots and restarts:" not in again.stdout
        assert "0 changed" in again.stdout
        assert {h: _boot_id(lab, h) for h in hosts} == rebooted  # nothing rebooted
    finally:
        lab.reset(hosts)


def _freeze_when_rebooting(repo: Path, host: str, lab: Lab, seen: list[str]) -> None:
    """Freeze `host` as soon as the ledger says its reboot started."""
    key = inventory_key(repo, "inventory")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if not (repo / ".patchring" / "ledger.db").exists():
            continue
        with open_ledger(repo / ".patchring" / "ledger.db") as book:
            recent = book.recent_rollouts(key)
            outcomes = book.host_outcomes(recent[0].id) if recent else []
        if any(o.host == host and o.phase == "reboot" and o.status == "started" for o in outcomes):
            faults.freeze_host(LAB_NAME, host, state_dir=lab.status.state_dir)
            seen.append(host)
            return


def test_a_host_frozen_during_its_reboot_counts_as_unreachable_and_halts_the_ring(
    tmp_path: Path, lab: Lab
) -> None:
    frozen, later = lab.hosts[0], lab.hosts[1]
    try:
        _prepare(lab, frozen, "acme-kernel=1.0-1")
        repo = _repo(
            tmp_path,
            lab,
            {"canary": [frozen], "pilot": [later]},
            {"canary": {"reboot": "if-required", "reboot_timeout": "20s"}},
            {"acme-kernel": "1.0-2"},
        )
        seen: list[str] = []
        watcher = threading.Thread(target=_freeze_when_rebooting, args=(repo, frozen, lab, seen))
        watcher.start()
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator", "rollout", "--json"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        watcher.join()
        result = CliResult(proc.returncode, proc.stdout, proc.stderr)
        assert seen == [frozen], "the host was never seen rebooting"
        assert result.code == 3, result.stdout[-3000:] + result.stderr
        record = result.json()
        assert [(r["ring"], r["status"]) for r in record["rings"]] == [
            ("canary", "failed"),
            ("pilot", "not-started"),
        ]
        reason = record["rings"][0]["reason"]
        assert "1 unreachable" in reason and "failure budget allows 0" in reason
        (lost,) = [e for e in _restarts(record) if e["status"] == "timed-out"]
        assert lost["host"] == frozen and "not back within 20 s" in lost["error"]
        status = patchring(repo, "status")
        assert "halted" in status.stdout
    finally:
        faults.thaw_host(LAB_NAME, frozen, state_dir=lab.status.state_dir)
        lab.reset([frozen, later])


def _maps_deleted(lab: Lab, name: str) -> str:
    script = "grep -c ' (deleted)$' /proc/$(systemctl show -P MainPID acme-libuser)/maps || true"
    return lab.exec(name, "sh", "-c", script).strip()


def test_services_on_a_deleted_library_are_restarted_when_the_ring_asks(
    tmp_path: Path, lab: Lab
) -> None:
    restarted, reported = lab.hosts[2], lab.hosts[3]
    try:
        for name in (restarted, reported):
            _prepare(lab, name, "libacme1=1.0-1 acme-libuser=1.0-1")
        repo = _repo(
            tmp_path,
            lab,
            {"canary": [restarted], "pilot": [reported]},
            {"canary": {"restart_services": True}},
            {"libacme1": "1.1-1"},
        )
        result = patchring(repo, "rollout", "--json")
        assert result.code == 0, result.stdout[-3000:] + result.stderr
        events = {(e["host"], e["status"]): e for e in _restarts(result.json())}
        done = events[(restarted, "restarted")]
        assert done["services"] == ["acme-libuser.service"]
        assert done["packages"] == ["libacme1"]
        assert (reported, "needed") in events
        assert _maps_deleted(lab, restarted) == "0"  # runs the new library, seen on the host
        assert _maps_deleted(lab, reported) != "0"  # reported only: still the old one
        again = patchring(repo, "rollout", "--json")
        assert again.code == 0, again.stderr
        assert not [e for e in _restarts(again.json()) if e["host"] == restarted]
    finally:
        lab.reset([restarted, reported])
