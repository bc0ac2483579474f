"""The assess report: text per ring and host, and the patchring.assess/v1 document, from fixed
host states (no hosts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.model.patching import (
    AdvisoryExposure,
    AptOrigin,
    CveExposure,
    FixingPackage,
    HostExposure,
    RebootStatus,
    StaleProcess,
    Urgency,
)
from orchestrator.patching.summary import ClassifiedUpdate, HostPatchState, unassessed_host
from orchestrator.report.assess import (
    ASSESS_SCHEMA,
    assess_document,
    lists_age_text,
    render_assess_text,
)

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
SECURITY = AptOrigin(
    origin="Debian",
    label="Debian-Security",
    archive="oldstable-security",
    codename="bookworm-security",
)


def _web() -> HostPatchState:
    return HostPatchState(
        host="web-01",
        ring="canary",
        status="assessed",
        remote_commands=1,
        codename="bookworm",
        assessed_at=NOW,
        pending=(
            ClassifiedUpdate(
                package="libssl3",
                installed_version="3.0.20-1~deb12u2",
                candidate_version="3.0.22-1~deb12u2",
                architecture="amd64",
                classification="security",
                origins=(SECURITY,),
            ),
            ClassifiedUpdate(
                package="tzdata",
                installed_version="2025b-0+deb12u1",
                candidate_version="2025c-0+deb12u1",
                architecture="all",
                classification="other",
                origins=(AptOrigin(label="Debian", archive="oldstable"),),
            ),
        ),
        reboot=RebootStatus(required_flag=True, packages=("linux-image-6.1.0-57-amd64",)),
        stale_processes=(StaleProcess(pid=7, unit="nginx.service", deleted_files=("/x.so",)),),
        lists_updated_at=NOW - timedelta(days=3, hours=2),
        lists_age_seconds=timedelta(days=3, hours=2).total_seconds(),
        exposure=HostExposure(
            host="web-01",
            codename="bookworm",
            release_tracked=True,
            open=(
                CveExposure(
                    cve="CVE-2026-1",
                    source="openssl",
                    installed_source_version="3.0.20-1~deb12u2",
                    urgency=Urgency.HIGH,
                    status="resolved",
                    fixed_version="3.0.22-1~deb12u2",
                    fixed_by=(FixingPackage(package="libssl3", version="3.0.22-1~deb12u2"),),
                ),
            ),
        ),
        advisories=(
            AdvisoryExposure(
                advisory="DSA-5800-1",
                cves=("CVE-2026-1",),
                package="openssl",
                installed_version="3.0.20-1~deb12u2",
                fixed="3.0.21-1~deb12u1",
                fixed_by=(FixingPackage(package="libssl3", version="3.0.22-1~deb12u2"),),
            ),
            AdvisoryExposure(
                advisory="DSA-5801-1",
                package="libcap2",
                installed_version="1:2.66-4",
                fixed="1:2.66-5",
            ),
        ),
        skipped_lines=2,
    )


def test_text_shows_every_item_per_ring_and_host() -> None:
    states = {
        "web-01": _web(),
        "db-01": unassessed_host("db-01", "broad", "unreachable", "unreachable: timed out"),
    }
    text = render_assess_text(states, ("canary", "broad"))
    assert text.splitlines() == [
        "ring canary: 1 host, 1 security and 1 other updates pending, 1 need a reboot",
        "  web-01 (bookworm): 1 security, 1 other updates pending; reboot required "
        "(/run/reboot-required; for linux-image-6.1.0-57-amd64)",
        "      security libssl3 3.0.20-1~deb12u2 -> 3.0.22-1~deb12u2 "
        "(Debian-Security:bookworm-security)",
        "      other    tzdata 2025b-0+deb12u1 -> 2025c-0+deb12u1 (Debian:oldstable)",
        "    oldest pending security update: pending at least since the lists were fetched "
        "(3 days old); exact first-seen dates need a patch lock",
        "    running deleted libraries: nginx.service",
        "    open CVEs: 1",
        "      CVE-2026-1 openssl 3.0.20-1~deb12u2 urgency high; "
        "fix available: libssl3 3.0.22-1~deb12u2",
        "    open advisories (policies' patches): 2",
        "      DSA-5800-1 (CVE-2026-1) openssl 3.0.20-1~deb12u2 < 3.0.21-1~deb12u1; "
        "fix available: libssl3 3.0.22-1~deb12u2",
        "      DSA-5801-1 libcap2 1:2.66-4 < 1:2.66-5; fix not offered by this host's repositories",
        "    warning: 2 probe lines not understood",
        "    package lists 3 days old; --refresh to update",
        "ring broad: 1 host, 0 security and 0 other updates pending, 0 need a reboot",
        "  db-01: unreachable: unreachable: timed out",
        "",
        "2 hosts: 1 with security updates pending, 1 need a reboot, 1 unreachable, 0 failed",
    ]


def test_document_is_versioned_and_counts_per_ring() -> None:
    states = {"web-01": _web(), "db-01": unassessed_host("db-01", None, "failed", "probe failed")}
    doc = assess_document(states, ("canary",), {"repo": "."}, ("l=Debian-Security",), None)
    assert doc["schema"] == ASSESS_SCHEMA == "patchring.assess/v1"
    assert [r["ring"] for r in doc["rings"]] == ["canary", "(no ring)"]
    assert doc["summary"]["security_updates"] == 1
    assert doc["summary"]["failed"] == 1
    assert doc["summary"]["open_cves"] == 1
    web = doc["hosts"][0]
    assert web["reboot"]["required"] is True
    assert web["exposure"]["open"][0]["fix_available"] is True
    assert web["pending"][0]["origins"][0]["codename"] == "bookworm-security"
    assert doc["hosts"][1]["exposure"] is None
    assert doc["summary"]["open_advisories"] == 2
    assert [(a["advisory"], a["fix_available"]) for a in web["advisories"]] == [
        ("DSA-5800-1", True),
        ("DSA-5801-1", False),
    ]
    assert web["advisories"][0]["fixed_by"] == [
        {"package": "libssl3", "version": "3.0.22-1~deb12u2"}
    ]
    assert doc["hosts"][1]["advisories"] == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "package lists never fetched; --refresh to update"),
        (90, "package lists 1 minute old; --refresh to update"),
        (3 * 3600, "package lists 3 hours old; --refresh to update"),
        (86400 * 3.5, "package lists 3 days old; --refresh to update"),
    ],
)
def test_lists_age(seconds: float | None, text: str) -> None:
    assert lists_age_text(seconds) == text
