"""The patch baseline's generated checks, evaluated on the controller from the host's answers.

Two checks per host a baseline governs: `no-approved-security-pending` (the simulated
dist-upgrade offers no security update the baseline approves) and, when the baseline sets
`max_open_urgency` and the inventory names `security_data:`, `no-open-cve-with-fix` (no CVE of
that urgency or higher is open on the host while its repositories offer the fixing version).
Unlike testinfra probes, these read the raw output of the assess probe's own commands
(`*_COMMAND`) and decide with the pure `patching` core: the runner runs `commands_for(...)`
through its batch and hands the answers to `evaluate_patch_check`. `PatchCheckData` holds what
the controller read once per run (baselines, the lock's first-seen dates, the parsed tracker).
Pure: imports the package's model and `patching`; never testinfra, subprocess or files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.model.baseline import PatchBaseline
from orchestrator.model.patching import HostAssessment, PatchingSettings, PendingUpdate, Urgency
from orchestrator.patching.approval import FixedCve, UpdateCandidate, evaluate_update
from orchestrator.patching.exposure import cves_fixed_by_package, host_exposure
from orchestrator.patching.origins import classify_update, security_patterns
from orchestrator.patching.probeparse import (
    INSTALLED_COMMAND,
    POLICY_COMMAND,
    SIMULATE_COMMAND,
    enrich_origins,
    parse_installed,
    parse_os_release,
    parse_policy_releases,
    parse_simulated_upgrade,
)
from orchestrator.patching.tracker import SecurityTracker
from orchestrator.source import SourceLocation

OS_RELEASE_COMMAND = "cat /etc/os-release"  # what testinfra reads too: one answer serves both
PENDING = "no-approved-security-pending"
OPEN_CVES = "no-open-cve-with-fix"
RESOURCE_ID = "patch-baseline"

Seen = Mapping[str, Mapping[str, Mapping[str, datetime]]]
"""codename -> package -> version -> first seen (the lock's `seen`)."""


@dataclass(frozen=True)
class CommandOutput:
    """One command's answer as the evaluation reads it."""

    exit_status: int
    stdout: str
    stderr: str = ""


@dataclass(frozen=True)
class BaselineSetting:
    """A policy's baseline and where it is written (the checks' locations)."""

    baseline: PatchBaseline
    location: SourceLocation
    urgency_location: SourceLocation | None = None


@dataclass(frozen=True)
class PatchCheckData:
    """What the controller knows for a whole verify run; built once at the CLI edge."""

    baselines: Mapping[str, BaselineSetting]
    settings: PatchingSettings
    now: datetime
    seen: Seen = field(default_factory=dict)
    tracker: SecurityTracker | None = None
    accepted: frozenset[str] = frozenset()
    """CVE ids an exception accepts as a risk on the host being checked (never open)."""


def commands_for(prop: str, baseline: PatchBaseline, data: PatchCheckData) -> tuple[str, ...]:
    """The host commands a check reads: the release, the simulated upgrade, the repositories'
    origins, and the installed packages when CVEs matter (their sources join the tracker)."""
    base = (OS_RELEASE_COMMAND, SIMULATE_COMMAND, POLICY_COMMAND)
    needs_cves = prop == OPEN_CVES or (baseline.min_urgency is not None and bool(data.tracker))
    return (*base, INSTALLED_COMMAND) if needs_cves else base


def evaluate_patch_check(
    prop: str, policy: str, outputs: Sequence[CommandOutput], data: PatchCheckData
) -> tuple[bool, str]:
    """(passed, actual) of a baseline check from its commands' outputs, in `commands_for`
    order. Raises ValueError when the host's answers cannot decide it (an error, not a fail)."""
    setting = data.baselines[policy]
    assessment = _assessment(outputs)
    if prop == PENDING:
        return _pending(setting.baseline, assessment, data)
    return _open_cves(setting.baseline, assessment, data)


def _assessment(outputs: Sequence[CommandOutput]) -> HostAssessment:
    os_release, simulated, policy = outputs[:3]
    for command, output in (("/etc/os-release", os_release), ("apt-get -s", simulated)):
        if output.exit_status != 0:
            detail = output.stderr.strip().splitlines()[-1:] or ["no message"]
            raise ValueError(f"{command} exited {output.exit_status}: {detail[0]}")
    installed = parse_installed(outputs[3].stdout).items if len(outputs) > 3 else ()
    pending = parse_simulated_upgrade(simulated.stdout).items
    releases = parse_policy_releases(policy.stdout).items
    codename = parse_os_release(os_release.stdout)
    if not codename:
        raise ValueError("/etc/os-release names no VERSION_CODENAME")
    return HostAssessment(
        host="",
        codename=codename,
        assessed_at=datetime.min,
        installed=installed,
        pending=enrich_origins(pending, releases),
    )


def _update_text(update: PendingUpdate) -> str:
    return f"{update.package} {update.installed_version or '(new)'} -> {update.candidate_version}"


def _pending(
    baseline: PatchBaseline, assessment: HostAssessment, data: PatchCheckData
) -> tuple[bool, str]:
    patterns = security_patterns(data.settings, assessment.codename)
    fixes: Mapping[str, Sequence[FixedCve]] = {}
    if data.tracker is not None and assessment.installed:
        exposure = host_exposure(assessment, data.tracker)
        fixes = {
            package: [FixedCve(id=cve.cve, urgency=cve.urgency) for cve in cves]
            for package, cves in cves_fixed_by_package(exposure).items()
        }
    seen = data.seen.get(assessment.codename, {})
    approved: list[str] = []
    unknown_age: list[str] = []
    for update in assessment.pending:
        if classify_update(update, patterns) != "security":
            continue
        first_seen = seen.get(update.package, {}).get(update.candidate_version)
        candidate = UpdateCandidate(
            package=update.package,
            version=update.candidate_version,
            classification="security",
            fixes=tuple(fixes.get(update.package, ())),
            first_seen=first_seen or data.now,  # unknown: as new as can be (min age not met)
        )
        decision = evaluate_update(baseline, candidate, data.now)
        if decision.approved:
            approved.append(_update_text(update))
        elif first_seen is None and decision.approvable_from is not None:
            unknown_age.append(_update_text(update))
    note = ""
    if unknown_age:
        note = (
            f"; not counted, first-seen date unknown (not in the lock's seen), so "
            f"min_age_days {baseline.min_age_days} is taken as not met: {', '.join(unknown_age)}"
        )
    if approved:
        count = len(approved)
        return False, f"{count} approved security update(s) pending: {', '.join(approved)}{note}"
    return True, f"no approved security update pending{note}"


def _open_cves(
    baseline: PatchBaseline, assessment: HostAssessment, data: PatchCheckData
) -> tuple[bool, str]:
    if data.tracker is None or baseline.max_open_urgency is None:
        raise ValueError("no security data to compare with")
    threshold = Urgency(baseline.max_open_urgency)
    exposure = host_exposure(assessment, data.tracker)
    if not exposure.release_tracked:
        raise ValueError(f"the security data has no release '{assessment.codename}'")
    above = [cve for cve in exposure.open if cve.urgency.rank >= threshold.rank and cve.fixed_by]
    found = [cve for cve in above if cve.cve not in data.accepted]
    accepted = sorted(cve.cve for cve in above if cve.cve in data.accepted)
    also = f" ({len(accepted)} accepted as a risk: {', '.join(accepted)})" if accepted else ""
    if not found:
        return True, (
            f"no CVE of urgency {threshold.value} or higher open with a fix available{also}"
        )
    listed = "; ".join(
        f"{cve.cve} in {cve.source} {cve.installed_source_version} ({cve.urgency.value}), "
        f"fixed in {cve.fixed_version}, by "
        + ", ".join(f"{fix.package} {fix.version}" for fix in cve.fixed_by)
        for cve in found
    )
    return False, f"{len(found)} open CVE(s) with a fix available: {listed}{also}"
