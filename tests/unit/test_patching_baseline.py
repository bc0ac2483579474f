"""Patch baseline evaluation, table-driven: filters, rules, approvals, rejections (SSM order)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from orchestrator.model.baseline import PatchBaseline
from orchestrator.model.patching import Urgency
from orchestrator.patching.approval import (
    FixedCve,
    UpdateCandidate,
    evaluate_baseline,
    evaluate_update,
)
from orchestrator.policy.validation import validate_located
from orchestrator.policy.yamlsource import parse_yaml
from tests.unit.patching_samples import NOW

HIGH = FixedCve(id="CVE-2026-1", urgency=Urgency.HIGH)
LOW = FixedCve(id="CVE-2026-2", urgency=Urgency.LOW)
UNASSIGNED = FixedCve(id="CVE-2026-3", urgency=Urgency.NOT_YET_ASSIGNED)


def candidate(
    package: str = "libssl3",
    version: str = "3.0.22-1~deb12u2",
    classification: str = "security",
    fixes: tuple[FixedCve, ...] = (),
    age_days: float = 30,
) -> UpdateCandidate:
    return UpdateCandidate(
        package=package,
        version=version,
        classification=classification,  # type: ignore[arg-type]
        fixes=fixes,
        first_seen=NOW - timedelta(days=age_days),
    )


CASES: list[tuple[str, dict[str, Any], UpdateCandidate, bool, str]] = [
    ("default approves security", {}, candidate(), True, "security update"),
    (
        "default holds other",
        {},
        candidate(classification="other"),
        False,
        "not a security update (the baseline approves security updates only)",
    ),
    (
        "all approves other",
        {"classification": "all"},
        candidate(classification="other"),
        True,
        "update",
    ),
    (
        "include misses",
        {"include": ["nginx*"]},
        candidate(),
        False,
        "not in the included packages (nginx*)",
    ),
    ("include hits", {"include": ["lib*"]}, candidate(), True, "security update"),
    (
        "exclude hits",
        {"exclude": ["libssl*"]},
        candidate(),
        False,
        "excluded by the pattern 'libssl*'",
    ),
    ("globs are case-sensitive", {"exclude": ["LIBSSL*"]}, candidate(), True, "security update"),
    (
        "urgency met",
        {"min_urgency": "high"},
        candidate(fixes=(LOW, HIGH)),
        True,
        "security update, fixes CVE-2026-1, CVE-2026-2",
    ),
    (
        "urgency not met",
        {"min_urgency": "medium"},
        candidate(fixes=(LOW,)),
        False,
        "fixes no CVE of urgency medium or higher",
    ),
    (
        "no CVE, urgency required",
        {"min_urgency": "low"},
        candidate(),
        False,
        "fixes no CVE of urgency low or higher",
    ),
    (
        "not yet assigned counts as high",
        {"min_urgency": "high"},
        candidate(fixes=(UNASSIGNED,)),
        True,
        "security update, fixes CVE-2026-3",
    ),
    (
        "too young",
        {"min_age_days": 7},
        candidate(age_days=2),
        False,
        "pending approval until 2026-12-06: younger than 7 days (first seen 2026-11-29)",
    ),
    (
        "old enough",
        {"min_age_days": 7},
        candidate(age_days=7),
        True,
        "security update, older than 7 days",
    ),
    (
        "approved overrides filters and age",
        {"min_age_days": 7, "exclude": ["libssl3"], "approved": [{"package": "libssl3"}]},
        candidate(age_days=0, classification="other"),
        True,
        "explicitly approved (libssl3)",
    ),
    (
        "approval of another version does not apply",
        {"classification": "security", "approved": [{"package": "libssl3", "version": "9.9-1"}]},
        candidate(classification="other"),
        False,
        "not a security update (the baseline approves security updates only)",
    ),
    (
        "rejected wins over approved",
        {"approved": [{"package": "libssl3"}], "rejected": [{"package": "libssl*"}]},
        candidate(),
        False,
        "rejected by the baseline (libssl*)",
    ),
    (
        "rejected version only",
        {"rejected": [{"package": "libssl3", "version": "3.0.21-1"}]},
        candidate(),
        True,
        "security update",
    ),
    (
        "rejected version compares as Debian versions",
        {"rejected": [{"package": "telnet", "version": "0:1.0"}]},
        candidate(package="telnet", version="1.0-0"),
        False,
        "rejected by the baseline (telnet 0:1.0)",
    ),
]


@pytest.mark.parametrize(
    ("settings", "update", "approved", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_baseline_decisions(
    settings: dict[str, Any], update: UpdateCandidate, approved: bool, reason: str
) -> None:
    decision = evaluate_update(PatchBaseline.model_validate(settings), update, NOW)
    assert (decision.approved, decision.reason) == (approved, reason)


def test_min_age_gives_the_date_and_approves_once_the_clock_passes_it() -> None:
    baseline = PatchBaseline(min_age_days=7)
    young = candidate(age_days=2)
    held = evaluate_update(baseline, young, NOW)
    assert held.approvable_from == young.first_seen + timedelta(days=7)
    assert not evaluate_update(
        baseline, young, held.approvable_from - timedelta(seconds=1)
    ).approved
    assert evaluate_update(baseline, young, held.approvable_from).approved
    # a filter problem gives no date: age is not what holds it back
    assert (
        evaluate_update(
            PatchBaseline(min_age_days=7, exclude=("lib*",)), young, NOW
        ).approvable_from
        is None
    )


def test_evaluate_baseline_keeps_order() -> None:
    decisions = evaluate_baseline(PatchBaseline(), [candidate("b"), candidate("a")], NOW)
    assert [d.package for d in decisions] == ["b", "a"]


def test_baseline_model_errors_are_located() -> None:
    text = (
        "classification: securty\nmin_age_days: -1\nmin_urgency: critical\n"
        "exclude: ['linux image']\nrejected:\n  - package: nginx\n    verison: '1.0'\n"
    )
    located = parse_yaml(text, "policies/web.yml", "policy")
    baseline, problems = validate_located(PatchBaseline, located)
    assert baseline is None
    assert sorted(str(p) for p in problems) == [
        "policies/web.yml:1:17: error: expected 'security' or 'all', got 'securty' "
        "(did you mean 'security'?)",
        "policies/web.yml:2:15: error: must be greater than or equal to 0, got -1",
        "policies/web.yml:3:14: error: expected 'unimportant', 'low', 'medium' or 'high', "
        "got 'critical'",
        "policies/web.yml:4:11: error: 'linux image' is not a package name or glob "
        "(like linux-image-*)",
        "policies/web.yml:7:5: error: unknown key 'verison' (did you mean 'version'?)",
    ]
