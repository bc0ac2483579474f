"""Lock resolution: baselines + the fleet's assessments + the previous lock + now -> a new lock.

Every pending candidate version is recorded in `seen` with the time patchring first saw it
(kept from the previous lock; new versions get `now`), so minimum age counts from there. Per
baseline and release codename, each package gets the highest candidate version its baseline
approves; every other candidate version is held with its reason. A previously seen version that
is no longer a candidate stays in `seen` unless it is obsolete: some assessed host of that
release has the package, and every such host already runs that version or a newer one (a host
that was not assessed this time never makes its versions lose their date). Deterministic: the
same inputs give the same lock. Imports only the package's model and `patching` modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import AwareDatetime

from orchestrator.model.baseline import PatchBaseline
from orchestrator.model.patching import (
    Advisory,
    Classification,
    HostAssessment,
    PatchingSettings,
)
from orchestrator.model.patchlock import (
    LOCK_SCHEMA_VERSION,
    ApprovedVersion,
    HeldVersion,
    PatchLock,
    ReleaseLock,
)
from orchestrator.patching.approval import FixedCve, UpdateCandidate, evaluate_update
from orchestrator.patching.exposure import advisories_fixed, cves_fixed_by_package, host_exposure
from orchestrator.patching.origins import classify_update, security_patterns
from orchestrator.patching.tracker import SecurityTracker
from orchestrator.patching.versions import compare_versions, sort_versions

CandidateKey = tuple[str, str, str]
"""(release codename, package, version)."""


@dataclass(frozen=True)
class BaselineAssignment:
    """A baseline and the hosts it governs (the hosts its policy selects)."""

    name: str
    baseline: PatchBaseline
    hosts: tuple[str, ...]


@dataclass
class _Seen:
    """What the fleet says about one candidate version (merged over every host offering it)."""

    source: str
    classification: Classification = "other"
    fixes: dict[str, FixedCve] = field(default_factory=dict)


def _previous_dates(previous: PatchLock | None) -> dict[CandidateKey, AwareDatetime]:
    dates: dict[CandidateKey, AwareDatetime] = {}
    if previous is None:
        return dates
    for codename, packages in previous.seen.items():
        for package, versions in packages.items():
            for version, when in versions.items():
                dates[(codename, package, version)] = when
    for releases in previous.baselines.values():
        for codename, release in releases.items():
            entries = [(p, e.version, e.first_seen) for p, e in release.approved.items()]
            entries += [
                (p, v, e.first_seen) for p, held in release.held.items() for v, e in held.items()
            ]
            for package, version, when in entries:
                key = (codename, package, version)
                dates[key] = min(when, dates.get(key, when))
    return dates


def _collect_candidates(
    assessments: Sequence[HostAssessment],
    settings: PatchingSettings,
    tracker: SecurityTracker | None = None,
    advisories: Sequence[Advisory] = (),
) -> dict[CandidateKey, _Seen]:
    """Every pending candidate in the fleet: its source, whether any host classes it as a
    security update, and the CVEs and advisories it fixes on any host."""
    found: dict[CandidateKey, _Seen] = {}
    for assessment in assessments:
        patterns = security_patterns(settings, assessment.codename)
        sources = {package.name: package.source for package in assessment.installed}
        cves = cves_fixed_by_package(host_exposure(assessment, tracker)) if tracker else {}
        fixed_advisories = advisories_fixed(assessment, advisories)
        for update in assessment.pending:
            key = (assessment.codename, update.package, update.candidate_version)
            seen = found.setdefault(key, _Seen(source=""))
            seen.source = seen.source or sources.get(update.package, "")
            if classify_update(update, patterns) == "security":
                seen.classification = "security"
            for cve in cves.get(update.package, ()):
                seen.fixes[cve.cve] = FixedCve(id=cve.cve, urgency=cve.urgency)
            for advisory in fixed_advisories.get(update.package, ()):
                seen.fixes.setdefault(advisory.id, FixedCve(id=advisory.id))
                for cve_id in advisory.cves:
                    seen.fixes.setdefault(cve_id, FixedCve(id=cve_id))
    return found


def _obsolete(key: CandidateKey, installed: Mapping[tuple[str, str], list[str]]) -> bool:
    codename, package, version = key
    versions = installed.get((codename, package))
    return bool(versions) and all(compare_versions(v, version) >= 0 for v in versions or ())


def _seen_table(
    candidates: Mapping[CandidateKey, _Seen],
    previous: Mapping[CandidateKey, AwareDatetime],
    assessments: Sequence[HostAssessment],
    now: AwareDatetime,
) -> dict[CandidateKey, AwareDatetime]:
    installed: dict[tuple[str, str], list[str]] = {}
    for assessment in assessments:
        for package in assessment.installed:
            installed.setdefault((assessment.codename, package.name), []).append(package.version)
    table = {key: when for key, when in previous.items() if not _obsolete(key, installed)}
    for key in candidates:
        table[key] = previous.get(key, now)
    return table


def _release_lock(
    baseline: PatchBaseline,
    keys: Sequence[CandidateKey],
    candidates: Mapping[CandidateKey, _Seen],
    seen: Mapping[CandidateKey, AwareDatetime],
    now: AwareDatetime,
) -> ReleaseLock:
    approved: dict[str, ApprovedVersion] = {}
    held: dict[str, dict[str, HeldVersion]] = {}
    by_package: dict[str, list[str]] = {}
    for _, package, version in keys:
        by_package.setdefault(package, []).append(version)
    codename = keys[0][0] if keys else ""
    for package, versions in sorted(by_package.items()):
        for version in reversed(sort_versions(sorted(set(versions)))):
            key = (codename, package, version)
            info = candidates[key]
            candidate = UpdateCandidate(
                package=package,
                version=version,
                classification=info.classification,
                fixes=tuple(info.fixes[name] for name in sorted(info.fixes)),
                first_seen=seen[key],
            )
            decision = evaluate_update(baseline, candidate, now)
            fixes = tuple(sorted(info.fixes))
            if decision.approved and package not in approved:
                approved[package] = ApprovedVersion(
                    version=version,
                    source=info.source,
                    classification=info.classification,
                    first_seen=seen[key],
                    fixes=fixes,
                    reason=decision.reason,
                )
            elif not decision.approved:
                held.setdefault(package, {})[version] = HeldVersion(
                    classification=info.classification,
                    first_seen=seen[key],
                    fixes=fixes,
                    reason=decision.reason,
                    approvable_from=decision.approvable_from,
                )
    return ReleaseLock(approved=approved, held=held)


def _nested_seen(
    table: Mapping[CandidateKey, AwareDatetime],
) -> dict[str, dict[str, dict[str, AwareDatetime]]]:
    nested: dict[str, dict[str, dict[str, AwareDatetime]]] = {}
    for (codename, package, version), when in sorted(table.items()):
        nested.setdefault(codename, {}).setdefault(package, {})[version] = when
    return nested


def resolve_lock(
    assignments: Sequence[BaselineAssignment],
    assessments: Sequence[HostAssessment],
    now: AwareDatetime,
    previous: PatchLock | None = None,
    settings: PatchingSettings | None = None,
    tracker: SecurityTracker | None = None,
    advisories: Sequence[Advisory] = (),
) -> PatchLock:
    """The new lock. `now` is truncated to whole seconds (stable text); hosts named by an
    assignment but not assessed are left out of its decisions, never guessed."""
    now = now.replace(microsecond=0)
    settings = settings or PatchingSettings()
    candidates = _collect_candidates(assessments, settings, tracker, advisories)
    seen = _seen_table(candidates, _previous_dates(previous), assessments, now)
    by_host = {assessment.host: assessment for assessment in assessments}
    baselines: dict[str, dict[str, ReleaseLock]] = {}
    for assignment in sorted(assignments, key=lambda a: a.name):
        keys: dict[str, set[CandidateKey]] = {}
        governed = [by_host[host] for host in assignment.hosts if host in by_host]
        for assessment in governed:
            for update in assessment.pending:
                key = (assessment.codename, update.package, update.candidate_version)
                keys.setdefault(assessment.codename, set()).add(key)
        baselines[assignment.name] = {
            codename: _release_lock(assignment.baseline, sorted(found), candidates, seen, now)
            for codename, found in sorted(keys.items())
        }
    return PatchLock(
        schema_version=LOCK_SCHEMA_VERSION, seen=_nested_seen(seen), baselines=baselines
    )
