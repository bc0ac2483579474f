"""The exposure summary every assess report shows: per ring, hosts exposed per urgency; per CVE,
the hosts still open.

A host is exposed at an urgency when it has at least one open CVE of that urgency; the summary
also says how many of those hosts have a fix for one of them available from their repositories.
Urgencies fold into four buckets by their rank (`not yet assigned` counts as high, `end-of-life`
as unimportant, as thresholds do). CVEs sort by urgency, then by how many hosts are open, then by
id. Pure: a record's `patching` section in, frozen values out; imports only `model`.
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.model.base import Frozen
from orchestrator.model.patching import Urgency
from orchestrator.model.record import HostPatching, OpenCve, PatchingSection
from orchestrator.words import counted

NO_RING = "(no ring)"
BUCKETS = ("high", "medium", "low", "unimportant")  # most urgent first
_BUCKET_OF_RANK = {3: "high", 2: "medium", 1: "low", 0: "unimportant"}


def urgency_bucket(urgency: Urgency) -> str:
    return _BUCKET_OF_RANK[urgency.rank]


class UrgencyCount(Frozen):
    """Hosts with an open CVE of this urgency, and how many of them can fix one now."""

    urgency: str
    exposed: int = 0
    fix_available: int = 0


class RingExposure(Frozen):
    ring: str
    hosts: int
    assessed: int
    security_updates: int  # hosts with security updates pending
    reboot_required: int
    exposed: int  # hosts with any open CVE (the buckets overlap: not their sum)
    by_urgency: tuple[UrgencyCount, ...]  # in `BUCKETS` order


class OpenHost(Frozen):
    host: str
    ring: str
    fix_available: bool
    fixed_by: tuple[str, ...] = ()


class CveRow(Frozen):
    cve: str
    source: str
    urgency: Urgency  # the highest any host's release gives it
    fixed_versions: tuple[str, ...]  # per release they may differ; empty when unfixed
    hosts: tuple[OpenHost, ...]

    @property
    def fix_available(self) -> int:
        return sum(host.fix_available for host in self.hosts)


class HostLine(Frozen):
    """One host in the report's host table."""

    host: str
    ring: str
    status: str
    error: str | None
    codename: str
    security_updates: int
    other_updates: int
    reboot_required: bool
    open_cves: int | None  # None without security data
    by_urgency: tuple[int, ...]  # open CVEs per bucket, in `BUCKETS` order
    fixable: int  # open CVEs with a fix available


class ExposureView(Frozen):
    tracked: bool  # the run had security data; without it nothing below is known
    security_data: str | None
    rings: tuple[RingExposure, ...]
    cves: tuple[CveRow, ...]
    hosts: tuple[HostLine, ...]
    hosts_total: int
    hosts_assessed: int
    hosts_exposed: int
    hosts_high_fixable: int  # hosts with a high (or unassigned) CVE they can fix now
    hosts_security_updates: int
    hosts_reboot_required: int

    @property
    def not_assessed(self) -> tuple[HostLine, ...]:
        return tuple(h for h in self.hosts if h.status != "assessed")


def _ring(host: HostPatching) -> str:
    return host.ring or NO_RING


def _ring_order(section: PatchingSection) -> list[str]:
    named = {_ring(h) for h in section.hosts}
    return [r for r in section.rings if r in named] + sorted(named - set(section.rings))


def _open(host: HostPatching) -> tuple[OpenCve, ...]:
    return host.open_cves or () if host.status == "assessed" else ()


def _ring_exposure(ring: str, hosts: list[HostPatching]) -> RingExposure:
    counts = []
    for bucket in BUCKETS:
        found = [[c for c in _open(h) if urgency_bucket(c.urgency) == bucket] for h in hosts]
        counts.append(
            UrgencyCount(
                urgency=bucket,
                exposed=sum(bool(cves) for cves in found),
                fix_available=sum(any(c.fix_available for c in cves) for cves in found),
            )
        )
    assessed = [h for h in hosts if h.status == "assessed"]
    return RingExposure(
        ring=ring,
        hosts=len(hosts),
        assessed=len(assessed),
        security_updates=sum(h.security_updates > 0 for h in assessed),
        reboot_required=sum(h.reboot_required for h in assessed),
        by_urgency=tuple(counts),
        exposed=sum(bool(_open(h)) for h in hosts),
    )


def _cve_rows(hosts: Iterable[HostPatching]) -> tuple[CveRow, ...]:
    found: dict[tuple[str, str], list[tuple[HostPatching, OpenCve]]] = {}
    for host in hosts:
        for cve in _open(host):
            found.setdefault((cve.cve, cve.source), []).append((host, cve))
    rows = [
        CveRow(
            cve=cve_id,
            source=source,
            urgency=max((c.urgency for _, c in entries), key=lambda u: u.rank),
            fixed_versions=tuple(sorted({c.fixed_version for _, c in entries if c.fixed_version})),
            hosts=tuple(
                OpenHost(
                    host=h.host, ring=_ring(h), fix_available=c.fix_available, fixed_by=c.fixed_by
                )
                for h, c in entries
            ),
        )
        for (cve_id, source), entries in found.items()
    ]
    rows.sort(key=lambda row: (-row.urgency.rank, -len(row.hosts), row.cve, row.source))
    return tuple(rows)


def _host_line(host: HostPatching) -> HostLine:
    cves = _open(host)
    return HostLine(
        host=host.host,
        ring=_ring(host),
        status=host.status,
        error=host.error,
        codename=host.codename,
        security_updates=host.security_updates,
        other_updates=host.other_updates,
        reboot_required=host.reboot_required,
        open_cves=len(cves) if host.open_cves is not None else None,
        by_urgency=tuple(sum(urgency_bucket(c.urgency) == b for c in cves) for b in BUCKETS),
        fixable=sum(c.fix_available for c in cves),
    )


def _high_fixable(host: HostPatching) -> bool:
    return any(c.fix_available and urgency_bucket(c.urgency) == "high" for c in _open(host))


def build_exposure(section: PatchingSection) -> ExposureView:
    """The summary of one assess run; hosts keep the section's order within their ring."""
    order = _ring_order(section)
    by_ring = {ring: [h for h in section.hosts if _ring(h) == ring] for ring in order}
    hosts = [h for ring in order for h in by_ring[ring]]
    assessed = [h for h in hosts if h.status == "assessed"]
    return ExposureView(
        tracked=any(h.open_cves is not None for h in section.hosts),
        security_data=section.security_data,
        rings=tuple(_ring_exposure(ring, members) for ring, members in by_ring.items()),
        cves=_cve_rows(hosts),
        hosts=tuple(_host_line(h) for h in hosts),
        hosts_total=len(hosts),
        hosts_assessed=len(assessed),
        hosts_exposed=sum(bool(_open(h)) for h in assessed),
        hosts_high_fixable=sum(_high_fixable(h) for h in assessed),
        hosts_security_updates=sum(h.security_updates > 0 for h in assessed),
        hosts_reboot_required=sum(h.reboot_required for h in assessed),
    )


def exposure_headline(view: ExposureView) -> str:
    """One sentence for the top of an assess report."""
    if view.tracked:
        high = sum(c.exposed for r in view.rings for c in r.by_urgency if c.urgency == "high")
        text = (
            f"Assess: {view.hosts_exposed} of {counted(view.hosts_assessed, 'host')} exposed to "
            f"open CVEs, {high} at high urgency"
        )
    else:
        text = (
            f"Assess: {view.hosts_security_updates} of {counted(view.hosts_assessed, 'host')} "
            "with security updates pending"
        )
    missing = view.hosts_total - view.hosts_assessed
    return text + (f"; {missing} not assessed" if missing else "")
