"""Open CVEs per host: source-package mapping (binNMU, epochs, independently versioned binaries),
Debian version comparison against the fix, fix availability from pending candidates."""

from __future__ import annotations

from orchestrator.model.patching import Advisory, Urgency
from orchestrator.patching.exposure import (
    advisories_fixed,
    cves_fixed_by_package,
    host_exposure,
    installed_sources,
    open_advisories,
)
from orchestrator.patching.tracker import parse_tracker
from tests.unit.patching_samples import assessment, installed, pending, release, tracker_json

TRACKER = parse_tracker(
    tracker_json(
        {
            "openssl": {
                "CVE-2026-1001": {
                    "bookworm": release("resolved", "3.0.21-1~deb12u1", "high"),
                    "trixie": release("resolved", "3.5.1-1", "high"),
                },
                "CVE-2026-1002": {"bookworm": release("resolved", "3.0.20-1~deb12u2", "low")},
                "CVE-2026-1003": {"bookworm": release("resolved", "0", "high")},
                "CVE-2026-1004": {"bookworm": release("open", urgency="medium**")},
                "CVE-2026-1005": {"bookworm": release("resolved", "3.0.99-1", "end-of-life")},
            },
            "bash": {"CVE-2026-2001": {"bookworm": release("resolved", "5.2.15-2+deb12u1")}},
            "libcap2": {
                "CVE-2026-3001": {
                    "bookworm": release("resolved", "1:2.66-4+deb12u4", "not yet assigned")
                },
                "CVE-2026-3002": {"bookworm": release("resolved", "2.70-1", "high")},
            },
            "lvm2": {"CVE-2026-4001": {"bookworm": release("resolved", "2.03.16-2+deb12u1")}},
        }
    )
)

HOST = assessment(
    "web-01",
    installed_=(
        installed("libssl3", "3.0.20-1~deb12u2", "openssl"),
        installed("openssl", "3.0.20-1~deb12u2"),
        installed("bash", "5.2.15-2+b13", "bash", "5.2.15-2"),
        installed("libcap2", "1:2.66-4+deb12u3+b1", "libcap2", "1:2.66-4+deb12u3"),
        installed("dmsetup", "2:1.02.185-2", "lvm2", "2.03.16-2"),
    ),
    pending_=(
        pending("libssl3", "3.0.20-1~deb12u2", "3.0.22-1~deb12u2"),
        pending("libcap2", "1:2.66-4+deb12u3+b1", "1:2.66-4+deb12u4+b1"),
        # dmsetup's own version says nothing about lvm2's source version
        pending("dmsetup", "2:1.02.185-2", "2:1.02.185-3"),
    ),
)


def test_open_cves_with_fix_and_urgency() -> None:
    exposure = host_exposure(HOST, TRACKER)
    assert exposure.release_tracked
    rows = [
        (e.cve, e.urgency, e.fixed_version, [(f.package, f.version) for f in e.fixed_by])
        for e in exposure.open
    ]
    assert rows == [
        # most urgent first; "not yet assigned" ranks with high
        ("CVE-2026-1001", Urgency.HIGH, "3.0.21-1~deb12u1", [("libssl3", "3.0.22-1~deb12u2")]),
        (
            "CVE-2026-3001",
            Urgency.NOT_YET_ASSIGNED,
            "1:2.66-4+deb12u4",
            [("libcap2", "1:2.66-4+deb12u4+b1")],
        ),
        # the epoch makes 1:2.66 newer than 2.70: not open (so absent)
        ("CVE-2026-1004", Urgency.MEDIUM, None, []),  # open upstream: no fix anywhere
        ("CVE-2026-2001", Urgency.MEDIUM, "5.2.15-2+deb12u1", []),  # no bash candidate
        ("CVE-2026-4001", Urgency.MEDIUM, "2.03.16-2+deb12u1", []),  # dmsetup cannot prove it
        ("CVE-2026-1005", Urgency.END_OF_LIFE, "3.0.99-1", []),
    ]
    # 1002: installed == fixed (not open); 1003: fixed "0" (never affected)
    open_1004 = next(e for e in exposure.open if e.cve == "CVE-2026-1004")
    assert open_1004.nvd_derived and open_1004.status == "open" and not open_1004.fix_available
    assert {e.installed_source_version for e in exposure.open if e.source == "bash"} == {
        "5.2.15-2"
    }  # the source version, not the binNMU binary version


def test_release_decides_and_unknown_release_is_flagged() -> None:
    trixie_host = HOST.model_copy(update={"codename": "trixie"})
    assert [e.cve for e in host_exposure(trixie_host, TRACKER).open] == ["CVE-2026-1001"]
    sid = host_exposure(HOST.model_copy(update={"codename": "sid"}), TRACKER)
    assert sid.open == () and not sid.release_tracked


def test_lowest_installed_source_version_counts() -> None:
    partial = (
        installed("libssl3", "3.0.22-1~deb12u2", "openssl"),
        installed("openssl", "3.0.20-1~deb12u2"),
    )
    assert installed_sources(partial) == {"openssl": "3.0.20-1~deb12u2"}


def test_cves_by_fixing_package() -> None:
    fixes = cves_fixed_by_package(host_exposure(HOST, TRACKER))
    assert {package: [c.cve for c in cves] for package, cves in fixes.items()} == {
        "libssl3": ["CVE-2026-1001"],
        "libcap2": ["CVE-2026-3001"],
    }


def test_hand_written_advisories_join_by_binary_or_source() -> None:
    advisories = [
        Advisory(
            id="DSA-5800-1", cves=("CVE-2026-1001",), package="openssl", fixed="3.0.21-1~deb12u1"
        ),
        Advisory(id="DSA-5801-1", package="libcap2", fixed="1:2.66-4+deb12u9"),  # not reached
        Advisory(id="DSA-5700-1", package="libssl3", fixed="3.0.20-1~deb12u2"),  # installed
    ]
    found = advisories_fixed(HOST, advisories)
    assert {package: [a.id for a in found_] for package, found_ in found.items()} == {
        "libssl3": ["DSA-5800-1"]
    }


def test_hand_written_advisories_are_open_below_their_fix() -> None:
    advisories = [
        Advisory(
            id="DSA-5800-1", cves=("CVE-2026-1001",), package="openssl", fixed="3.0.21-1~deb12u1"
        ),
        Advisory(id="DSA-5801-1", package="libcap2", fixed="1:2.66-4+deb12u9"),  # no fix offered
        Advisory(id="DSA-5700-1", package="libssl3", fixed="3.0.20-1~deb12u2"),  # at the fix
        Advisory(id="DSA-5702-1", package="nginx", fixed="1.22.1-9+deb12u1"),  # not installed
        Advisory(id="DSA-5703-1", package="lvm2", fixed="2.03.16-2+deb12u1"),  # by source version
    ]
    found = open_advisories(HOST, advisories)
    assert [(a.advisory, a.installed_version, a.fix_available) for a in found] == [
        ("DSA-5800-1", "3.0.20-1~deb12u2", True),
        ("DSA-5801-1", "1:2.66-4+deb12u3+b1", False),
        ("DSA-5703-1", "2.03.16-2", False),
    ]
    assert [(f.package, f.version) for f in found[0].fixed_by] == [("libssl3", "3.0.22-1~deb12u2")]
    assert found[0].cves == ("CVE-2026-1001",)


def test_an_advisory_on_the_source_of_a_multi_arch_binary_finds_its_fix() -> None:
    # dpkg says `libacme1:amd64`, apt's simulation says `libacme1`
    host = assessment(
        "web-02",
        installed_=(installed("libacme1:amd64", "1.0-1", "libacme"),),
        pending_=(pending("libacme1", "1.0-1", "1.1-1"),),
    )
    [advisory] = open_advisories(
        host, [Advisory(id="DSA-9002-1", package="libacme", fixed="1.1-1")]
    )
    assert [(f.package, f.version) for f in advisory.fixed_by] == [("libacme1", "1.1-1")]
