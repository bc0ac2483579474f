"""Lock resolution and the lock file: per-release versions, first-seen dates kept on re-lock,
minimum age approving once the clock passes, rejections never approved, stable YAML, and
located errors when loading a hand-edited lock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from orchestrator.errors import ValidationError
from orchestrator.model.baseline import PackageVersionRef, PatchBaseline
from orchestrator.model.patching import Advisory, AptOrigin, HostAssessment, PatchingSettings
from orchestrator.model.patchlock import PatchLock
from orchestrator.model.policy import Patch
from orchestrator.patching.lock import BaselineAssignment, resolve_lock, revoked_approvals
from orchestrator.patching.lockdiff import diff_locks
from orchestrator.patching.lockfile import dump_lock, load_lock
from orchestrator.patching.tracker import parse_tracker
from orchestrator.policy.locked import LoadedLock, locked_resources
from orchestrator.policy.yamlsource import parse_yaml
from tests.unit.patching_samples import (
    NOW,
    POINT,
    SECURITY,
    assessment,
    installed,
    pending,
    release,
    tracker_json,
)

TRIXIE_SECURITY = AptOrigin(
    origin="Debian",
    label="Debian-Security",
    archive="stable-security",
    codename="trixie-security",
    component="main",
    version="13",
)
TRACKER = parse_tracker(
    tracker_json(
        {
            "openssl": {
                "CVE-2026-1001": {
                    "bookworm": release("resolved", "3.0.21-1~deb12u1", "high"),
                    "trixie": release("resolved", "3.5.1-1", "high"),
                }
            },
        }
    )
)


def fleet(libssl_bookworm: str = "3.0.22-1~deb12u2") -> list:
    bookworm = assessment(
        "web-01",
        "bookworm",
        installed_=(
            installed("libssl3", "3.0.20-1~deb12u2", "openssl"),
            installed("nginx", "1.22.1-9"),
            installed("curl", "7.88.1-10+deb12u5"),
        ),
        pending_=(
            pending("libssl3", "3.0.20-1~deb12u2", libssl_bookworm, SECURITY),
            pending("nginx", "1.22.1-9", "1.22.1-9+deb12u1", SECURITY),
            pending("curl", "7.88.1-10+deb12u5", "7.88.1-10+deb12u6", POINT),
        ),
    )
    trixie = assessment(
        "web-02",
        "trixie",
        installed_=(installed("libssl3t64", "3.5.0-1", "openssl"),),
        pending_=(pending("libssl3t64", "3.5.0-1", "3.5.1-1", TRIXIE_SECURITY),),
    )
    return [bookworm, trixie]


WEB = BaselineAssignment("web", PatchBaseline(), ("web-01", "web-02"))


def test_lock_per_release_with_fixes_sources_and_held_versions() -> None:
    advisory = Advisory(
        id="DSA-5800-1", cves=("CVE-2026-1001",), package="openssl", fixed="3.0.21-1~deb12u1"
    )
    lock = resolve_lock([WEB], fleet(), NOW, tracker=TRACKER, advisories=[advisory])
    bookworm, trixie = lock.baselines["web"]["bookworm"], lock.baselines["web"]["trixie"]
    assert {p: e.version for p, e in bookworm.approved.items()} == {
        "libssl3": "3.0.22-1~deb12u2",
        "nginx": "1.22.1-9+deb12u1",
    }
    assert bookworm.approved["libssl3"].fixes == ("CVE-2026-1001", "DSA-5800-1")
    assert bookworm.approved["libssl3"].source == "openssl"
    assert bookworm.approved["libssl3"].first_seen == NOW.replace(microsecond=0)
    assert bookworm.held["curl"]["7.88.1-10+deb12u6"].reason.startswith("not a security update")
    assert {p: e.version for p, e in trixie.approved.items()} == {"libssl3t64": "3.5.1-1"}
    assert trixie.approved["libssl3t64"].fixes == ("CVE-2026-1001",)
    assert set(lock.seen) == {"bookworm", "trixie"}


def test_relock_keeps_first_seen_and_dates_new_versions_now() -> None:
    first = resolve_lock([WEB], fleet(), NOW)
    later = NOW + timedelta(days=3)
    second = resolve_lock(
        [WEB], fleet("3.0.23-1~deb12u1"), later, previous=load_lock(dump_lock(first))
    )
    assert second.first_seen("bookworm", "nginx", "1.22.1-9+deb12u1") == NOW
    assert second.first_seen("bookworm", "libssl3", "3.0.23-1~deb12u1") == later
    # the superseded candidate is kept: web-01 does not run it yet, so it may still matter
    assert second.first_seen("bookworm", "libssl3", "3.0.22-1~deb12u2") == NOW
    assert second.approved_version("web", "bookworm", "libssl3") == "3.0.23-1~deb12u1"


def test_min_age_holds_a_new_version_until_the_clock_passes() -> None:
    aged = BaselineAssignment("web", PatchBaseline(min_age_days=7), ("web-01",))
    lock = resolve_lock([aged], fleet(), NOW)
    held = lock.baselines["web"]["bookworm"].held["libssl3"]["3.0.22-1~deb12u2"]
    assert lock.approved_version("web", "bookworm", "libssl3") is None
    assert held.approvable_from == NOW.replace(microsecond=0) + timedelta(days=7)
    assert held.reason.startswith("pending approval until 2026-12-08")
    almost = resolve_lock([aged], fleet(), NOW + timedelta(days=6, hours=23), previous=lock)
    assert almost.approved_version("web", "bookworm", "libssl3") is None
    ripe = resolve_lock([aged], fleet(), NOW + timedelta(days=7), previous=almost)
    assert ripe.approved_version("web", "bookworm", "libssl3") == "3.0.22-1~deb12u2"
    assert ripe.baselines["web"]["bookworm"].approved["libssl3"].first_seen == lock.first_seen(
        "bookworm", "libssl3", "3.0.22-1~deb12u2"
    )
    # without the previous lock the clock would have restarted
    fresh = resolve_lock([aged], fleet(), NOW + timedelta(days=7))
    assert fresh.approved_version("web", "bookworm", "libssl3") is None


def test_rejected_is_never_approved() -> None:
    baseline = PatchBaseline(
        classification="all",
        rejected=(PackageVersionRef(package="nginx"),),
        approved=(PackageVersionRef(package="nginx"),),
    )
    assignment = BaselineAssignment("web", baseline, ("web-01",))
    lock = None
    for days in (0, 30, 365):
        lock = resolve_lock([assignment], fleet(), NOW + timedelta(days=days), previous=lock)
        assert lock.approved_version("web", "bookworm", "nginx") is None
        held = lock.baselines["web"]["bookworm"].held["nginx"]["1.22.1-9+deb12u1"]
        assert held.reason == "rejected by the baseline (nginx)" and held.approvable_from is None


def test_highest_approved_version_wins_and_others_are_held_or_dropped() -> None:
    hosts = fleet()
    lagging = hosts[0].model_copy(
        update={
            "host": "web-03",
            "pending": (pending("libssl3", "3.0.20-1~deb12u2", "3.0.21-1~deb12u1", SECURITY),),
        }
    )
    rejecting = PatchBaseline(
        rejected=(PackageVersionRef(package="libssl3", version="3.0.22-1~deb12u2"),)
    )
    assignment = BaselineAssignment("web", rejecting, ("web-01", "web-03"))
    lock = resolve_lock([assignment], [*hosts, lagging], NOW)
    bookworm = lock.baselines["web"]["bookworm"]
    assert bookworm.approved["libssl3"].version == "3.0.21-1~deb12u1"
    assert list(bookworm.held["libssl3"]) == ["3.0.22-1~deb12u2"]
    plain = resolve_lock(
        [BaselineAssignment("web", PatchBaseline(), ("web-01", "web-03"))], [*hosts, lagging], NOW
    )
    assert plain.baselines["web"]["bookworm"].approved["libssl3"].version == "3.0.22-1~deb12u2"
    assert "libssl3" not in plain.baselines["web"]["bookworm"].held  # lower approved: dropped


def test_seen_dates_survive_an_unassessed_host_and_obsolete_ones_go() -> None:
    first = resolve_lock([WEB], fleet(), NOW)
    # web-02 (trixie) is unreachable this time: its versions keep their dates
    only_bookworm = resolve_lock([WEB], fleet()[:1], NOW + timedelta(days=1), previous=first)
    assert only_bookworm.first_seen("trixie", "libssl3t64", "3.5.1-1") == NOW
    assert "trixie" not in only_bookworm.baselines["web"]  # no decisions without data
    # libssl3 3.0.23 replaces 3.0.22; once web-01 runs 3.0.23, the replaced version is
    # obsolete and nothing refers to it: it leaves `seen`, while the kept approval's date stays
    second = resolve_lock([WEB], fleet("3.0.23-1~deb12u1"), NOW + timedelta(days=2), first)
    assert second.first_seen("bookworm", "libssl3", "3.0.22-1~deb12u2") == NOW
    after = resolve_lock(
        [WEB], [_upgraded(fleet()[0], "libssl3", "3.0.23-1~deb12u1"), fleet()[1]], NOW, second
    )
    assert after.first_seen("bookworm", "libssl3", "3.0.22-1~deb12u2") is None
    assert after.first_seen("bookworm", "libssl3", "3.0.23-1~deb12u1") == NOW + timedelta(days=2)
    assert after.first_seen("bookworm", "curl", "7.88.1-10+deb12u6") == NOW  # still pending


def _upgraded(host: HostAssessment, *packages: str) -> HostAssessment:
    """`host` after installing the given (package, version) pairs: no longer pending."""
    versions = dict(zip(packages[::2], packages[1::2], strict=True))
    return host.model_copy(
        update={
            "installed": tuple(
                p.model_copy(update={"version": versions.get(p.name, p.version)})
                for p in host.installed
            ),
            "pending": tuple(u for u in host.pending if u.package not in versions),
        }
    )


def test_relock_after_the_hosts_reached_the_approved_versions_keeps_them_byte_for_byte() -> None:
    first = dump_lock(resolve_lock([WEB], fleet(), NOW))
    patched = _upgraded(fleet()[0], "libssl3", "3.0.22-1~deb12u2", "nginx", "1.22.1-9+deb12u1")
    web_02 = _upgraded(fleet()[1], "libssl3t64", "3.5.1-1")
    again = resolve_lock([WEB], [patched, web_02], NOW + timedelta(days=30), load_lock(first))
    assert dump_lock(again) == first
    assert diff_locks(load_lock(first), again) == ()


def test_a_host_added_later_at_an_older_version_is_pinned_by_the_kept_approval() -> None:
    aged = BaselineAssignment("web", PatchBaseline(min_age_days=7), ("web-01", "web-09"))
    seen = resolve_lock([aged], fleet(), NOW - timedelta(days=8))
    first = resolve_lock([aged], fleet(), NOW - timedelta(days=1), previous=seen)
    assert first.approved_version("web", "bookworm", "libssl3") == "3.0.22-1~deb12u2"
    patched = _upgraded(fleet()[0], "libssl3", "3.0.22-1~deb12u2", "nginx", "1.22.1-9+deb12u1")
    # web-09 joins at the old libssl3; the mirror now offers 3.0.23, too new to approve
    late = fleet("3.0.23-1~deb12u1")[0].model_copy(update={"host": "web-09"})
    lock = resolve_lock([aged], [patched, late], NOW, previous=first)
    bookworm = lock.baselines["web"]["bookworm"]
    assert bookworm.approved["libssl3"] == first.baselines["web"]["bookworm"].approved["libssl3"]
    assert bookworm.approved["nginx"].version == "1.22.1-9+deb12u1"
    assert list(bookworm.held["libssl3"]) == ["3.0.23-1~deb12u1"]  # held, not replacing
    pins = _pins(dump_lock(lock), "web", "web-09")
    assert pins == {"libssl3": "3.0.22-1~deb12u2", "nginx": "1.22.1-9+deb12u1"}
    # once 3.0.23 is old enough, it replaces the kept approval
    ripe = resolve_lock([aged], [patched, late], NOW + timedelta(days=7), previous=lock)
    assert ripe.approved_version("web", "bookworm", "libssl3") == "3.0.23-1~deb12u1"
    assert "libssl3" not in ripe.baselines["web"]["bookworm"].held
    [change] = diff_locks(lock, ripe)
    assert (change.kind, change.version, change.previous_version) == (
        "approved",
        "3.0.23-1~deb12u1",
        "3.0.22-1~deb12u2",
    )


def test_a_lower_approved_candidate_never_replaces_a_kept_approval() -> None:
    first = resolve_lock([WEB], fleet(), NOW)
    lagging = fleet("3.0.21-1~deb12u1")[0]  # a host whose mirror offers only an older fix
    again = resolve_lock([WEB], [lagging], NOW + timedelta(days=1), previous=first)
    assert again.approved_version("web", "bookworm", "libssl3") == "3.0.22-1~deb12u2"
    assert "libssl3" not in again.baselines["web"]["bookworm"].held


@pytest.mark.parametrize(
    ("baseline", "reason"),
    [
        (
            PatchBaseline(rejected=(PackageVersionRef(package="nginx"),)),
            "rejected by the baseline (nginx)",
        ),
        (
            PatchBaseline(
                rejected=(PackageVersionRef(package="nginx", version="1.22.1-9+deb12u1"),)
            ),
            "rejected by the baseline (nginx 1.22.1-9+deb12u1)",
        ),
        (PatchBaseline(exclude=("ngin*",)), "excluded by the pattern 'ngin*'"),
        (PatchBaseline(include=("libssl*",)), "not in the included packages (libssl*)"),
    ],
)
def test_a_rejected_or_excluded_approval_is_removed_with_its_reason(
    baseline: PatchBaseline, reason: str
) -> None:
    first = resolve_lock([WEB], fleet(), NOW)
    patched = _upgraded(fleet()[0], "nginx", "1.22.1-9+deb12u1")  # nothing pending for nginx
    changed = BaselineAssignment("web", baseline, WEB.hosts)
    again = resolve_lock([changed], [patched, fleet()[1]], NOW + timedelta(days=1), first)
    assert again.approved_version("web", "bookworm", "nginx") is None
    assert again.approved_version("web", "bookworm", "libssl3") == "3.0.22-1~deb12u2"
    assert again.first_seen("bookworm", "nginx", "1.22.1-9+deb12u1") is None  # obsolete now
    removed = [
        c
        for c in diff_locks(first, again, revoked_approvals([changed], first))
        if c.package == "nginx"
    ]
    assert [(c.kind, c.version, c.reason) for c in removed] == [
        ("removed", "1.22.1-9+deb12u1", reason)
    ]


def test_an_explicit_approval_keeps_an_approval_the_filters_would_revoke() -> None:
    first = resolve_lock([WEB], fleet(), NOW)
    baseline = PatchBaseline(exclude=("nginx",), approved=(PackageVersionRef(package="nginx"),))
    changed = BaselineAssignment("web", baseline, WEB.hosts)
    patched = _upgraded(fleet()[0], "nginx", "1.22.1-9+deb12u1")
    again = resolve_lock([changed], [patched, fleet()[1]], NOW, previous=first)
    assert again.approved_version("web", "bookworm", "nginx") == "1.22.1-9+deb12u1"
    assert revoked_approvals([changed], first) == {}


def test_classification_follows_inventory_settings() -> None:
    settings = PatchingSettings(security_origins=("o=Debian,n=${distro_codename}",))
    lock = resolve_lock([WEB], fleet(), NOW, settings=settings)
    assert set(lock.baselines["web"]["bookworm"].approved) == {"curl"}


def test_yaml_is_stable_sorted_and_round_trips() -> None:
    lock = resolve_lock([WEB], fleet(), NOW, tracker=TRACKER)
    text = dump_lock(lock)
    assert load_lock(text) == lock
    again = resolve_lock(
        [WEB],
        list(reversed(fleet())),
        NOW + timedelta(hours=5),
        previous=load_lock(text),
        tracker=TRACKER,
    )
    assert dump_lock(again) == text  # nothing new: the same bytes, an empty diff
    lines = text.splitlines()
    assert lines[0].startswith("# Written by `patchring patches lock`")
    assert lines[2] == "schema_version: 1"
    assert lines.index("baselines:") < lines.index("seen:")
    assert "      3.0.22-1~deb12u2: '2026-12-01T09:30:00Z'" in lines


def _pins(text: str, baseline: str, host: str) -> dict[str, str]:
    """The `patch` pins desired state gets from the lock text for a host without variables."""
    loaded = LoadedLock(load_lock(text), parse_yaml(text, "patches.lock.yml", "lock"))
    resources, problems = locked_resources(loaded, baseline, host, {})
    assert problems == []
    return {r.spec.package: r.spec.fixed for r in resources if isinstance(r.spec, Patch)}


GOOD = """\
schema_version: 1
baselines:
  web:
    bookworm:
      approved:
        libssl3:
          classification: security
          first_seen: '2026-12-01T09:30:00Z'
          reason: security update
          version: 3.0.22-1~deb12u2
seen:
  bookworm:
    libssl3:
      3.0.22-1~deb12u2: '2026-12-01T09:30:00Z'
"""


def lock_problems(text: str) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        load_lock(text, "patches.lock.yml")
    return [str(d) for d in caught.value.diagnostics]


def test_loading_a_good_hand_written_lock() -> None:
    lock = load_lock(GOOD)
    assert isinstance(lock, PatchLock)
    assert lock.approved_version("web", "bookworm", "libssl3") == "3.0.22-1~deb12u2"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "schema_version: 1",
            "schema_version: 2",
            "patches.lock.yml:1:17: error: lock file schema 2 is not supported (this patchring "
            "reads schema 1); run `patchring patches lock` to write it again",
        ),
        (
            "          version: 3.0.22-1~deb12u2",
            "          version: latest",
            "patches.lock.yml:10:20: error: 'latest' is not a Debian version (like 1.0-2 or "
            "1:2.3-1~deb12u1)",
        ),
        (
            "          reason: security update",
            "          reasn: security update",
            "patches.lock.yml:7:11: error: missing required key 'reason'\n"
            "patches.lock.yml:9:11: error: unknown key 'reasn' (did you mean 'reason'?)",
        ),
        (
            "          classification: security",
            "          classification: urgent",
            "patches.lock.yml:7:27: error: expected 'security' or 'other', got 'urgent'",
        ),
        (
            "      3.0.22-1~deb12u2: '2026-12-01T09:30:00Z'",
            "      3.0.22-1~deb12u2: yesterday",
            "patches.lock.yml:14:25: error: 'yesterday' is not a date and time with a time zone "
            "(like 2026-12-01T09:30:00Z)",
        ),
        (
            "          first_seen: '2026-12-01T09:30:00Z'",
            "          first_seen: '2026-12-01'",
            "patches.lock.yml:8:23: error: '2026-12-01' is not a date and time with a time zone "
            "(like 2026-12-01T09:30:00Z)",
        ),
        (
            "schema_version: 1\n",
            "",
            "patches.lock.yml:1:1: error: missing required key 'schema_version'",
        ),
        (
            "baselines:",
            "baselines: [",
            "patches.lock.yml:4:13: error: invalid YAML: expected ',' or ']', but got ':' "
            "(while parsing a flow sequence started at line 2)",
        ),
    ],
)
def test_lock_errors_are_located(old: str, new: str, expected: str) -> None:
    assert old in GOOD
    assert lock_problems(GOOD.replace(old, new, 1)) == expected.split("\n")


def test_yaml_quotes_keys_and_versions_that_look_like_numbers_or_booleans() -> None:
    odd = assessment(
        "web-01",
        installed_=(installed("yes", "1.0"),),
        pending_=(pending("yes", "1.0", "2"), pending("on", None, "1.10")),
    )
    lock = resolve_lock([BaselineAssignment("web", PatchBaseline(), ("web-01",))], [odd], NOW)
    text = dump_lock(lock)
    assert "'yes':" in text and "'on':" in text and "version: '1.10'" in text
    assert load_lock(text) == lock
    assert load_lock(text).approved_version("web", "bookworm", "on") == "1.10"
