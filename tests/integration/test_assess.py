"""`patchring assess` on real hosts: a pending update from the lab repository classified by the
inventory's security origins, reboot-required, a tracker CVE open with its fix available, one
remote command per host, and an unreachable host reported with its reason (exit 3)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.lab import faults
from tests.integration.conftest import LAB_NAME, Lab
from tests.integration.fleet import make_repo, patchring

pytestmark = pytest.mark.integration

TIMEOUTS = {"connect_timeout": 3, "command_timeout": 90}
# The lab repository's Release file: `release o=patchring,a=lab,n=lab,l=patchring lab,c=main`.
LAB_SECURITY_ORIGIN = "o=patchring,l=patchring lab,n=lab"
SOURCES = (
    "Types: deb\nURIs: {url}\nSuites: lab\nComponents: main\n"
    "Signed-By: /etc/apt/keyrings/patchring-lab.asc\n"
)
# In the tracker's own format (source -> CVE -> releases -> release -> status...).
TRACKER = {
    "acme-agent": {
        "CVE-2026-0001": {
            "description": "acme-agent trusts its config file",
            "scope": "local",
            "releases": {
                "bookworm": {
                    "status": "resolved",
                    "fixed_version": "1.0-2",
                    "urgency": "high",
                    "repositories": {"bookworm": "1.0-2"},
                },
                "trixie": {"status": "resolved", "fixed_version": "0", "urgency": "high"},
            },
        },
        "CVE-2026-0002": {
            "releases": {"bookworm": {"status": "open", "urgency": "medium**"}},
        },
        "CVE-2025-0009": {
            "releases": {
                "bookworm": {"status": "resolved", "fixed_version": "0.9-1", "urgency": "low"}
            },
        },
    },
    "bash": {
        "CVE-2019-18276": {
            "releases": {"bookworm": {"status": "open", "urgency": "unimportant"}},
        }
    },
    "openssl": {
        "CVE-2026-9999": {
            "releases": {
                "bookworm": {"status": "resolved", "fixed_version": "0", "urgency": "high"}
            }
        }
    },
}


def _install_agent(lab: Lab, name: str) -> None:
    """Point the host at the signed lab repository and install the old acme-agent 1.0-1."""
    key = (lab.status.state_dir / "lab-archive-key.asc").read_text()
    sources = SOURCES.format(url=lab.status.apt_url)
    script = (
        "set -e; mkdir -p /etc/apt/keyrings; cat > /etc/apt/keyrings/patchring-lab.asc; "
        f"printf '%s' '{sources}' > /etc/apt/sources.list.d/lab.sources; "
        "apt-get update -q >/dev/null; apt-get install -y -q acme-agent=1.0-1 >/dev/null"
    )
    proc = faults.host_exec(
        LAB_NAME, name, ["sh", "-c", script], state_dir=lab.status.state_dir, input_text=key
    )
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def patched_lab(lab: Lab) -> Lab:
    lab.reset()
    for name in lab.hosts[:2]:
        _install_agent(lab, name)
    lab.exec(lab.hosts[1], "sh", "-c", "touch /run/reboot-required")
    # A service still mapping a library that was deleted under it, as after an upgrade.
    lab.exec(
        lab.hosts[4],
        "sh",
        "-c",
        "cp /usr/lib/x86_64-linux-gnu/libz.so.1 /opt/libstale.so.1 && "
        "systemd-run --unit=stale-demo --setenv=LD_PRELOAD=/opt/libstale.so.1 sleep 3600 && "
        "sleep 1 && rm /opt/libstale.so.1",
    )
    return lab


@pytest.fixture
def repo(tmp_path: Path, patched_lab: Lab) -> Path:
    repo = make_repo(tmp_path / "repo", patched_lab.inventory, ssh=TIMEOUTS)
    (repo / "data").mkdir()
    (repo / "data" / "tracker.json").write_text(json.dumps(TRACKER))
    (repo / "inventory" / "patching.yml").write_text(
        f"patching:\n  security_origins: ['{LAB_SECURITY_ORIGIN}']\n"
        "security_data: data/tracker.json\n"
    )
    return repo


def _hosts(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["host"]: h for h in doc["hosts"]}


def test_assess_lists_updates_reboots_and_cves_from_one_command(
    repo: Path, patched_lab: Lab
) -> None:
    agent_host, reboot_host = patched_lab.hosts[:2]
    result = patchring(repo, "assess", "--json", "--detailed-exitcode")
    assert result.code == 2, result.stderr  # security updates pending
    doc = result.json()
    assert doc["schema"] == "patchring.assess/v1"
    assert doc["security_origins"] == [LAB_SECURITY_ORIGIN]
    hosts = _hosts(doc)
    assert set(hosts) == set(patched_lab.hosts)
    assert {h["remote_commands"] for h in hosts.values()} == {1}
    assert {h["status"] for h in hosts.values()} == {"assessed"}

    agent = hosts[agent_host]
    assert agent["codename"] == "bookworm"
    [update] = [u for u in agent["pending"] if u["package"] == "acme-agent"]
    assert (update["installed_version"], update["candidate_version"]) == ("1.0-1", "1.0-2")
    assert update["classification"] == "security"
    assert {(o["origin"], o["label"], o["codename"]) for o in update["origins"]} == {
        ("patchring", "patchring lab", "lab")
    }
    cves = {c["cve"]: c for c in agent["exposure"]["open"]}
    assert set(cves) == {"CVE-2026-0001", "CVE-2026-0002", "CVE-2019-18276"}
    fixed = cves["CVE-2026-0001"]
    assert (fixed["urgency"], fixed["fix_available"], fixed["fixed_version"]) == (
        "high",
        True,
        "1.0-2",
    )
    assert fixed["fixed_by"] == [{"package": "acme-agent", "version": "1.0-2"}]
    assert cves["CVE-2026-0002"]["fix_available"] is False
    assert cves["CVE-2026-0002"]["nvd_derived"] is True
    assert agent["reboot"]["required"] is False

    reboot = hosts[reboot_host]
    assert reboot["reboot"]["required"] is True
    assert reboot["reboot"]["required_flag"] is True
    stale = hosts[patched_lab.hosts[4]]["stale_processes"]
    assert [(p["unit"], p["deleted_files"]) for p in stale] == [
        ("stale-demo.service", ["/opt/libstale.so.1"])
    ]
    assert doc["summary"]["services_on_deleted_libraries"] == 1
    others = [h for name, h in hosts.items() if name not in (agent_host, reboot_host)]
    assert all(h["pending"] == [] for h in others)
    assert all("CVE-2026-0001" not in {c["cve"] for c in h["exposure"]["open"]} for h in others)
    assert doc["summary"]["hosts_with_security_updates"] == 2
    assert doc["summary"]["reboot_required"] == 1

    text = patchring(repo, "assess", "--host", agent_host)
    assert text.code == 0, text.stderr
    assert "security acme-agent 1.0-1 -> 1.0-2 (patchring lab:lab)" in text.stdout
    assert "CVE-2026-0001 acme-agent 1.0-1 urgency high; fix available: acme-agent 1.0-2" in (
        text.stdout
    )
    assert "oldest pending security update: pending at least since the lists" in text.stdout
    assert "package lists " in text.stdout and "--refresh to update" in text.stdout


def test_refresh_updates_the_lists_in_the_same_command(repo: Path, patched_lab: Lab) -> None:
    name = patched_lab.hosts[0]
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    result = patchring(repo, "assess", "--refresh", "--host", name, "--json")
    assert result.code == 0, result.stderr
    host = _hosts(result.json())[name]
    assert host["remote_commands"] == 1
    assert host["problems"] == []
    assert datetime.fromisoformat(host["lists_updated_at"]) >= before


def test_an_unreachable_host_is_reported_with_its_reason(repo: Path, patched_lab: Lab) -> None:
    cut, fine = patched_lab.hosts[2], patched_lab.hosts[3]
    faults.partition_host(LAB_NAME, cut, patched_lab.status.state_dir)
    try:
        result = patchring(repo, "assess", "--host", cut, "--host", fine, "--json")
    finally:
        faults.heal_host(LAB_NAME, cut, patched_lab.status.state_dir)
    assert result.code == 3, result.stderr
    hosts = _hosts(result.json())
    assert hosts[cut]["status"] == "unreachable"
    assert hosts[cut]["error"].startswith("unreachable")
    assert hosts[fine]["status"] == "assessed"
    assert hosts[fine]["remote_commands"] == 1


def test_assess_records_a_run_whose_reports_show_the_exposure_per_ring(
    repo: Path, patched_lab: Lab
) -> None:
    agent_hosts = patched_lab.hosts[:2]
    result = patchring(repo, "assess", "--json")
    assert result.code == 0, result.stderr
    run = result.json()["run"]
    runs = repo / ".patchring" / "runs"
    record = json.loads((runs / f"{run}.json").read_text())
    assert (record["schema"], record["kind"], record["status"]) == (
        "patchring.run/v1",
        "assess",
        "succeeded",
    )
    hosts = {h["host"]: h for h in record["patching"]["hosts"]}
    assert set(hosts) == set(patched_lab.hosts)
    for name in agent_hosts:
        [cve] = [c for c in hosts[name]["open_cves"] if c["cve"] == "CVE-2026-0001"]
        assert (cve["urgency"], cve["fix_available"], cve["fixed_by"]) == (
            "high",
            True,
            ["acme-agent 1.0-2"],
        )
    ring_of = {h.name: h.ring for h in patched_lab.status.hosts}
    exposed = {ring: sum(ring_of[h] == ring for h in agent_hosts) for ring in set(ring_of.values())}

    markdown = patchring(repo, "report", run)
    assert markdown.code == 0, markdown.stderr
    assert markdown.stdout == (runs / f"{run}.md").read_text()
    lines = markdown.stdout.splitlines()
    [row] = [line for line in lines if line.startswith("| CVE-2026-0001 | `acme-agent` | high |")]
    assert all(f"`{name}` ✓" in row for name in agent_hosts)
    assert row.endswith(" | 2 of 2 |")
    for ring, count in exposed.items():
        [ring_row] = [line for line in lines if line.startswith(f"| {ring} |")]
        high = ring_row.split("|")[6].strip()  # Ring, Hosts, Security, Reboot, Exposed, High
        assert high == (f"{count} ({count} fixable)" if count else "0"), ring_row

    html = (runs / f"{run}.html").read_text()
    for ring, count in exposed.items():
        ring_row = re.search(
            rf'<tr class="ring-exposure"><th scope="row">{ring}</th>.*?</tr>', html
        )
        assert ring_row is not None, ring
        assert f'data-urgency="high" data-exposed="{count}" data-fixable="{count}"' in (
            ring_row.group()
        )
    cve_row = re.search(r'<tr class="cve-row" data-cve="CVE-2026-0001">.*?</tr>', html, re.S)
    assert cve_row is not None
    chips = re.findall(r'<span class="host-chip fix"[^>]*>([^<]+)</span>', cve_row.group())
    assert chips == agent_hosts
