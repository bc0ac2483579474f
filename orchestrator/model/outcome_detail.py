"""What a ledger host outcome's `detail` holds: one codec for the conductor that writes it and
the report builders that read it back, so the two never disagree.

An apply outcome keeps the host's `HostResult` (per resource: status, summary, error, diff), a
verify outcome its `HostVerification` (every check with status, expected and actual; evidence
only for checks that did not pass), both as JSON without host and ring (the row has them) and
with long texts cut to `TEXT_LIMIT`, so a host's row stays a few kilobytes. Callers mask
secrets before encoding. Ledgers written before this format kept only an error text (apply)
or the ids of the failing checks (verify); both still read. Pure: pydantic models and `json`.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from orchestrator.model.results import HostApplyStatus, HostResult
from orchestrator.model.verification import CheckResult, HostVerification, HostVerifyStatus

TEXT_LIMIT = 4000  # characters kept of one diff, error or evidence stream
_CUT = "\n... (cut: {} more characters)"


def _cut(text: str) -> str:
    if len(text) <= TEXT_LIMIT:
        return text
    return text[:TEXT_LIMIT] + _CUT.format(len(text) - TEXT_LIMIT)


def apply_detail(result: HostResult) -> str:
    """The detail of an apply outcome (`result` already masked)."""
    outcomes = tuple(
        o.model_copy(update={"diff": _cut(o.diff), "error": _cut(o.error)}) for o in result.outcomes
    )
    error = _cut(result.error) if result.error is not None else None
    kept = result.model_copy(update={"outcomes": outcomes, "error": error})
    return kept.model_dump_json(exclude={"host", "ring", "status"})


def verify_detail(verification: HostVerification) -> str:
    """The detail of a verify outcome (`verification` already masked)."""
    results = tuple(
        check.model_copy(
            update={
                "evidence": ()
                if check.status == "passed"
                else tuple(
                    e.model_copy(update={"stdout": _cut(e.stdout), "stderr": _cut(e.stderr)})
                    for e in check.evidence
                ),
                "message": _cut(check.message),
            }
        )
        for check in verification.results
    )
    kept = verification.model_copy(update={"results": results})
    return kept.model_dump_json(exclude={"host", "ring", "status"})


def _document(detail: str) -> object:
    try:
        return json.loads(detail) if detail.strip() else None
    except ValueError:
        return None


def read_apply(host: str, ring: str, status: HostApplyStatus, detail: str) -> HostResult:
    """An apply outcome back as a `HostResult`; an older plain-text detail is its error."""
    document = _document(detail)
    if isinstance(document, dict):
        try:
            return HostResult.model_validate(
                {**document, "host": host, "ring": ring, "status": status}
            )
        except ValidationError:
            pass
    return HostResult(host=host, ring=ring, status=status, error=detail or None)


def read_verify(host: str, ring: str, status: HostVerifyStatus, detail: str) -> HostVerification:
    """A verify outcome back as a `HostVerification`; an older detail (the ids of the failing
    checks) gives those checks as failed, with their values unknown."""
    document = _document(detail)
    if isinstance(document, dict):
        try:
            return HostVerification.model_validate(
                {**document, "host": host, "ring": ring, "status": status}
            )
        except ValidationError:
            pass
    ids = [i for i in document if isinstance(i, str)] if isinstance(document, list) else []
    results = tuple(
        CheckResult(
            check_id=i, title=i, status="failed", expected="", actual="(not kept by this ledger)"
        )
        for i in ids
    )
    return HostVerification(host=host, ring=ring, status=status, results=results)
