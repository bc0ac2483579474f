"""Checks generated from the desired state (and users' own testinfra tests) and their results."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from orchestrator.model.base import Frozen
from orchestrator.source import SourceLocation

CheckStatus = Literal["passed", "failed", "error", "waived"]
CHECK_OK: frozenset[str] = frozenset({"passed", "waived"})
"""Check statuses that do not fail a host: `waived` (an exception covers it) is never `passed`."""
HostVerifyStatus = Literal["passed", "failed", "unreachable"]


class CheckSpec(Frozen):
    """One property of one resource, checked on a host. `id` is stable across runs:
    `<policy>/<resource id>/<property>`, e.g. `acme-agent/package:acme-agent/version`."""

    id: str
    policy: str
    resource_id: str
    property: str
    title: str
    expected: str
    location: SourceLocation | None = None
    source: Literal["generated", "user"] = "generated"


class Evidence(Frozen):
    """One remote command a check ran, as the host answered it (secrets masked)."""

    command: str
    exit_status: int
    stdout: str = ""
    stderr: str = ""


class CheckResult(Frozen):
    check_id: str
    title: str
    status: CheckStatus
    expected: str
    actual: str
    message: str = ""
    evidence: tuple[Evidence, ...] = ()
    source: Literal["generated", "user"] = "generated"
    policy: str = ""
    resource_id: str = ""
    real_status: Literal["passed", "failed"] | None = Field(
        None, description="For a waived check: what it found (passed or failed)."
    )
    waived_by: str | None = Field(None, description="For a waived check: the exception's id.")


class HostVerification(Frozen):
    host: str
    ring: str | None = None
    status: HostVerifyStatus
    results: tuple[CheckResult, ...] = ()
    error: str | None = None
    remote_commands: int = 0
    seconds: float = 0.0
