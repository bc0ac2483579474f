"""Lock resolution: baselines + the fleet's assessments + the previous lock + now -> a new lock.

Every pending candidate version is recorded in `seen` with the time patchring first saw it
(kept from the previous lock; new versions get `now`), so minimum age counts from there. Per
baseline and release codename, each package gets the highest candidate version its baseline
approves; every other candidate version is held with its reason. An approval of the previous
lock stays (even once every host runs it, so a host added later at an older version is still
pinned) until the baseline approves a newer version of the package, which replaces it, or the
baseline now rejects or filters it out (`revocation`), which removes it. A previously seen
version that is no longer a candidate stays in `seen` while the lock refers to it, or unless it
is obsolete: some assessed host of that release has the package, and every such host already
runs that version or a newer one (a host that was not assessed this time never makes its
versions lose their date). Deterministic: the same inputs give the same lock, and a re-lock
with nothing new gives the same lock. Imports only the package's model and `patching` modules.
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
from orchestrator.patching.approval import (
    FixedCve,
    UpdateCandidate,
    evaluate_update,
    revocation,
)
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
    now: AwareDatetime,
) -> dict[CandidateKey, AwareDatetime]:
    table = dict(previous)
    for key in candidates:
        table[key] = previous.get(key, now)
    return table


def _pruned_seen(
    table: Mapping[CandidateKey, AwareDatetime],
    candidates: Mapping[CandidateKey, _Seen],
    referenced: set[CandidateKey],
    assessments: Sequence[HostAssessment],
) -> dict[CandidateKey, AwareDatetime]:
    """`table` without the versions that are obsolete and that nothing refers to any more."""
    installed: dict[tuple[str, str], list[str]] = {}
    for assessment in assessments:
        for package in assessment.installed:
            installed.setdefault((assessment.codename, package.name), []).append(package.version)
    return {
        key: when
        for key, when in table.items()
        if key in candidates or key in referenced or not _obsolete(key, installed)
    }


def _references(codename: str, release: ReleaseLock) -> set[CandidateKey]:
    found = {(codename, package, entry.version) for package, entry in release.approved.items()}
    found |= {(codename, p, v) for p, versions in release.held.items() for v in versions}
    return found


def _kept_approvals(
    baseline: PatchBaseline,
    fresh: dict[str, ApprovedVersion],
    held: dict[str, dict[str, HeldVersion]],
    previous: ReleaseLock,
) -> dict[str, ApprovedVersion]:
    """`fresh` plus each previous approval that neither a newer approved version replaces nor
    the baseline revokes; a kept version is approved, so it is no longer listed as held."""
    approved = dict(fresh)
    for package, entry in previous.approved.items():
        if revocation(baseline, package, entry.version, entry.classification) is not None:
            continue
        current = approved.get(package)
        if current is None or compare_versions(current.version, entry.version) < 0:
            approved[package] = entry
    for package, entry in approved.items():
        versions = held.get(package, {})
        versions.pop(entry.version, None)
        if not versions:
            held.pop(package, None)
    return dict(sorted(approved.items()))


def _release_lock(
    baseline: PatchBaseline,
    keys: Sequence[CandidateKey],
    candidates: Mapping[CandidateKey, _Seen],
    seen: Mapping[CandidateKey, AwareDatetime],
    now: AwareDatetime,
    codename: str,
    previous: ReleaseLock,
) -> ReleaseLock:
    approved: dict[str, ApprovedVersion] = {}
    held: dict[str, dict[str, HeldVersion]] = {}
    by_package: dict[str, list[str]] = {}
    for _, package, version in keys:
        by_package.setdefault(package, []).append(version)
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
    approved = _kept_approvals(baseline, approved, held, previous)
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
    seen = _seen_table(candidates, _previous_dates(previous), now)
    by_host = {assessment.host: assessment for assessment in assessments}
    before = previous.baselines if previous is not None else {}
    baselines: dict[str, dict[str, ReleaseLock]] = {}
    referenced: set[CandidateKey] = set()
    decided: set[tuple[str, str]] = set()
    for assignment in sorted(assignments, key=lambda a: a.name):
        keys: dict[str, set[CandidateKey]] = {}
        governed = [by_host[host] for host in assignment.hosts if host in by_host]
        for assessment in governed:
            found = keys.setdefault(assessment.codename, set())
            for update in assessment.pending:
                found.add((assessment.codename, update.package, update.candidate_version))
        releases: dict[str, ReleaseLock] = {}
        for codename, found in sorted(keys.items()):
            decided.add((assignment.name, codename))
            kept = before.get(assignment.name, {}).get(codename) or ReleaseLock()
            release = _release_lock(
                assignment.baseline, sorted(found), candidates, seen, now, codename, kept
            )
            if release.approved or release.held:
                releases[codename] = release
                referenced |= _references(codename, release)
        baselines[assignment.name] = releases
    # Releases decided elsewhere (kept by the caller for hosts not assessed) keep their dates.
    for name, previous_releases in before.items():
        for codename, release in previous_releases.items():
            if (name, codename) not in decided:
                referenced |= _references(codename, release)
    seen = _pruned_seen(seen, candidates, referenced, assessments)
    return PatchLock(
        schema_version=LOCK_SCHEMA_VERSION, seen=_nested_seen(seen), baselines=baselines
    )


def revoked_approvals(
    assignments: Sequence[BaselineAssignment], previous: PatchLock | None
) -> dict[tuple[str, str, str], str]:
    """(baseline, codename, package) -> why the baseline now revokes that previous approval:
    the reason a lock diff gives for removing it."""
    found: dict[tuple[str, str, str], str] = {}
    if previous is None:
        return found
    for assignment in assignments:
        for codename, release in previous.baselines.get(assignment.name, {}).items():
            for package, entry in release.approved.items():
                reason = revocation(
                    assignment.baseline, package, entry.version, entry.classification
                )
                if reason is not None:
                    found[(assignment.name, codename, package)] = reason
    return found
