"""What a technician reads when a rollout command ends: the rollout, once, each ring with what
it changed, and for a halt the hosts that failed, the resource or check, and the error's end.

Pure; imports the package's model and `words` only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from orchestrator.model.record import RestartEvent, RingOutcome
from orchestrator.model.results import HostResult
from orchestrator.model.verification import CHECK_OK, HostVerification
from orchestrator.words import counted

# The end of an error is where apt, dpkg and pytest say what went wrong.
ERROR_TAIL_LINES = 6


def rollout_summary(
    rollout_id: str,
    state: str,
    message: str,
    rings: Sequence[RingOutcome],
    apply: Sequence[HostResult],
    verify: Sequence[HostVerification],
    restarts: Sequence[RestartEvent] = (),
) -> list[str]:
    """The headline, one line per ring, reboots and restarts, and the failures of the rings
    that did not pass."""
    lines = [f"Rollout {rollout_id} {state}: {message}"]
    applied = {result.host: result for result in apply}
    verified = {result.host: result for result in verify}
    for ring in rings:
        lines.append(
            f"  ring {ring.ring:<10} {ring.status:<12} {counted(len(ring.hosts), 'host')}"
            + _ring_changes(ring, applied)
            + (f"  ({ring.reason})" if ring.reason and ring.reason not in message else "")
        )
    shown = restart_lines(restarts)
    if shown:
        lines += ["", "Reboots and restarts:", *shown]
    failed = [(ring, host) for ring in rings for host in ring.failed_hosts]
    if failed:
        lines += ["", "Failed hosts:"]
    for ring, host in failed:
        lines += _host_failure(ring.ring, host, applied.get(host), verified.get(host))
    return lines


def _ring_changes(ring: RingOutcome, applied: Mapping[str, HostResult]) -> str:
    results = [applied[host] for host in ring.hosts if host in applied]
    if not results:
        return ""
    statuses = Counter(result.status for result in results)
    restarts = Counter(
        outcome.resource_id.removeprefix("restart:")
        for result in results
        for outcome in result.outcomes
        if outcome.resource_id.startswith("restart:") and outcome.status == "changed"
    )
    text = ": " + ", ".join(
        f"{statuses[status]} {status}"
        for status in ("changed", "unchanged", "failed", "unreachable")
        if statuses[status] or status in {"changed", "unchanged"}
    )
    if restarts:
        text += "; restarted " + ", ".join(
            f"{unit} on {counted(count, 'host')}" for unit, count in restarts.items()
        )
    return text


def restart_why(event: RestartEvent) -> str:
    """Services, how long, why and what went wrong, in one phrase."""
    parts = [", ".join(event.services)] if event.services else []
    if event.seconds is not None:
        parts.append(f"after {event.seconds:.0f} s")
    parts += [p for p in (event.reason, event.error) if p]
    return "; ".join(parts)


def restart_lines(events: Sequence[RestartEvent]) -> list[str]:
    """One line per reboot or restart outcome (a `started` step is shown only while nothing
    followed it): what, where, when, how long, and why."""
    finished = {(e.host, e.kind) for e in events if e.status != "started"}
    lines = []
    for event in events:
        if event.status == "started" and (event.host, event.kind) in finished:
            continue
        when = f" at {event.at:%Y-%m-%d %H:%M:%S} UTC" if event.at else ""
        took = f" after {event.seconds:.0f} s" if event.seconds is not None else ""
        what = f" {', '.join(event.services)}" if event.services else ""
        why = f": {event.reason}" if event.reason else ""
        error = f" ({event.error})" if event.error else ""
        lines.append(
            f"  {event.kind} {event.host} (ring {event.ring}){what} {event.status}"
            f"{when}{took}{why}{error}"
        )
    return lines


def _host_failure(
    ring: str, host: str, applied: HostResult | None, verified: HostVerification | None
) -> list[str]:
    lines: list[str] = []
    if applied is not None and applied.status in {"failed", "unreachable"}:
        bad = [o for o in applied.outcomes if o.status in {"failed", "still-differs"}]
        for outcome in bad:
            lines.append(f"  ! {host} (ring {ring}): {outcome.resource_id} {outcome.status}")
            lines += _tail(outcome.error or outcome.summary)
        if not bad:
            lines.append(f"  ! {host} (ring {ring}): apply {applied.status}")
            lines += _tail(applied.error or "")
    if verified is not None and verified.status != "passed":
        failing = [c for c in verified.results if c.status not in CHECK_OK]
        for check in failing:
            lines.append(f"  ! {host} (ring {ring}): check {check.check_id} {check.status}")
            lines += _tail(f"expected {check.expected}, found {check.actual}")
            lines += _tail(check.message) if check.message else []
        if not failing and verified.error:
            lines.append(f"  ! {host} (ring {ring}): verify {verified.status}")
            lines += _tail(verified.error)
    return lines or [f"  ! {host} (ring {ring}): failed"]


def _tail(text: str) -> list[str]:
    """The last lines of an error, indented; an earlier part cut is said, not hidden."""
    rows = [row for row in text.strip("\n").splitlines() if row.strip()]
    cut = len(rows) - ERROR_TAIL_LINES
    shown = rows[-ERROR_TAIL_LINES:]
    head = [f"      ... ({counted(cut, 'line')} before; the run record has them all)"]
    return (head if cut > 0 else []) + [f"      {row}" for row in shown]
