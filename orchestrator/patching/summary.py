"""One host's patch state as `assess` reports it: its probe parsed, updates classified, CVEs found.

`summarize_host` joins the framed probe output (`probescript`), the parsers (`probeparse`), the
inventory's security origins (`origins`), the tracker data and the policies' hand-written
advisories (`exposure`) into one frozen `HostPatchState`; a host that gave no output keeps its
status and reason. Pure: imports only the package's model and `patching` modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import Field

from orchestrator.model.base import Frozen
from orchestrator.model.desired import DesiredState
from orchestrator.model.patching import (
    Advisory,
    AdvisoryExposure,
    AptOrigin,
    Classification,
    HostAssessment,
    HostExposure,
    PatchingSettings,
    RebootStatus,
    StaleProcess,
)
from orchestrator.model.policy import Patch
from orchestrator.patching.exposure import host_exposure, open_advisories
from orchestrator.patching.origins import classify_update, security_patterns
from orchestrator.patching.probeparse import build_assessment
from orchestrator.patching.probescript import REFRESH_SECTION, probe_output, split_sections
from orchestrator.patching.tracker import SecurityTracker

HostStatus = Literal["assessed", "unreachable", "failed"]


class ClassifiedUpdate(Frozen):
    """A pending update and whether it comes from a security origin."""

    package: str
    installed_version: str | None
    candidate_version: str
    architecture: str
    classification: Classification
    origins: tuple[AptOrigin, ...]


class HostPatchState(Frozen):
    """What `assess` knows about one host."""

    host: str
    ring: str | None
    status: HostStatus
    error: str | None = None
    remote_commands: int = 0
    seconds: float = 0.0
    codename: str = ""
    assessed_at: datetime | None = None
    installed_packages: int = 0
    pending: tuple[ClassifiedUpdate, ...] = ()
    reboot: RebootStatus = RebootStatus()
    stale_processes: tuple[StaleProcess, ...] = ()
    lists_updated_at: datetime | None = None
    lists_age_seconds: float | None = None
    exposure: HostExposure | None = Field(None, description="None without security data.")
    advisories: tuple[AdvisoryExposure, ...] = Field(
        (), description="The host's hand-written `patches:` advisories still open on it."
    )
    problems: tuple[str, ...] = Field((), description="Probe parts that failed or timed out.")
    skipped_lines: int = 0

    @property
    def security(self) -> tuple[ClassifiedUpdate, ...]:
        return tuple(u for u in self.pending if u.classification == "security")

    @property
    def other(self) -> tuple[ClassifiedUpdate, ...]:
        return tuple(u for u in self.pending if u.classification == "other")


def unassessed_host(
    host: str, ring: str | None, status: HostStatus, error: str, remote_commands: int = 0
) -> HostPatchState:
    """A host whose probe gave nothing to read, with the reason."""
    return HostPatchState(
        host=host, ring=ring, status=status, error=error, remote_commands=remote_commands
    )


@dataclass(frozen=True)
class ReadProbe:
    """A probe's output read: the assessment (None when it cannot be trusted, with `error`),
    and the parts that went wrong without spoiling it."""

    assessment: HostAssessment | None
    problems: tuple[str, ...] = ()
    error: str | None = None


ESSENTIAL_PARTS = ("os_release", "installed", "simulated_upgrade", "policy")


def read_probe(host: str, output: str, nonce: str, assessed_at: datetime) -> ReadProbe:
    """Parse one host's framed probe output. A probe that never finished, or whose package
    parts failed, gives no assessment: a partial list of pending updates must not read as
    "nothing pending". A failed `--refresh` is only a problem noted: the assessment then uses
    the lists the host had (and says how old they are)."""
    framed = split_sections(output, nonce)
    problems = framed.problems()
    broken = [p for p in problems if p.split(":", 1)[0] in ESSENTIAL_PARTS]
    if not framed.finished or broken:
        reason = "; ".join(broken or problems or ["the output was cut short"])
        return ReadProbe(None, tuple(problems), f"probe incomplete: {reason}")
    refresh = framed.sections.get(REFRESH_SECTION)
    if refresh is not None and refresh.exit_status != 0:
        tail = [line.strip() for line in refresh.text.splitlines() if line.strip()][-2:]
        problems = [p for p in problems if not p.startswith(REFRESH_SECTION)]
        problems.insert(0, f"apt-get update failed (exit {refresh.exit_status}): {' '.join(tail)}")
    return ReadProbe(build_assessment(host, probe_output(framed), assessed_at), tuple(problems))


def summarize_host(
    assessment: HostAssessment,
    ring: str | None,
    settings: PatchingSettings,
    tracker: SecurityTracker | None = None,
    problems: tuple[str, ...] = (),
    remote_commands: int = 0,
    seconds: float = 0.0,
    advisories: tuple[Advisory, ...] = (),
    accepted: frozenset[str] = frozenset(),
) -> HostPatchState:
    """The host's state: updates classified by the inventory's security origins (filled in
    for the host's codename), its open CVEs when there is tracker data, and which of the
    policies' advisories (`host_advisories`) are still open."""
    patterns = security_patterns(settings, assessment.codename)
    pending = tuple(
        ClassifiedUpdate(
            package=u.package,
            installed_version=u.installed_version,
            candidate_version=u.candidate_version,
            architecture=u.architecture,
            classification=classify_update(u, patterns),
            origins=u.origins,
        )
        for u in assessment.pending
    )
    return HostPatchState(
        host=assessment.host,
        ring=ring,
        status="assessed",
        remote_commands=remote_commands,
        seconds=seconds,
        codename=assessment.codename,
        assessed_at=assessment.assessed_at,
        installed_packages=len(assessment.installed),
        pending=pending,
        reboot=assessment.reboot,
        stale_processes=assessment.stale_processes,
        lists_updated_at=assessment.lists_updated_at,
        lists_age_seconds=assessment.lists_age_seconds,
        exposure=host_exposure(assessment, tracker, accepted=accepted) if tracker else None,
        advisories=open_advisories(assessment, advisories),
        problems=problems,
        skipped_lines=assessment.skipped_lines,
    )


def accepted_risks(desired: DesiredState) -> frozenset[str]:
    """The CVE and advisory ids the exceptions in force on a host accept as a risk."""
    return frozenset(risk for exception in desired.exceptions for risk in exception.accept)


def host_advisories(desired: DesiredState) -> tuple[Advisory, ...]:
    """The hand-written advisories (`patches:` entries) of the policies selecting a host; an
    advisory an exception accepts is not open."""
    accepted = accepted_risks(desired)
    return tuple(
        Advisory(
            id=str(r.spec.advisory),
            cves=tuple(str(cve) for cve in r.spec.cves),
            package=r.spec.package,
            fixed=r.spec.fixed,
        )
        for r in (*desired.resources, *desired.held)
        if isinstance(r.spec, Patch) and str(r.spec.advisory) not in accepted
    )
