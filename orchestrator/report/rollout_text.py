"""What a technician reads when a rollout command ends: the rollout, once, each ring with what
it changed, and for a halt the hosts that failed, the resource or check, and the error's end.

Pure; imports the package's model and `words` only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from orchestrator.model.record import RingOutcome
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
) -> list[str]:
    """The headline, one line per ring, and the failures of the rings that did not pass."""
    lines = [f"Rollout {rollout_id} {state}: {message}"]
    applied = {result.host: result for result in apply}
    verified = {result.host: result for result in verify}
    for ring in rings:
        lines.append(
            f"  ring {ring.ring:<10} {ring.status:<12} {counted(len(ring.hosts), 'host')}"
            + _ring_changes(ring, applied)
            + (f"  ({ring.reason})" if ring.reason and ring.reason not in message else "")
        )
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
