"""Waivers applied to check results: a check an exception waives on a host is reported
`waived`, never `passed`, with its real result kept (`real_status`) and the waiver named in its
message. A check that could not run (`error`) stays an error: a waiver accepts a known
deviation, not an unknown state. Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from orchestrator.model.exceptions import ActiveException
from orchestrator.model.verification import CHECK_OK, CheckResult


def waive(
    results: Sequence[CheckResult], exceptions: Sequence[ActiveException]
) -> tuple[CheckResult, ...]:
    """`results` with every check a waiver in `exceptions` covers marked `waived`."""
    waivers = [e for e in exceptions if e.kind == "waive"]
    if not waivers:
        return tuple(results)
    return tuple(_waived(result, waivers) for result in results)


def _waived(result: CheckResult, waivers: Sequence[ActiveException]) -> CheckResult:
    if result.status not in {"passed", "failed"}:
        return result
    waiver = next((w for w in waivers if w.waives(result.check_id)), None)
    if waiver is None:
        return result
    message = waiver.note + (f"; {result.message}" if result.message else "")
    return result.model_copy(
        update={
            "status": "waived",
            "real_status": result.status,
            "waived_by": waiver.id,
            "message": message,
        }
    )


def host_status(results: Sequence[CheckResult]) -> Literal["passed", "failed"]:
    """A reached host's verify status: `passed` when every check passed or is waived."""
    return "passed" if all(result.status in CHECK_OK for result in results) else "failed"
