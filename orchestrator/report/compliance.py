"""The compliance view for auditors: per CVE, per control and per host, built from recorded runs.

Everything comes from the run history (assess records for CVEs and patch levels; apply, verify
and rollout records for check results) and, for the SLA clocks, the lock's first-seen dates: no
host is contacted, so `as_of` answers "what was the state on that day" from records up to then.

SLA clock: a CVE open on a host is due `sla_days[bucket]` days after the day (UTC) its fixing
version was first seen: the lock's `seen` date, else the first recorded assess run that saw that
candidate pending. Without a fix available there is no clock (open, no deadline). It is overdue
from the day after it is due. A CVE open on a host in an earlier record and neither open nor
accepted in the host's latest assessment is fixed. Pure: records in, frozen values out; imports
only `model` and `report.exposure`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from orchestrator.model.base import Frozen
from orchestrator.model.patching import SlaDays, Urgency
from orchestrator.model.record import HostPatching, OpenCve, RunRecord
from orchestrator.model.verification import HostVerification
from orchestrator.report.exposure import NO_RING, urgency_bucket

COMPLIANCE_SCHEMA = "patchring.compliance/v1"
CveState = Literal["fixed", "open", "overdue", "excepted"]
SeenDates = Mapping[str, Mapping[str, Mapping[str, dt.datetime]]]
"""codename -> package -> version -> first seen (the lock's `seen`)."""


def parse_as_of(text: str) -> dt.datetime:
    """`2026-12-01` (the end of that day, UTC) or an ISO date and time with a zone offset.
    Raises ValueError saying what is expected."""
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day, dt.time.max, tzinfo=dt.UTC)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise ValueError(
            f"--as-of '{text}' is not a date (2026-12-01) nor a date and time with a time zone "
            "(2026-12-01T09:30:00Z)"
        )
    return moment


def sla_days_for(sla: SlaDays, urgency: Urgency) -> int | None:
    days: int | None = getattr(sla, urgency_bucket(urgency))
    return days


def due_date(first_seen: dt.datetime, days: int) -> dt.date:
    """The last day (UTC) a fix seen at `first_seen` may stay unapplied."""
    return first_seen.astimezone(dt.UTC).date() + dt.timedelta(days=days)


def is_overdue(due: dt.date, as_of: dt.datetime) -> bool:
    return as_of.astimezone(dt.UTC).date() > due


class CveHost(Frozen):
    host: str
    ring: str
    state: CveState
    since: dt.datetime | None = None  # when the fixing version was first seen (the clock start)
    due: dt.date | None = None
    fixed_by: tuple[str, ...] = ()


class CveStatus(Frozen):
    cve: str
    source: str = ""
    urgency: Urgency | None = None  # None: only known from an exception's accepted list
    sla_days: int | None = None
    hosts: tuple[CveHost, ...] = ()

    def count(self, state: CveState) -> int:
        return sum(h.state == state for h in self.hosts)


class ControlRing(Frozen):
    ring: str
    passed: int = 0
    failed: int = 0  # failed or error
    waived: int = 0


class ControlStatus(Frozen):
    check_id: str
    title: str
    source: Literal["generated", "user"] = "generated"
    rings: tuple[ControlRing, ...] = ()

    def total(self, field: Literal["passed", "failed", "waived"]) -> int:
        return sum(getattr(r, field) for r in self.rings)


class HostCompliance(Frozen):
    host: str
    ring: str
    assessed_at: dt.datetime | None = None
    security_updates: int = 0
    other_updates: int = 0
    reboot_required: bool = False
    open_cves: int = 0
    overdue: tuple[str, ...] = ()
    excepted: tuple[str, ...] = ()
    verified_at: dt.datetime | None = None
    checks_failed: int = 0


class ComplianceView(Frozen):
    as_of: dt.datetime
    ring: str | None = None
    sla: SlaDays
    runs: tuple[str, ...] = ()  # the record ids it was built from, oldest first
    rings: tuple[str, ...] = ()
    cves: tuple[CveStatus, ...] = ()
    controls: tuple[ControlStatus, ...] = ()
    hosts: tuple[HostCompliance, ...] = ()

    @property
    def overdue(self) -> int:
        return sum(c.count("overdue") for c in self.cves)


def build_compliance(
    records: Iterable[RunRecord],
    as_of: dt.datetime,
    sla: SlaDays,
    seen: SeenDates | None = None,
    ring: str | None = None,
) -> ComplianceView:
    """The state as of `as_of` from the records started up to then (of `ring` only, if given)."""
    used = sorted((r for r in records if r.started <= as_of), key=lambda r: r.started)
    assessed = _assessments(used, ring)
    candidates = _candidate_first_runs(used)
    cves = _cve_statuses(assessed, candidates, seen or {}, sla, as_of)
    verified = _latest_verifications(used, ring)
    hosts = _host_rows(assessed, verified, cves)
    return ComplianceView(
        as_of=as_of,
        ring=ring,
        sla=sla,
        runs=tuple(r.id for r in used),
        rings=_ring_order(used, [h.ring for h in hosts]),
        cves=cves,
        controls=_controls(verified),
        hosts=hosts,
    )


def _ring(ring: str | None) -> str:
    return ring or NO_RING


Assessed = Mapping[str, list[tuple[dt.datetime, HostPatching]]]
Verified = Mapping[str, tuple[dt.datetime, HostVerification]]


def _assessments(
    records: Sequence[RunRecord], ring: str | None
) -> dict[str, list[tuple[dt.datetime, HostPatching]]]:
    """Per host, its successful assessments (with their run's start) oldest first."""
    found: dict[str, list[tuple[dt.datetime, HostPatching]]] = {}
    for record in records:
        for host in record.patching.hosts if record.patching else ():
            if ring is not None and host.ring != ring:
                continue
            if host.status == "assessed" and host.open_cves is not None:
                found.setdefault(host.host, []).append((record.started, host))
    return found


def _candidate_first_runs(records: Sequence[RunRecord]) -> dict[tuple[str, str, str], dt.datetime]:
    """(codename, package, version) -> the start of the first assess run that saw it pending."""
    first: dict[tuple[str, str, str], dt.datetime] = {}
    for record in records:
        for host in record.patching.hosts if record.patching else ():
            for pending in host.pending:
                key = (host.codename, pending.package, pending.candidate_version)
                first.setdefault(key, record.started)
    return first


def _clock_start(
    host: HostPatching,
    cve: OpenCve,
    candidates: Mapping[tuple[str, str, str], dt.datetime],
    seen: SeenDates,
) -> dt.datetime | None:
    starts = []
    for fix in cve.fixed_by:
        package, _, version = fix.partition(" ")
        locked = seen.get(host.codename, {}).get(package, {}).get(version)
        start = locked or candidates.get((host.codename, package, version))
        if start is not None:
            starts.append(start)
    return min(starts, default=None)


def _cve_statuses(
    assessed: Assessed,
    candidates: Mapping[tuple[str, str, str], dt.datetime],
    seen: SeenDates,
    sla: SlaDays,
    as_of: dt.datetime,
) -> tuple[CveStatus, ...]:
    known: dict[str, OpenCve] = {}
    rows: dict[str, list[CveHost]] = {}
    for name, history in sorted(assessed.items()):
        latest = history[-1][1]
        ring = _ring(latest.ring)
        now_open = {c.cve: c for c in latest.open_cves or ()}
        for _, entry in history:
            known.update({c.cve: c for c in entry.open_cves or ()})
        for cve in now_open.values():
            days = sla_days_for(sla, cve.urgency)
            start = _clock_start(latest, cve, candidates, seen)
            due = due_date(start, days) if start is not None and days is not None else None
            state: CveState = "overdue" if due is not None and is_overdue(due, as_of) else "open"
            rows.setdefault(cve.cve, []).append(
                CveHost(
                    host=name, ring=ring, state=state, since=start, due=due, fixed_by=cve.fixed_by
                )
            )
        for cve_id in latest.accepted_cves:
            rows.setdefault(cve_id, []).append(CveHost(host=name, ring=ring, state="excepted"))
        gone = {c.cve for _, e in history[:-1] for c in e.open_cves or ()}
        for cve_id in sorted(gone - set(now_open) - set(latest.accepted_cves)):
            rows.setdefault(cve_id, []).append(CveHost(host=name, ring=ring, state="fixed"))
    statuses = []
    for cve_id, hosts in rows.items():
        info = known.get(cve_id)
        statuses.append(
            CveStatus(
                cve=cve_id,
                source=info.source if info else "",
                urgency=info.urgency if info else None,
                sla_days=sla_days_for(sla, info.urgency) if info else None,
                hosts=tuple(hosts),
            )
        )
    return tuple(sorted(statuses, key=_cve_order))


def _cve_order(status: CveStatus) -> tuple[int, int, int, str]:
    rank = status.urgency.rank if status.urgency else -1
    return (-status.count("overdue"), -rank, -status.count("open"), status.cve)


def _latest_verifications(
    records: Sequence[RunRecord], ring: str | None
) -> dict[str, tuple[dt.datetime, HostVerification]]:
    latest: dict[str, tuple[dt.datetime, HostVerification]] = {}
    for record in records:
        for verification in record.verify:
            if ring is None or verification.ring == ring:
                latest[verification.host] = (record.started, verification)
    return latest


def _controls(verified: Verified) -> tuple[ControlStatus, ...]:
    return controls_of(verification for _, verification in verified.values())


def controls_of(verifications: Iterable[HostVerification]) -> tuple[ControlStatus, ...]:
    """Per check id, its results per ring (errors count as failed); most failed first."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    about: dict[str, tuple[str, Literal["generated", "user"]]] = {}
    for verification in verifications:
        ring = _ring(verification.ring)
        for check in verification.results:
            about.setdefault(check.check_id, (check.title, check.source))
            tally = counts.setdefault(check.check_id, {}).setdefault(
                ring, {"passed": 0, "failed": 0, "waived": 0}
            )
            tally["failed" if check.status == "error" else check.status] += 1
    return tuple(
        ControlStatus(
            check_id=check_id,
            title=about[check_id][0],
            source=about[check_id][1],
            rings=tuple(ControlRing(ring=r, **t) for r, t in sorted(per_ring.items())),
        )
        for check_id, per_ring in sorted(
            counts.items(), key=lambda item: (-_failed(item[1]), item[0])
        )
    )


def _failed(per_ring: Mapping[str, Mapping[str, int]]) -> int:
    return sum(t["failed"] for t in per_ring.values())


def _host_rows(
    assessed: Assessed,
    verified: Verified,
    cves: Sequence[CveStatus],
) -> tuple[HostCompliance, ...]:
    by_state: dict[tuple[str, CveState], list[str]] = {}
    for status in cves:
        for host in status.hosts:
            by_state.setdefault((host.host, host.state), []).append(status.cve)
    rows = []
    for name in sorted(set(assessed) | set(verified)):
        assessed_at, patching = assessed[name][-1] if name in assessed else (None, None)
        verified_at, verification = verified.get(name, (None, None))
        ring = patching.ring if patching else verification.ring if verification else None
        rows.append(
            HostCompliance(
                host=name,
                ring=_ring(ring),
                assessed_at=assessed_at,
                security_updates=patching.security_updates if patching else 0,
                other_updates=patching.other_updates if patching else 0,
                reboot_required=patching.reboot_required if patching else False,
                open_cves=len(patching.open_cves or ()) if patching else 0,
                overdue=tuple(by_state.get((name, "overdue"), ())),
                excepted=tuple(by_state.get((name, "excepted"), ())),
                verified_at=verified_at,
                checks_failed=sum(c.status in {"failed", "error"} for c in verification.results)
                if verification
                else 0,
            )
        )
    return tuple(rows)


def _ring_order(records: Sequence[RunRecord], rings: Iterable[str]) -> tuple[str, ...]:
    declared: list[str] = []
    for record in reversed(records):
        if record.patching and record.patching.rings:
            declared = list(record.patching.rings)
            break
    present = set(rings)
    return tuple([r for r in declared if r in present] + sorted(present - set(declared)))
