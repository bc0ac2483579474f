"""`patchring assess` on a mixed Debian 12 / 13 lab of its own: per host and ring, pending
security updates with the origin of their release's security archive (bookworm-security on 12,
trixie-security on 13), other updates, the CVEs open from the tracker release of each host, a
reboot after a kernel-like upgrade, a service left on a deleted library, one command per host.

The old package versions and the security archive come from policies applied with `patchring
apply` (the archive's suite is `{{ debian_release }}-security`, a host variable the lab
inventory sets). Boots its own lab beside the session lab ("itmix" on 10.213.12.0/24; another
name and subnet from PATCHRING_TEST_MIXED_LAB / _SUBNET) and takes it down at the end.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.lab import LabConfig, LabStatus, faults, lab_down, lab_up
from tests.integration.fleet import make_repo, patchring, write_yaml

pytestmark = pytest.mark.integration

NAME = os.environ.get("PATCHRING_TEST_MIXED_LAB", "itmix")
SUBNET = os.environ.get("PATCHRING_TEST_MIXED_SUBNET", "10.213.12.0/24")
TIMEOUTS = {"connect_timeout": 3, "command_timeout": 120}
SECURITY_ORIGIN = "o=patchring-lab,l=patchring-lab-Security,n=${distro_codename}-security"
VERSION_IDS = {"bookworm": "12", "trixie": "13"}
OLD_VERSIONS = {
    "acme-agent": "1.0-1",
    "libacme1": "1.0-1",
    "acme-libuser": "1.0-1",
    "acme-kernel": "1.0-1",
}
# After the policies: updates from each release's security archive, and one (acme-libuser
# 1.0-2) only in the plain `lab` suite.
SECURITY_UPDATES = {"acme-agent": "1.0-2", "libacme1": "1.1-1", "acme-kernel": "1.0-2"}


@dataclass(frozen=True)
class MixedLab:
    status: LabStatus
    inventory: Path

    def hosts(self, release: str | None = None) -> list[str]:
        return [h.name for h in self.status.hosts if release in (None, h.release)]

    def release(self, host: str) -> str:
        return next(h.release for h in self.status.hosts if h.name == host)

    def exec(self, host: str, script: str) -> str:
        proc = faults.host_exec(NAME, host, ["sh", "-c", script], state_dir=self.status.state_dir)
        assert proc.returncode == 0, f"{script} on {host}: {proc.stderr}"
        return str(proc.stdout)


@pytest.fixture(scope="module")
def mixed_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MixedLab]:
    base = tmp_path_factory.mktemp("mixedlab")
    config = LabConfig(
        name=NAME,
        hosts=6,
        subnet=SUBNET,
        release="mixed",
        state_dir=base / "state",
        inventory_path=base / "lab.yml",
    )
    status = lab_up(config)
    try:
        yield MixedLab(status=status, inventory=base / "lab.yml")
    finally:
        lab_down(NAME, config.state_dir)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, mixed_lab: MixedLab) -> Path:
    """A policy repo that installs the old versions and adds each release's security archive,
    applied; then one trixie host upgrades acme-kernel and one bookworm host libacme1."""
    repo = make_repo(tmp_path_factory.mktemp("repo"), mixed_lab.inventory, ssh=TIMEOUTS)
    (repo / "policies" / "acme-agent.yml").unlink()  # it pins the agent to 1.0-2
    write_yaml(
        repo / "policies" / "patch-scenario.yml",
        {
            "name": "patch-scenario",
            "select": {"all": True},
            "apt_repositories": [
                {
                    "name": "patchring-lab-security",
                    "url": "{{ lab_apt_url }}",
                    "suite": "{{ debian_release }}-security",
                    "key": "{{ lab_apt_key }}",
                }
            ],
            "packages": [{"name": n, "version": v} for n, v in OLD_VERSIONS.items()],
        },
    )
    assert mixed_lab.status.security_data is not None
    (repo / "data").mkdir()
    shutil.copy(mixed_lab.status.security_data, repo / "data" / "tracker.json")
    write_yaml(
        repo / "inventory" / "patching.yml",
        {"patching": {"security_origins": [SECURITY_ORIGIN]}, "security_data": "data/tracker.json"},
    )
    applied = patchring(repo, "apply")
    assert applied.code == 0, applied.stdout + applied.stderr
    return repo


def _upgraded(mixed_lab: MixedLab) -> tuple[str, str]:
    """(the trixie host whose acme-kernel is upgraded, the bookworm host whose libacme1 is)."""
    return mixed_lab.hosts("trixie")[-1], mixed_lab.hosts("bookworm")[-1]


@pytest.fixture(scope="module")
def assessed(repo: Path, mixed_lab: MixedLab) -> dict[str, Any]:
    kernel_host, library_host = _upgraded(mixed_lab)
    mixed_lab.exec(kernel_host, "apt-get install -y -q acme-kernel=1.0-2 >/dev/null")
    mixed_lab.exec(library_host, "apt-get install -y -q libacme1=1.1-1 >/dev/null")
    # Hand-written advisories, added after the apply (which would install their fixes):
    # one on a source package (libacme, of the Multi-Arch binary libacme1), one on a binary.
    write_yaml(
        repo / "policies" / "advisories.yml",
        {
            "name": "advisories",
            "select": {"all": True},
            "patches": [
                {
                    "advisory": "DSA-9002-1",
                    "cves": ["CVE-2026-10002"],
                    "package": "libacme",
                    "fixed": "1.1-1",
                },
                {"advisory": "DSA-9003-1", "package": "acme-tool", "fixed": "1.0-2"},
            ],
        },
    )
    result = patchring(repo, "assess", "--json", "--detailed-exitcode")
    assert result.code == 2, result.stdout + result.stderr  # security updates pending
    doc: dict[str, Any] = result.json()
    return doc


def _hosts(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["host"]: h for h in doc["hosts"]}


def test_the_lab_mixes_releases_in_every_ring(mixed_lab: MixedLab) -> None:
    by_ring: dict[str, set[str]] = {}
    for host in mixed_lab.status.hosts:
        by_ring.setdefault(host.ring, set()).add(host.release)
    assert by_ring == {"canary": {"bookworm"}, "pilot": {"trixie"}, "broad": set(VERSION_IDS)}


def test_every_host_is_assessed_with_one_command(
    assessed: dict[str, Any], mixed_lab: MixedLab
) -> None:
    assert assessed["schema"] == "patchring.assess/v1"
    assert assessed["security_origins"] == [SECURITY_ORIGIN]
    hosts = _hosts(assessed)
    assert set(hosts) == set(mixed_lab.hosts())
    assert {h["status"] for h in hosts.values()} == {"assessed"}
    assert [h["remote_commands"] for h in hosts.values()] == [1] * 6
    for name, host in hosts.items():
        assert host["codename"] == mixed_lab.release(name)
        assert host["ring"] == next(h.ring for h in mixed_lab.status.hosts if h.name == name)
        assert host["problems"] == []
        assert host["skipped_lines"] == 0  # apt 2.6 (12) and apt 3.0 (13) both fully read


def test_security_updates_come_from_each_releases_security_archive(
    assessed: dict[str, Any], mixed_lab: MixedLab
) -> None:
    kernel_host, library_host = _upgraded(mixed_lab)
    for name, host in _hosts(assessed).items():
        release = mixed_lab.release(name)
        pending = {u["package"]: u for u in host["pending"]}
        expected = dict(SECURITY_UPDATES)
        expected.pop({kernel_host: "acme-kernel", library_host: "libacme1"}.get(name, ""), None)
        security = {
            p: u["candidate_version"]
            for p, u in pending.items()
            if u["classification"] == "security"
        }
        assert security == expected, name
        for package in expected:
            update = pending[package]
            assert update["installed_version"] == OLD_VERSIONS[package]
            archive = {
                (o["origin"], o["label"], o["codename"], o["archive"])
                for o in update["origins"]
                if o["label"] == "patchring-lab-Security"
            }
            assert archive == {
                ("patchring-lab", "patchring-lab-Security", f"{release}-security", "lab-security")
            }, (name, update["origins"])
        # acme-agent 1.0-2 is also in the plain lab suite: both origins are listed
        assert {o["codename"] for o in pending["acme-agent"]["origins"]} == {
            "lab",
            f"{release}-security",
        }
        other = {p: u for p, u in pending.items() if u["classification"] == "other"}
        assert list(other) == ["acme-libuser"], name
        assert other["acme-libuser"]["candidate_version"] == "1.0-2"
        assert {o["codename"] for o in other["acme-libuser"]["origins"]} == {"lab"}


def test_cves_are_those_of_each_hosts_tracker_release(
    assessed: dict[str, Any], mixed_lab: MixedLab
) -> None:
    _, library_host = _upgraded(mixed_lab)
    for name, host in _hosts(assessed).items():
        release = mixed_lab.release(name)
        assert host["exposure"]["release"] == release
        cves = {c["cve"]: c for c in host["exposure"]["open"]}
        agent = cves["CVE-2026-10001"]
        assert (agent["urgency"], agent["fix_available"], agent["fixed_version"]) == (
            "high",
            True,
            "1.0-2",
        )
        assert agent["fixed_by"] == [{"package": "acme-agent", "version": "1.0-2"}]
        assert cves["CVE-2026-10004"]["fix_available"] is False
        # acme-kernel's CVE is not-affected ("0") in trixie: open on bookworm hosts only
        assert ("CVE-2026-10003" in cves) == (release == "bookworm"), name
        if release == "bookworm":
            kernel = cves["CVE-2026-10003"]
            assert (kernel["urgency"], kernel["fixed_version"]) == ("high", "1.0-2")
        # the same for a real package of the base images: systemd's NVD-only issue
        assert ("CVE-2026-20202" in cves) == (release == "bookworm"), name
        assert ("CVE-2026-10002" in cves) == (name != library_host), name
    assert assessed["summary"]["hosts_with_security_updates"] == 6
    rings = {r["ring"]: r for r in assessed["rings"]}
    assert [rings[r]["hosts"] for r in ("canary", "pilot", "broad")] == [1, 2, 3]
    assert [rings[r]["hosts_exposed"] for r in ("canary", "pilot", "broad")] == [1, 2, 3]
    # 3 security updates per host, but not the two that were upgraded on two broad hosts
    assert [rings[r]["security_updates"] for r in ("canary", "pilot", "broad")] == [3, 6, 7]


def test_hand_written_advisories_are_open_below_their_fix(
    assessed: dict[str, Any], mixed_lab: MixedLab
) -> None:
    _, library_host = _upgraded(mixed_lab)
    for name, host in _hosts(assessed).items():
        advisories = {a["advisory"]: a for a in host["advisories"]}
        # acme-tool is not installed: its advisory is open nowhere
        assert list(advisories) == ([] if name == library_host else ["DSA-9002-1"]), name
        if name != library_host:
            advisory = advisories["DSA-9002-1"]
            assert (advisory["installed_version"], advisory["fixed"]) == ("1.0-1", "1.1-1")
            assert advisory["cves"] == ["CVE-2026-10002"]
            assert advisory["fixed_by"] == [{"package": "libacme1", "version": "1.1-1"}]
    assert assessed["summary"]["open_advisories"] == 5


def test_a_reboot_and_a_deleted_library_are_seen_on_the_upgraded_hosts(
    assessed: dict[str, Any], mixed_lab: MixedLab
) -> None:
    kernel_host, library_host = _upgraded(mixed_lab)
    hosts = _hosts(assessed)
    assert [n for n, h in hosts.items() if h["reboot"]["required"]] == [kernel_host]
    assert hosts[kernel_host]["reboot"]["required_flag"] is True
    assert "acme-kernel" in hosts[kernel_host]["reboot"]["packages"]
    stale = {n: h["stale_processes"] for n, h in hosts.items() if h["stale_processes"]}
    assert list(stale) == [library_host]
    [process] = stale[library_host]
    assert process["unit"] == "acme-libuser.service"
    assert process["deleted_files"] == ["/usr/lib/x86_64-linux-gnu/libacme.so.1"]
    assert assessed["summary"]["reboot_required"] == 1
    assert assessed["summary"]["services_on_deleted_libraries"] == 1


def test_text_output_groups_hosts_by_ring(repo: Path, mixed_lab: MixedLab) -> None:
    result = patchring(repo, "assess", "--ring", "pilot")
    assert result.code == 0, result.stderr
    for name in mixed_lab.hosts():
        assert (name in result.stdout) == (name in mixed_lab.hosts("trixie")[:2]), name
    assert "security acme-kernel 1.0-1 -> 1.0-2 (patchring-lab-Security:trixie-security)" in (
        result.stdout
    )
    assert (
        "DSA-9002-1 (CVE-2026-10002) libacme 1.0-1 < 1.1-1; fix available: libacme1 1.1-1"
    ) in result.stdout
