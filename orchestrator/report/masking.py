"""Keeping secrets out of reports: values of secret-looking variables replaced by `********`.

Pure: a `Masker` is built from variables (names and values), then applied to any text; and
`mask_record` applies one to every free text of a run record (errors, diffs, evidence) before
it is rendered or written. Imports only the standard library and `model`; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.model.record import RunRecord
from orchestrator.model.results import HostResult, ResourceOutcome
from orchestrator.model.verification import CheckResult, Evidence, HostVerification

MASK = "********"
MIN_SECRET_LENGTH = 4  # shorter values ("1", "yes") would mask half of every report
SECRET_WORDS = ("password", "passwd", "secret", "token", "apikey", "privatekey", "credential")

Mask = Callable[[str], str]


def no_mask(text: str) -> str:
    return text


def looks_secret(name: str) -> bool:
    """Whether a variable name suggests a secret: `db_password`, `API-Key`, `vault.token`...

    A `host:name` form is judged by the part after the last colon, so a host called
    `tokenizer-01` does not make all of its variables secret."""
    squashed = re.sub(r"[^a-z0-9]", "", name.rsplit(":", 1)[-1].lower())
    return any(word in squashed for word in SECRET_WORDS)


@dataclass(frozen=True)
class Masker:
    """Replaces every known secret (at least 4 characters long) in a text with `********`."""

    secrets: tuple[str, ...] = ()
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        kept = sorted({s for s in self.secrets if len(s) >= MIN_SECRET_LENGTH}, key=len)
        kept.reverse()  # longest first, so a secret containing another is masked whole
        object.__setattr__(self, "secrets", tuple(kept))
        pattern = re.compile("|".join(re.escape(s) for s in kept)) if kept else None
        object.__setattr__(self, "_pattern", pattern)

    @classmethod
    def from_vars(cls, variables: Mapping[str, Any]) -> Masker:
        """Secrets are the values of secret-looking names, at any depth of nested mappings and
        lists; a multi-line value (a private key) is also masked line by line, as diffs show it."""
        return cls(tuple(_secret_values(variables, secret=False)))

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)


def _secret_values(value: Any, secret: bool) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _secret_values(item, secret or looks_secret(str(key)))
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _secret_values(item, secret)
    elif secret and value is not None and not isinstance(value, bool):
        text = str(value)
        yield text
        if "\n" in text:
            yield from (line.strip() for line in text.splitlines())


def mask_record(record: RunRecord, mask: Mask) -> RunRecord:
    """A copy of `record` with `mask` applied to every text that came from a host or an error:
    outcome summaries, diffs and errors, check values, messages and evidence, ring reasons."""
    if mask is no_mask:
        return record
    emergency = record.emergency_reason
    return record.model_copy(
        update={
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
