"""Checks generated from the desired state (and users' own testinfra tests) and their results."""

from __future__ import annotations

from typing import Literal

from orchestrator.model.base import Frozen
from orchestrator.source import SourceLocation

CheckStatus = Literal["passed", "failed", "error"]
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


class HostVerification(Frozen):
    host: str
    ring: str | None = None
    status: HostVerifyStatus
    results: tuple[CheckResult, ...] = ()
    error: str | None = None
    remote_commands: int = 0
    seconds: float = 0.0
