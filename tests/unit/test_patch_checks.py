"""The patch baseline's generated checks without hosts: which checks a baseline yields, and
their pass/fail with expected/actual from fixed command outputs (simulated dist-upgrade, bare
`apt-cache policy`, `dpkg-query`), evaluated directly and through the runner's batches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from orchestrator.model.baseline import PatchBaseline
from orchestrator.model.desired import DesiredState, HostTarget
from orchestrator.model.patching import PatchingSettings
from orchestrator.patching.probeparse import INSTALLED_COMMAND, POLICY_COMMAND, SIMULATE_COMMAND
from orchestrator.patching.tracker import parse_tracker
from orchestrator.policy import WorktreeSource, load_project
from orchestrator.source import SourceLocation
from orchestrator.verify import plan_checks
from orchestrator.verify.batch import Answer
from orchestrator.verify.patchchecks import (
    OS_RELEASE_COMMAND,
    BaselineSetting,
    CommandOutput,
    PatchCheckData,
    evaluate_patch_check,
)
from orchestrator.verify.patchdata import patch_check_data
from orchestrator.verify.runner import evaluate_checks
from tests.unit.patching_samples import NOW, release, tracker_json

WHERE = SourceLocation("policies/patching.yml", 3, 1)
URGENCY_AT = SourceLocation("policies/patching.yml", 5, 21)
LAB_ORIGIN = "o=patchring,l=patchring lab,n=lab"
OS_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n'
POLICY = """Package files:
 100 /var/lib/dpkg/status
     release a=now
 500 http://10.213.37.1:8080 lab/main amd64 Packages
     release o=patchring,a=lab,n=lab,l=patchring lab,c=main,b=amd64
     origin 10.213.37.1
 500 http://deb.debian.org/debian bookworm/main amd64 Packages
     release v=12.15,o=Debian,a=oldstable,n=bookworm,l=Debian,c=main,b=amd64
     origin deb.debian.org
Pinned packages:
"""
PENDING = """Reading package lists...
Inst acme-agent [1.0-1] (1.0-2 patchring lab:lab [amd64])
Inst tzdata [2024a-0+deb12u1] (2025b-0+deb12u1 Debian:12.15/oldstable [all])
Conf acme-agent (1.0-2 patchring lab:lab [amd64])
"""
ONLY_OTHER = "Inst tzdata [2024a-0+deb12u1] (2025b-0+deb12u1 Debian:12.15/oldstable [all])\n"
INSTALLED_OLD = (
    "ii  acme-agent 1.0-1 acme-agent 1.0-1 amd64\n"
    "ii  tzdata 2024a-0+deb12u1 tzdata 2024a-0+deb12u1 all\n"
)
INSTALLED_NEW = INSTALLED_OLD.replace("1.0-1", "1.0-2")
TRACKER = tracker_json(
    {
        "acme-agent": {
            "CVE-2026-9001": {"bookworm": release("resolved", "1.0-2", "high")},
            "CVE-2026-9002": {"bookworm": release("resolved", "1.0-2", "medium")},
        }
    }
)


def _data(baseline: PatchBaseline, tracker: bool = True, **extra: object) -> PatchCheckData:
    setting = BaselineSetting(baseline, WHERE, URGENCY_AT if baseline.max_open_urgency else None)
    return PatchCheckData(
        baselines={"patching": setting},
        settings=PatchingSettings(security_origins=(LAB_ORIGIN,)),
        now=NOW,
        tracker=parse_tracker(TRACKER, releases={"bookworm"}) if tracker else None,
        **extra,  # type: ignore[arg-type]
    )


def _governed() -> DesiredState:
    return DesiredState(
        host=HostTarget(name="web-01", address="10.0.0.1"),
        resources=(),
        policies=("patching",),
        patch_baseline="patching",
    )


def _outputs(simulated: str, installed: str = INSTALLED_OLD) -> list[CommandOutput]:
    texts = (OS_RELEASE, simulated, POLICY, installed)
    return [CommandOutput(0, text) for text in texts]


def test_a_governed_host_gets_the_pending_check_and_the_cve_check_only_when_asked() -> None:
    assert plan_checks(_governed()) == ()  # no run data: export and rollouts see none
    plain = plan_checks(_governed(), _data(PatchBaseline()))
    assert [(c.spec.id, c.spec.title, c.spec.expected, c.spec.location) for c in plain] == [
        (
            "patching/patch-baseline/no-approved-security-pending",
            "patch baseline patching: no security update it approves is pending",
            "no approved security update pending",
            WHERE,
        )
    ]
    assert plain[0].commands == (OS_RELEASE_COMMAND, SIMULATE_COMMAND, POLICY_COMMAND)
    urgent = PatchBaseline(max_open_urgency="high")
    assert [c.spec.property for c in plan_checks(_governed(), _data(urgent, tracker=False))] == [
        "no-approved-security-pending"  # no security_data: nothing to compare CVEs with
    ]
    both = plan_checks(_governed(), _data(urgent))
    cve = both[1]
    assert cve.spec.id == "patching/patch-baseline/no-open-cve-with-fix"
    assert cve.spec.expected == "no open CVE of urgency >= high with a fix available"
    assert cve.spec.location == URGENCY_AT
    assert cve.commands[-1] == INSTALLED_COMMAND
    ungoverned = _governed().model_copy(update={"patch_baseline": None})
    assert plan_checks(ungoverned, _data(urgent)) == ()


def test_a_pending_approved_security_update_fails_and_other_updates_do_not() -> None:
    data = _data(PatchBaseline())
    failed = evaluate_patch_check(
        "no-approved-security-pending", "patching", _outputs(PENDING), data
    )
    assert failed == (False, "1 approved security update(s) pending: acme-agent 1.0-1 -> 1.0-2")
    passed = evaluate_patch_check(
        "no-approved-security-pending", "patching", _outputs(ONLY_OTHER), data
    )
    assert passed == (True, "no approved security update pending")
    everything = _data(PatchBaseline(classification="all"))
    assert not evaluate_patch_check(
        "no-approved-security-pending", "patching", _outputs(PENDING), everything
    )[0]
    rejected = _data(PatchBaseline(rejected=({"package": "acme-agent"},)))  # type: ignore[arg-type]
    assert evaluate_patch_check(
        "no-approved-security-pending", "patching", _outputs(PENDING), rejected
    )[0]


def test_minimum_age_counts_from_the_locks_seen_date_and_unknown_means_not_yet() -> None:
    baseline = PatchBaseline(min_age_days=7)
    unknown = evaluate_patch_check(
        "no-approved-security-pending", "patching", _outputs(PENDING), _data(baseline)
    )
    assert unknown == (
        True,
        "no approved security update pending; not counted, first-seen date unknown (not in the "
        "lock's seen), so min_age_days 7 is taken as not met: acme-agent 1.0-1 -> 1.0-2",
    )
    old = {"bookworm": {"acme-agent": {"1.0-2": NOW - timedelta(days=8)}}}
    aged = evaluate_patch_check(
        "no-approved-security-pending", "patching", _outputs(PENDING), _data(baseline, seen=old)
    )
    assert aged[0] is False and "acme-agent 1.0-1 -> 1.0-2" in aged[1]
    young = {"bookworm": {"acme-agent": {"1.0-2": NOW - timedelta(days=2)}}}
    assert evaluate_patch_check(
        "no-approved-security-pending", "patching", _outputs(PENDING), _data(baseline, seen=young)
    ) == (True, "no approved security update pending")


def test_min_urgency_reads_the_cves_a_candidate_fixes_from_the_tracker() -> None:
    data = _data(PatchBaseline(min_urgency="high"))
    (check,) = plan_checks(_governed(), data)
    assert check.commands[-1] == INSTALLED_COMMAND
    assert not evaluate_patch_check(check.spec.property, "patching", _outputs(PENDING), data)[0]
    fixed_medium_only = tracker_json(
        {"acme-agent": {"CVE-2026-9002": {"bookworm": release("resolved", "1.0-2", "medium")}}}
    )
    medium = PatchCheckData(
        baselines=data.baselines,
        settings=data.settings,
        now=NOW,
        tracker=parse_tracker(fixed_medium_only),
    )
    assert evaluate_patch_check(check.spec.property, "patching", _outputs(PENDING), medium)[0]


def test_an_open_high_cve_with_a_fix_fails_with_what_fixes_it_and_passes_once_installed() -> None:
    data = _data(PatchBaseline(max_open_urgency="high"))
    failed = evaluate_patch_check("no-open-cve-with-fix", "patching", _outputs(PENDING), data)
    assert failed == (
        False,
        "1 open CVE(s) with a fix available: CVE-2026-9001 in acme-agent 1.0-1 (high), fixed in "
        "1.0-2, by acme-agent 1.0-2",
    )
    medium = _data(PatchBaseline(max_open_urgency="medium"))
    assert (
        "CVE-2026-9002"
        in evaluate_patch_check("no-open-cve-with-fix", "patching", _outputs(PENDING), medium)[1]
    )
    no_fix_offered = evaluate_patch_check(
        "no-open-cve-with-fix", "patching", _outputs(ONLY_OTHER), data
    )
    assert no_fix_offered == (True, "no CVE of urgency high or higher open with a fix available")
    installed = evaluate_patch_check(
        "no-open-cve-with-fix", "patching", _outputs(ONLY_OTHER, INSTALLED_NEW), data
    )
    assert installed[0] is True


class _Answers:
    """A host that answers every command from a table (what a real batch would return)."""

    def __init__(self, table: Mapping[str, Answer]) -> None:
        self.table = table
        self.batches = 0

    def run_batch(self, commands: Sequence[str]) -> list[Answer]:
        self.batches += 1
        return [self.table.get(command, Answer(127, b"", b"not found")) for command in commands]


def test_the_runner_batches_the_commands_and_keeps_them_as_evidence() -> None:
    data = _data(PatchBaseline(max_open_urgency="high"))
    table = {
        OS_RELEASE_COMMAND: Answer(0, OS_RELEASE.encode()),
        SIMULATE_COMMAND: Answer(0, PENDING.encode()),
        POLICY_COMMAND: Answer(0, POLICY.encode()),
        INSTALLED_COMMAND: Answer(0, INSTALLED_OLD.encode()),
        "uname -s": Answer(0, b"Linux\n"),
    }
    link = _Answers(table)
    outcomes = evaluate_checks(plan_checks(_governed(), data), link, data)
    assert link.batches == 1
    results = [outcome.result(lambda text: text) for outcome in outcomes]
    assert [(r.check_id, r.status) for r in results] == [
        ("patching/patch-baseline/no-approved-security-pending", "failed"),
        ("patching/patch-baseline/no-open-cve-with-fix", "failed"),
    ]
    evidence = results[1].evidence
    assert [e.command for e in evidence] == [
        OS_RELEASE_COMMAND,
        SIMULATE_COMMAND,
        POLICY_COMMAND,
        INSTALLED_COMMAND,
    ]
    assert "Inst acme-agent [1.0-1]" in evidence[1].stdout


def test_an_apt_failure_is_an_error_of_the_check_not_a_pass() -> None:
    data = _data(PatchBaseline())
    broken = {
        OS_RELEASE_COMMAND: Answer(0, OS_RELEASE.encode()),
        SIMULATE_COMMAND: Answer(100, b"", b"E: Could not get lock /var/lib/dpkg/lock\n"),
        POLICY_COMMAND: Answer(0, POLICY.encode()),
    }
    (outcome,) = evaluate_checks(plan_checks(_governed(), data), _Answers(broken), data)
    result = outcome.result(lambda text: text)
    assert result.status == "error"
    assert (
        result.message
        == "ValueError: apt-get -s exited 100: E: Could not get lock /var/lib/dpkg/lock"
    )


def test_the_run_data_reads_the_baseline_where_written_and_only_the_fleets_releases(
    tmp_path: Path,
) -> None:
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "hosts.yml").write_text(
        "hosts:\n"
        "  web-01: {address: 10.0.0.1, vars: {debian_release: bookworm}}\n"
        "  db-01: {address: 10.0.0.2}\n"
        "patching:\n  security_origins: ['o=patchring,l=patchring lab,n=lab']\n"
    )
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "patching.yml").write_text(
        "name: patching\nselect: {hosts: [web-01]}\npatch_baseline:\n"
        "  classification: security\n  max_open_urgency: high\n"
    )
    project = load_project(WorktreeSource(tmp_path))
    two_releases = tracker_json(
        {
            "acme-agent": {
                "CVE-2026-9001": {
                    "bookworm": release("resolved", "1.0-2", "high"),
                    "trixie": release("resolved", "1.0-3", "high"),
                }
            }
        }
    )
    data = patch_check_data(project, ["web-01", "db-01"], two_releases, NOW)
    setting = data.baselines["patching"]
    assert str(setting.location) == "policies/patching.yml:3:1"
    assert str(setting.urgency_location) == "policies/patching.yml:5:21"
    assert data.settings.security_origins == ("o=patchring,l=patchring lab,n=lab",)
    assert data.tracker is not None
    kept = data.tracker.sources["acme-agent"]["CVE-2026-9001"]
    assert set(kept) == {"bookworm"}  # db-01 follows no baseline; web-01 runs bookworm
    assert [c.spec.property for c in plan_checks(project.desired["db-01"], data)] == []
    no_urgency = project.policies[0].document.model_copy(update={"patch_baseline": PatchBaseline()})
    plain = replace(project, policies=(replace(project.policies[0], document=no_urgency),))
    assert patch_check_data(plain, ["web-01"], two_releases, NOW).tracker is None  # not parsed
