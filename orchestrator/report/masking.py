"""Keeping secrets out of reports: `mask_record` applies a mask to every free text of a run record.

The rules of what is secret and how it is masked live in `orchestrator.secrets` (re-exported
here); this module applies a `Masker` (or any text function, such as `record.visible`) to a
record before it is rendered or written. Imports only the standard library, `secrets` and
`model`; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.model.record import RunRecord
from orchestrator.model.results import HostResult, ResourceOutcome
from orchestrator.model.verification import CheckResult, Evidence, HostVerification
from orchestrator.secrets import MASK, MIN_SECRET_LENGTH, Masker, looks_secret

__all__ = ["MASK", "MIN_SECRET_LENGTH", "Mask", "Masker", "looks_secret", "mask_record", "no_mask"]

Mask = Callable[[str], str]


def no_mask(text: str) -> str:
    return text


def mask_record(record: RunRecord, mask: Mask) -> RunRecord:
    """A copy of `record` with `mask` applied to every text that came from a host or an error:
    outcome summaries, diffs and errors, check values, messages and evidence, ring reasons, and
    an assessment's host errors (a `Masker` masks every string of the record)."""
    if mask is no_mask:
        return record
    if isinstance(mask, Masker):
        return mask.value(record)  # every text, and diffs that show a secret hidden whole
    emergency = record.emergency_reason
    patching = record.patching
    if patching is not None:
        patching = patching.model_copy(
            update={
                "hosts": tuple(
                    h.model_copy(update={"error": mask(h.error)}) if h.error else h
                    for h in patching.hosts
                )
            }
        )
    return record.model_copy(
        update={
            "patching": patching,
            "apply": tuple(_mask_result(result, mask) for result in record.apply),
            "verify": tuple(_mask_verification(v, mask) for v in record.verify),
            "rings": tuple(r.model_copy(update={"reason": mask(r.reason)}) for r in record.rings),
            "emergency_reason": mask(emergency) if emergency is not None else None,
        }
    )


def _mask_result(result: HostResult, mask: Mask) -> HostResult:
    return result.model_copy(
        update={
            "error": mask(result.error) if result.error is not None else None,
            "outcomes": tuple(_mask_outcome(o, mask) for o in result.outcomes),
        }
    )


def _mask_outcome(outcome: ResourceOutcome, mask: Mask) -> ResourceOutcome:
    return outcome.model_copy(
        update={
            "summary": mask(outcome.summary),
            "diff": mask(outcome.diff),
            "error": mask(outcome.error),
        }
    )


def _mask_verification(verification: HostVerification, mask: Mask) -> HostVerification:
    return verification.model_copy(
        update={
            "error": mask(verification.error) if verification.error is not None else None,
            "results": tuple(_mask_check(c, mask) for c in verification.results),
        }
    )


def _mask_check(check: CheckResult, mask: Mask) -> CheckResult:
    return check.model_copy(
        update={
            "expected": mask(check.expected),
            "actual": mask(check.actual),
            "message": mask(check.message),
            "evidence": tuple(_mask_evidence(e, mask) for e in check.evidence),
        }
    )


def _mask_evidence(evidence: Evidence, mask: Mask) -> Evidence:
    return evidence.model_copy(
        update={
            "command": mask(evidence.command),
            "stdout": mask(evidence.stdout),
            "stderr": mask(evidence.stderr),
        }
    )


def mask_result(result: HostResult, mask: Mask) -> HostResult:
    """`result` with `mask` applied to its errors, summaries and diffs (before it is stored)."""
    return _mask_result(result, mask)
