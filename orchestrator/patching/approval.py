"""Patch baseline evaluation: one pending update in, approved or not with the reason out.

SSM Patch Manager's order: filters (classification, include, exclude), approval rules (minimum
urgency, minimum age since first seen), then explicit approvals override both, and explicit
rejections win last. Time is an argument (`now`), never read from the clock, so minimum age is
testable. Imports only the package's model and `patching.versions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from fnmatch import fnmatchcase

from pydantic import AwareDatetime

from orchestrator.model.base import Frozen
from orchestrator.model.baseline import PackageVersionRef, PatchBaseline
from orchestrator.model.patching import Classification, Urgency
from orchestrator.patching.versions import compare_versions


class FixedCve(Frozen):
    """A CVE (or advisory) an update fixes, with its urgency when the tracker knows it."""

    id: str
    urgency: Urgency | None = None


class UpdateCandidate(Frozen):
    """One candidate version of one package, as a baseline sees it."""

    package: str
    version: str
    classification: Classification
    fixes: tuple[FixedCve, ...] = ()
    first_seen: AwareDatetime


class Decision(Frozen):
    """Whether a baseline approves a candidate, and why (a reviewer reads this)."""

    package: str
    version: str
    approved: bool
    reason: str
    approvable_from: AwareDatetime | None = None
    """Set when only the minimum age holds the version back: the moment it becomes approved."""


def _matching_ref(refs: Iterable[PackageVersionRef], package: str, version: str) -> str | None:
    for ref in refs:
        same_version = ref.version is None or compare_versions(ref.version, version) == 0
        if fnmatchcase(package, ref.package) and same_version:
            return ref.package + (f" {ref.version}" if ref.version else "")
    return None


def _package_filter_problem(
    baseline: PatchBaseline, package: str, classification: Classification
) -> str | None:
    if baseline.classification == "security" and classification != "security":
        return "not a security update (the baseline approves security updates only)"
    if baseline.include and not any(fnmatchcase(package, p) for p in baseline.include):
        return f"not in the included packages ({', '.join(baseline.include)})"
    for pattern in baseline.exclude:
        if fnmatchcase(package, pattern):
            return f"excluded by the pattern '{pattern}'"
    return None


def _filter_problem(baseline: PatchBaseline, candidate: UpdateCandidate) -> str | None:
    problem = _package_filter_problem(baseline, candidate.package, candidate.classification)
    if problem is not None:
        return problem
    minimum = baseline.minimum_urgency
    if minimum is not None:
        ranks = [fix.urgency.rank for fix in candidate.fixes if fix.urgency is not None]
        if not ranks or max(ranks) < minimum.rank:
            return f"fixes no CVE of urgency {minimum.value} or higher"
    return None


def _kind(candidate: UpdateCandidate) -> str:
    return "security update" if candidate.classification == "security" else "update"


def _fixes_text(candidate: UpdateCandidate) -> str:
    if not candidate.fixes:
        return ""
    return ", fixes " + ", ".join(sorted({fix.id for fix in candidate.fixes}))


def evaluate_update(
    baseline: PatchBaseline, candidate: UpdateCandidate, now: AwareDatetime
) -> Decision:
    """The baseline's decision on one candidate at time `now`."""

    def decide(approved: bool, reason: str, until: AwareDatetime | None = None) -> Decision:
        return Decision(
            package=candidate.package,
            version=candidate.version,
            approved=approved,
            reason=reason,
            approvable_from=until,
        )

    rejection = _matching_ref(baseline.rejected, candidate.package, candidate.version)
    if rejection is not None:
        return decide(False, f"rejected by the baseline ({rejection})")
    approval = _matching_ref(baseline.approved, candidate.package, candidate.version)
    if approval is not None:
        return decide(True, f"explicitly approved ({approval}){_fixes_text(candidate)}")
    problem = _filter_problem(baseline, candidate)
    if problem is not None:
        return decide(False, problem)
    ripe = candidate.first_seen + timedelta(days=baseline.min_age_days)
    if ripe > now:
        seen = candidate.first_seen.date().isoformat()
        reason = (
            f"pending approval until {ripe.date().isoformat()}: younger than "
            f"{baseline.min_age_days} days (first seen {seen})"
        )
        return decide(False, reason, ripe)
    age = f", older than {baseline.min_age_days} days" if baseline.min_age_days else ""
    return decide(True, f"{_kind(candidate)}{age}{_fixes_text(candidate)}")


def revocation(
    baseline: PatchBaseline, package: str, version: str, classification: Classification
) -> str | None:
    """Why a version approved by an earlier lock is approved no more, or None to keep it.

    Only the baseline's rejections and package filters (classification, include, exclude)
    revoke an approval, and an explicit approval still overrides the filters. The rules
    (minimum urgency, minimum age) decide on new versions only: an approval they once gave
    stays, so a re-lock with nothing new changes nothing."""
    rejection = _matching_ref(baseline.rejected, package, version)
    if rejection is not None:
        return f"rejected by the baseline ({rejection})"
    if _matching_ref(baseline.approved, package, version) is not None:
        return None
    return _package_filter_problem(baseline, package, classification)


def evaluate_baseline(
    baseline: PatchBaseline, candidates: Sequence[UpdateCandidate], now: AwareDatetime
) -> tuple[Decision, ...]:
    """The decision on every candidate, in the order given."""
    return tuple(evaluate_update(baseline, candidate, now) for candidate in candidates)
