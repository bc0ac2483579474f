"""Which CVEs are open on a host, and which pending updates fix them (debsecan, for a fleet).

A CVE is open when the tracker marks it resolved for the host's release at a fixed version above
the installed source version, or leaves it open/undetermined with no fix; `fixed_version` "0"
means the release was never affected. A fix is available when a pending candidate of a binary
built from that source carries a source version at or above the fix. A candidate's source version
is known only for binaries whose version follows their source (`bash 5.2.15-2+b13` from
`bash 5.2.15-2`); binaries versioned on their own (`dmsetup 2:1.02.185-2` from `lvm2 2.03.16-2`)
cannot prove a fix, so their source's other binaries must. Hand-written advisories
(`patches:` entries) join the same picture through `advisories_fixed` and `open_advisories`.
Imports only the package's model and `patching`'s `tracker` and `versions`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from orchestrator.model.patching import (
    Advisory,
    AdvisoryExposure,
    CveExposure,
    FixingPackage,
    HostAssessment,
    HostExposure,
    InstalledPackage,
    PendingUpdate,
)
from orchestrator.patching.tracker import ReleaseStatus, SecurityTracker
from orchestrator.patching.versions import compare_versions, sort_versions, strip_binnmu


def installed_sources(installed: Iterable[InstalledPackage]) -> dict[str, str]:
    """source package -> its lowest installed source version (a binary left behind by a partial
    upgrade keeps the host exposed)."""
    versions: dict[str, list[str]] = {}
    for package in installed:
        versions.setdefault(package.source, []).append(package.source_version)
    return {source: sort_versions(found)[0] for source, found in versions.items()}


def _installed_binary(
    update: PendingUpdate, by_name: Mapping[str, list[InstalledPackage]]
) -> InstalledPackage | None:
    same_name = by_name.get(update.package, [])
    for package in same_name:
        if package.architecture == update.architecture:
            return package
    return same_name[0] if same_name else None


def candidate_sources(assessment: HostAssessment) -> dict[str, list[tuple[PendingUpdate, str]]]:
    """source package -> (pending update, the candidate's source version), for the updates
    whose binary version follows its source version (see the module docstring)."""
    by_name: dict[str, list[InstalledPackage]] = {}
    for package in assessment.installed:
        by_name.setdefault(package.name, []).append(package)
    found: dict[str, list[tuple[PendingUpdate, str]]] = {}
    for update in assessment.pending:
        binary = _installed_binary(update, by_name)
        if binary is None or strip_binnmu(binary.version) != binary.source_version:
            continue
        source_version = strip_binnmu(update.candidate_version)
        found.setdefault(binary.source, []).append((update, source_version))
    return found


def _open_cve(
    cve: str,
    source: str,
    installed: str,
    entry: ReleaseStatus,
    candidates: Sequence[tuple[PendingUpdate, str]],
) -> CveExposure | None:
    fixed = entry.fixed_version
    if entry.status == "resolved":
        if fixed is None or entry.not_affected or compare_versions(installed, fixed) >= 0:
            return None
        fixed_by = sorted(
            {
                (update.package, update.candidate_version)
                for update, candidate in candidates
                if compare_versions(candidate, fixed) >= 0
            }
        )
    else:
        fixed_by = []
    return CveExposure(
        cve=cve,
        source=source,
        installed_source_version=installed,
        urgency=entry.urgency,
        nvd_derived=entry.nvd_derived,
        status=entry.status,
        fixed_version=fixed if entry.status == "resolved" else None,
        fixed_by=tuple(FixingPackage(package=p, version=v) for p, v in fixed_by),
        nodsa=entry.nodsa,
    )


def host_exposure(
    assessment: HostAssessment,
    tracker: SecurityTracker,
    release: str | None = None,
    accepted: frozenset[str] = frozenset(),
) -> HostExposure:
    """The CVEs open on one host, most urgent first; `release` defaults to the host's codename.
    CVEs in `accepted` (an exception accepts them as a risk) are listed apart, never as open."""
    release = release or assessment.codename
    candidates = candidate_sources(assessment)
    found: list[CveExposure] = []
    for source, installed in installed_sources(assessment.installed).items():
        for cve, entry in tracker.entries(source, release):
            exposure = _open_cve(cve, source, installed, entry, candidates.get(source, []))
            if exposure is not None:
                found.append(exposure)
    found.sort(key=lambda e: (-e.urgency.rank, e.cve, e.source))
    return HostExposure(
        host=assessment.host,
        codename=release,
        release_tracked=release in tracker.releases,
        open=tuple(e for e in found if e.cve not in accepted),
        accepted=tuple(e for e in found if e.cve in accepted),
    )


def cves_fixed_by_package(exposure: HostExposure) -> dict[str, tuple[CveExposure, ...]]:
    """binary package -> the open CVEs its pending candidate fixes on this host."""
    found: dict[str, list[CveExposure]] = {}
    for cve in exposure.open:
        for fix in cve.fixed_by:
            found.setdefault(fix.package, []).append(cve)
    return {package: tuple(cves) for package, cves in found.items()}


def advisories_fixed(
    assessment: HostAssessment, advisories: Sequence[Advisory]
) -> dict[str, tuple[Advisory, ...]]:
    """binary package -> the advisories its pending candidate fixes: the advisory names the
    binary or its source, the installed version is below `fixed` and the candidate reaches it."""
    # dpkg names Multi-Arch: same binaries `libacme1:amd64`; apt's updates say `libacme1`
    sources = {_bare(package.name): package.source for package in assessment.installed}
    found: dict[str, list[Advisory]] = {}
    for update in assessment.pending:
        names = {update.package, sources.get(update.package, update.package)}
        for advisory in advisories:
            below = update.installed_version is None or (
                compare_versions(update.installed_version, advisory.fixed) < 0
            )
            reaches = compare_versions(update.candidate_version, advisory.fixed) >= 0
            if advisory.package in names and below and reaches:
                found.setdefault(update.package, []).append(advisory)
    return {package: tuple(found_) for package, found_ in found.items()}


def _bare(name: str) -> str:
    return name.partition(":")[0]


def open_advisories(
    assessment: HostAssessment, advisories: Sequence[Advisory]
) -> tuple[AdvisoryExposure, ...]:
    """The advisories still open on the host, in the order given: a binary it names is
    installed below `fixed` (binary version), or a binary built from the source it names is
    (source version). Not installed is not exposed. `fixed_by`: pending candidates reaching it."""
    fixes = advisories_fixed(assessment, advisories)
    candidates = {update.package: update.candidate_version for update in assessment.pending}
    found = []
    for advisory in advisories:
        below = sorted_below(assessment.installed, advisory)
        if not below:
            continue
        fixed_by = sorted(
            (package, candidates[package])
            for package, found_ in fixes.items()
            if advisory in found_
        )
        found.append(
            AdvisoryExposure(
                advisory=advisory.id,
                cves=advisory.cves,
                package=advisory.package,
                installed_version=below[0],
                fixed=advisory.fixed,
                fixed_by=tuple(FixingPackage(package=p, version=v) for p, v in fixed_by),
            )
        )
    return tuple(found)


def sorted_below(installed: Iterable[InstalledPackage], advisory: Advisory) -> list[str]:
    """The installed versions (binary or source, whichever the advisory names) below its fix,
    lowest first."""
    versions = []
    for package in installed:
        if _bare(package.name) == advisory.package:
            versions.append(package.version)
        elif package.source == advisory.package:
            versions.append(package.source_version)
    return sort_versions([v for v in versions if compare_versions(v, advisory.fixed) < 0])
