"""Pure builders around run records: run ids, who ran it (CI aware), and the view every renderer
draws from (compliance counts, ring rows, the hosts x checks matrix, failures).

Pure: values in, values out; no clock, no environment, no files (callers pass `now`, `env`).
Imports only the standard library, pydantic models and `report.masking`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Literal

from orchestrator.model.base import Frozen
from orchestrator.model.record import Operator, RingStatus, RunKind, RunRecord
from orchestrator.model.results import HostResult, ResourceOutcome
from orchestrator.model.verification import CheckResult, HostVerification
from orchestrator.report.exposure import build_exposure, exposure_headline
from orchestrator.report.masking import Mask, mask_record, no_mask
from orchestrator.words import counted

NO_RING = "(no ring)"
HostState = Literal["compliant", "failing", "unreachable", "not-reached"]
RingState = RingStatus  # passed, failed, inconclusive, in-progress, not-started


def new_run_id(kind: RunKind, now: datetime, rand: str | None = None) -> str:
    """`20261127T031840Z-apply-3fa2`: sortable by time, then kind, then 4 random hex digits.
    A naive `now` is taken as UTC; `rand` (hex) is drawn when not given."""
    moment = now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)
    suffix = (rand if rand is not None else secrets.token_hex(2)).lower()
    if not re.fullmatch(r"[0-9a-f]{4,}", suffix):
        raise ValueError(f"run id suffix must be 4 or more hex digits, not {suffix!r}")
    return f"{moment:%Y%m%dT%H%M%SZ}-{kind}-{suffix}"


# --- who ran it ----------------------------------------------------------------------------------

_CI_SYSTEMS: tuple[tuple[str, str, dict[str, str]], ...] = (
    # (name, variable that must be set, field -> variable)
    (
        "github-actions",
        "GITHUB_ACTIONS",
        {
            "workflow": "GITHUB_WORKFLOW",
            "job": "GITHUB_JOB",
            "run_id": "GITHUB_RUN_ID",
            "attempt": "GITHUB_RUN_ATTEMPT",
            "ref": "GITHUB_REF",
            "sha": "GITHUB_SHA",
            "actor": "GITHUB_ACTOR",
            "repository": "GITHUB_REPOSITORY",
        },
    ),
    (
        "gitlab-ci",
        "GITLAB_CI",
        {
            "pipeline_id": "CI_PIPELINE_ID",
            "job": "CI_JOB_NAME",
            "run_id": "CI_JOB_ID",
            "url": "CI_JOB_URL",
            "ref": "CI_COMMIT_REF_NAME",
            "sha": "CI_COMMIT_SHA",
            "actor": "GITLAB_USER_LOGIN",
            "repository": "CI_PROJECT_PATH",
        },
    ),
    (
        "jenkins",
        "JENKINS_URL",
        {
            "job": "JOB_NAME",
            "run_id": "BUILD_NUMBER",
            "url": "BUILD_URL",
            "ref": "GIT_BRANCH",
            "sha": "GIT_COMMIT",
            "actor": "BUILD_USER_ID",
            "node": "NODE_NAME",
        },
    ),
    (
        "ci",
        "CI",
        {
            "job": "CI_JOB_NAME",
            "run_id": "CI_JOB_ID",
            "url": "CI_JOB_URL",
            "ref": "CI_COMMIT_REF_NAME",
            "sha": "CI_COMMIT_SHA",
        },
    ),
)
_FALSE = {"", "0", "false", "no", "off"}
CI_NAMES = {"github-actions": "GitHub Actions", "gitlab-ci": "GitLab CI", "jenkins": "Jenkins"}


def operator_from_env(env: Mapping[str, str], user: str, hostname: str) -> Operator:
    """Who ran the run: the local user and machine, plus the CI job when the environment shows
    one (GitHub Actions, GitLab CI, Jenkins, or any system that sets `CI`): system, job, run id,
    URL, ref, commit and actor, empty values left out."""
    for system, marker, fields in _CI_SYSTEMS:
        if env.get(marker, "").strip().lower() in _FALSE:
            continue
        ci = {"system": system}
        ci |= {key: env[var] for key, var in fields.items() if env.get(var, "").strip()}
        if system == "github-actions" and {"repository", "run_id"} <= ci.keys():
            server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
            ci["url"] = f"{server}/{ci['repository']}/actions/runs/{ci['run_id']}"
        return Operator(user=user, hostname=hostname, ci=ci)
    return Operator(user=user, hostname=hostname)


# --- the view renderers draw from ----------------------------------------------------------------


class Compliance(Frozen):
    checks_passed: int = 0
    checks_failed: int = 0
    checks_error: int = 0
    checks_waived: int = 0
    hosts_compliant: int = 0
    hosts_total: int = 0
    hosts_not_reached: int = 0
    apply_failures: int = 0

    @property
    def checks_total(self) -> int:
        return self.checks_passed + self.checks_failed + self.checks_error + self.checks_waived


class HostRow(Frozen):
    host: str
    ring: str
    state: HostState
    apply: HostResult | None = None
    verify: HostVerification | None = None
    checks: dict[str, CheckResult] = {}

    @property
    def problem(self) -> str | None:
        """Why the host has no check results, if it has none."""
        if self.verify is not None and self.verify.error:
            return self.verify.error
        if self.apply is not None and self.apply.status == "unreachable":
            return self.apply.error or "unreachable"
        return None


class RingRow(Frozen):
    ring: str
    status: RingState
    hosts: tuple[str, ...]
    compliant: int
    checks_passed: int
    checks_total: int
    apply_failures: int
    reason: str = ""


class CheckColumn(Frozen):
    check_id: str
    group: str  # the resource (or "user checks") it belongs to
    policy: str
    label: str  # the property, short enough for a column header
    title: str


class CheckFailure(Frozen):
    host: str
    ring: str
    check: CheckResult


class ApplyFailure(Frozen):
    host: str
    ring: str
    resource_id: str  # empty when the whole host failed (unreachable, engine error)
    policy: str = ""
    summary: str = ""
    error: str = ""
    diff: str = ""


class RunView(Frozen):
    record: RunRecord  # masked
    compliance: Compliance
    rings: tuple[RingRow, ...]
    hosts: tuple[HostRow, ...]
    columns: tuple[CheckColumn, ...]
    check_failures: tuple[CheckFailure, ...]
    apply_failures: tuple[ApplyFailure, ...]
    waived: tuple[CheckFailure, ...] = ()
    """Checks an exception waives: never failures, never passed; listed apart."""

    @property
    def headline(self) -> str:
        return run_headline(self)


_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def visible(text: str) -> str:
    """Host output made printable: colour codes dropped, CR/LF normalised, other control
    characters shown as `\\xNN` (XML cannot carry them at all)."""
    text = _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def build_view(record: RunRecord, mask: Mask = no_mask) -> RunView:
    """Everything a report shows, computed once; every host-derived text masked and printable."""
    record = mask_record(record, lambda text: visible(mask(text)))
    hosts = _host_rows(record)
    columns = _columns(record.verify)
    listed = [
        CheckFailure(host=row.host, ring=row.ring, check=row.checks[column.check_id])
        for row in hosts
        for column in columns
        if column.check_id in row.checks and row.checks[column.check_id].status != "passed"
    ]
    failures = tuple(item for item in listed if item.check.status != "waived")
    waived = tuple(item for item in listed if item.check.status == "waived")
    apply_failures = tuple(failure for row in hosts for failure in _apply_failures(row))
    checks = [c.status for row in hosts for c in row.checks.values()]
    compliance = Compliance(
        checks_passed=checks.count("passed"),
        checks_failed=checks.count("failed"),
        checks_error=checks.count("error"),
        checks_waived=checks.count("waived"),
        hosts_compliant=sum(row.state == "compliant" for row in hosts),
        hosts_total=len(hosts),
        hosts_not_reached=sum(row.state == "not-reached" for row in hosts),
        apply_failures=len(apply_failures),
    )
    return RunView(
        record=record,
        compliance=compliance,
        rings=_ring_rows(record, hosts),
        hosts=hosts,
        columns=columns,
        check_failures=failures,
        apply_failures=apply_failures,
        waived=waived,
    )


def _ring_order(record: RunRecord) -> list[tuple[str, list[str]]]:
    """Rings in rollout order with their hosts: the record's rings first, then rings and hosts
    seen only in results (verify and apply runs carry no ring outcomes)."""
    order: dict[str, list[str]] = {ring.ring: list(ring.hosts) for ring in record.rings}
    seen = [(r.host, r.ring) for r in record.apply] + [(v.host, v.ring) for v in record.verify]
    for host, ring in seen:
        members = order.setdefault(ring or NO_RING, [])
        if not any(host in hosts for hosts in order.values()):
            members.append(host)
    if not order.get(NO_RING, True):
        del order[NO_RING]
    return list(order.items())


def _host_rows(record: RunRecord) -> tuple[HostRow, ...]:
    applied = {result.host: result for result in record.apply}
    verified = {verification.host: verification for verification in record.verify}
    rows = []
    for ring, members in _ring_order(record):
        for host in members:
            apply, verify = applied.get(host), verified.get(host)
            checks = {c.check_id: c for c in verify.results} if verify else {}
            rows.append(
                HostRow(
                    host=host,
                    ring=ring,
                    state=_host_state(apply, verify),
                    apply=apply,
                    verify=verify,
                    checks=checks,
                )
            )
    return tuple(rows)


def _host_state(apply: HostResult | None, verify: HostVerification | None) -> HostState:
    if apply is None and verify is None:
        return "not-reached"
    if "unreachable" in {apply and apply.status, verify and verify.status}:
        return "unreachable"
    apply_ok = apply is None or (
        apply.status in {"changed", "unchanged"}
        and all(o.status not in {"failed", "still-differs"} for o in apply.outcomes)
    )
    verify_ok = verify is None or verify.status == "passed"
    return "compliant" if apply_ok and verify_ok else "failing"


def _ring_rows(record: RunRecord, hosts: tuple[HostRow, ...]) -> tuple[RingRow, ...]:
    outcomes = {ring.ring: ring for ring in record.rings}
    rows = []
    for ring, _ in _ring_order(record):
        members = [row for row in hosts if row.ring == ring]
        checks = [c for row in members for c in row.checks.values()]
        outcome = outcomes.get(ring)
        status: RingState
        if outcome is not None:
            status = outcome.status
        elif all(row.state == "not-reached" for row in members):
            status = "not-started"
        else:
            status = "passed" if all(row.state == "compliant" for row in members) else "failed"
        rows.append(
            RingRow(
                ring=ring,
                status=status,
                hosts=tuple(row.host for row in members),
                compliant=sum(row.state == "compliant" for row in members),
                checks_passed=sum(c.status == "passed" for c in checks),
                checks_total=len(checks),
                apply_failures=sum(len(_apply_failures(row)) for row in members),
                reason=outcome.reason if outcome else "",
            )
        )
    return tuple(rows)


def _columns(verifications: Iterable[HostVerification]) -> tuple[CheckColumn, ...]:
    """One column per check id, grouped by resource in order of first appearance."""
    groups: dict[tuple[str, str], dict[str, CheckColumn]] = {}
    for verification in verifications:
        for check in verification.results:
            group = check.resource_id or ("user checks" if check.source == "user" else "checks")
            columns = groups.setdefault((check.policy, group), {})
            columns.setdefault(
                check.check_id,
                CheckColumn(
                    check_id=check.check_id,
                    group=group,
                    policy=check.policy,
                    label=_check_label(check),
                    title=check.title,
                ),
            )
    return tuple(column for columns in groups.values() for column in columns.values())


def _check_label(check: CheckResult) -> str:
    prefix = f"{check.policy}/{check.resource_id}/"
    if check.resource_id and check.check_id.startswith(prefix):
        return check.check_id.removeprefix(prefix)
    tail = check.check_id.rsplit("::", 1)[-1]
    return tail.rsplit("/", 1)[-1].removeprefix("test_")


def _apply_failures(row: HostRow) -> list[ApplyFailure]:
    result = row.apply
    if result is None:
        return []
    failed: list[ResourceOutcome] = [
        o for o in result.outcomes if o.status in {"failed", "still-differs"}
    ]
    found = [
        ApplyFailure(
            host=row.host,
            ring=row.ring,
            resource_id=o.resource_id,
            policy=o.policy,
            summary=o.summary,
            error=o.error,
            diff=o.diff,
        )
        for o in failed
    ]
    if not found and result.status in {"failed", "unreachable"}:
        found.append(
            ApplyFailure(host=row.host, ring=row.ring, resource_id="", error=result.error or "")
        )
    return found


# --- shared wording ------------------------------------------------------------------------------


def run_headline(view: RunView) -> str:
    """One sentence for the top of every report."""
    record, c = view.record, view.compliance
    if record.patching is not None:
        return exposure_headline(build_exposure(record.patching))
    kind = record.kind.capitalize()
    failed_ring = next((r for r in view.rings if r.status == "failed"), None)
    if record.status == "halted" and failed_ring is not None:
        return f"{kind} halted in ring {failed_ring.ring}; later rings were not touched"
    if record.status == "interrupted":
        return f"{kind} interrupted before it finished"
    if record.status == "succeeded":
        rollout = record.rollout.status if record.rollout else "completed"
        word = "succeeded" if rollout in {"completed", "running"} else rollout
        return f"{kind} {word}: {c.hosts_compliant} of {counted(c.hosts_total, 'host')} compliant"
    failing = c.hosts_total - c.hosts_compliant - c.hosts_not_reached
    return f"{kind} failed: {failing} of {counted(c.hosts_total, 'host')} not compliant"


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "n/a"


def short_sha(commit: str | None) -> str:
    return commit[:12] if commit else "(not a Git commit)"


def subject(message: str | None) -> str:
    return (message or "").strip().split("\n", 1)[0]
