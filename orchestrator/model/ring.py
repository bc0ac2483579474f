"""Ring settings as inventories declare them, and the verdicts the rollout decisions return.

A ring's `batches`, `failure_budget`, `gate` (pass rate, regressions, health checks), `soak`,
`approval`, `auto_rollback`, maintenance `windows` and change tickets. Every default keeps a
plain rollout: one batch of the whole ring, no failure allowed, every host compliant, no
waiting, no approval.
Durations are written `90s`, `30m`, `2h`, `1d` (or combined: `1h30m`). Validators raise
`ValueError` with plain words, so the inventory loader reports them at `file:line:col`.
Imports pydantic, the standard library and `model.base`/`model.policy` only; the one read is
`zoneinfo` looking up a time zone name.
"""

from __future__ import annotations

import difflib
import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from orchestrator.model.base import Frozen
from orchestrator.model.policy import NAME

RebootMode = Literal["never", "if-required", "always"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_DURATION = re.compile(r"(?:\d+[smhd])+")
_DURATION_PART = re.compile(r"(\d+)([smhd])")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_CLOCK = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if value is None:
        return "an empty value"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list | tuple) else "a mapping"


# --- durations ----------------------------------------------------------------------------------


def parse_duration(value: str | int) -> timedelta:
    """`90s`, `30m`, `2h`, `1d` or combinations (`1h30m`) as a timedelta; a bare `0` is zero.
    Raises ValueError with a message fit for a located error."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"expected a duration like 30m, got {_kind(value)}")
    if isinstance(value, int):
        if value == 0:
            return timedelta(0)
        raise ValueError(f"'{value}' has no unit (like {value}s, {value}m, {value}h or {value}d)")
    text = value.strip()
    if text == "0":
        return timedelta(0)
    if not _DURATION.fullmatch(text):
        raise ValueError(f"'{value}' is not a duration (like 90s, 30m, 2h or 1d)")
    seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest text `parse_duration` reads back: `1h30m`, `90s` -> `1m30s`, zero -> `0s`."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def _duration_input(value: Any) -> timedelta:
    return value if isinstance(value, timedelta) else parse_duration(value)


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration_input),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "pattern": "^(\\d+[smhd])+$", "examples": ["90s", "30m", "2h", "1d"]}
    ),
]


# --- batches ------------------------------------------------------------------------------------


def check_batch_size(value: Any) -> int | str:
    """A batch size: a host count (at least 1) or a percentage of the ring like `25%` (above 0,
    at most 100). Digits in a string count as a host count."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f'expected a host count or a percentage like "25%", got {_kind(value)}')
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"a batch needs at least 1 host, got {value}")
        return value
    match = _PERCENT.fullmatch(value.strip())
    if match is None:
        raise ValueError(
            f"'{value}' is not a batch size (a host count like 5 or a percentage like \"25%\")"
        )
    if not 0 < float(match[1]) <= 100:
        raise ValueError(f"'{value}' is not a percentage above 0% and at most 100%")
    return f"{match[1]}%"


BatchSize = Annotated[
    int | str,
    BeforeValidator(check_batch_size),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": "^\\d+(\\.\\d+)?%$"},
            ]
        }
    ),
]


def check_host_share(value: Any) -> int | str:
    """A share of a ring's hosts: a count (0 or more) or a percentage (0% to 100%)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f'expected a host count or a percentage like "5%", got {_kind(value)}')
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"expected 0 or more hosts, got {value}")
        return value
    match = _PERCENT.fullmatch(value.strip())
    if match is None or not 0 <= float(match[1]) <= 100:
        raise ValueError(f"'{value}' is not a host count like 2 nor a percentage like \"5%\"")
    return f"{match[1]}%"


HostShare = Annotated[
    int | str,
    BeforeValidator(check_host_share),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^\\d+(\\.\\d+)?%$"},
            ]
        }
    ),
]


# --- settings -----------------------------------------------------------------------------------


class FailureBudget(Frozen):
    """How many of a ring's hosts may fail before the ring halts mid-way. With both limits set
    the stricter applies; with neither, no failure is allowed."""

    max_failed: int | None = Field(None, ge=0, description="Hosts that may fail (a count).")
    max_failed_percent: float | None = Field(
        None, ge=0, le=100, description="Hosts that may fail, as % of the ring (rounded down)."
    )


class HealthCheck(Frozen):
    """A health probe run after the ring is applied: a `command` on each ring host (exit 0 is
    healthy) or an HTTP GET of `http` from the controller (2xx, or `expect_status`, is healthy).
    `{{ host.name }}` and `{{ host.address }}` are replaced per host."""

    name: str = Field(pattern=NAME)
    command: str | None = Field(None, description="Shell command run on each ring host.")
    http: str | None = Field(None, description="URL fetched from the controller per host.")
    expect_status: int | None = Field(None, ge=100, le=599, description="Default: any 2xx.")
    timeout: Duration = Field(timedelta(seconds=10), description="Limit for one attempt.")
    retries: int = Field(0, ge=0, description="Attempts after a failed one (at most retries+1).")
    interval: Duration = Field(timedelta(seconds=5), description="Wait between attempts.")

    @field_validator("http")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"'{value}' is not an http:// or https:// URL")
        return value

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("a timeout must be longer than 0s")
        return value

    @model_validator(mode="after")
    def _one_probe(self) -> HealthCheck:
        if (self.command is None) == (self.http is None):
            raise ValueError("set exactly one of command or http")
        if self.expect_status is not None and self.http is None:
            raise ValueError("expect_status applies to http checks only")
        return self


class Gate(Frozen):
    """What a ring must show before the rollout leaves it. A gate that cannot decide
    (too few hosts observed, health checks timed out) is inconclusive and never promotes."""

    min_pass_rate: float = Field(
        100, ge=0, le=100, description="% of the ring's hosts compliant (applied and verified)."
    )
    no_new_failures: bool = Field(
        False, description="No check may fail that passed in the verify before the rollout."
    )
    min_hosts: int = Field(1, ge=0, description="Fewer hosts observed: inconclusive.")
    health_checks: tuple[HealthCheck, ...] = ()
    max_exception_debt: HostShare | None = Field(
        None,
        description="At most this many (or this % of) the ring's hosts may be under an "
        "exception (exceptions/*.yml) in force; more fails the gate.",
    )


class MaintenanceWindow(Frozen):
    """When changes may be applied: from `start` on each of `days` to `end` (the same day, or
    the next when `end` is not after `start`; `24:00` is midnight), in `timezone`."""

    days: tuple[Weekday, ...] = Field(WEEKDAYS, description="Days the window starts on.")
    start: str = Field(description='Local time the window opens, "HH:MM".')
    end: str = Field(description='Local time it closes, "HH:MM" (may cross midnight; "24:00").')
    timezone: str = Field("UTC", description="A zoneinfo name, e.g. Europe/Berlin.")

    @field_validator("days")
    @classmethod
    def _some_days(cls, value: tuple[Weekday, ...]) -> tuple[Weekday, ...]:
        if not value:
            raise ValueError("list at least one day (mon, tue, wed, thu, fri, sat, sun)")
        return value

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        if not _CLOCK.fullmatch(value) and value != "24:00":
            raise ValueError(f"'{value}' is not a time of day (like \"22:00\")")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            close = difflib.get_close_matches(value, sorted(available_timezones()), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ValueError(f"unknown time zone '{value}'{hint}") from None
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> MaintenanceWindow:
        if self.start == "24:00":
            raise ValueError('a window cannot start at 24:00 (write "00:00")')
        if self.start == self.end:
            raise ValueError(
                'a window must not start and end at the same time (all day: "00:00" to "24:00")'
            )
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class RingSettings(Frozen):
    """How a ring rolls out: its batches, failure budget, gate, soak, approval, windows, and
    what follows an apply that needs a reboot or leaves services on deleted libraries."""

    batches: tuple[BatchSize, ...] = Field(
        ("100%",),
        description="Sizes of successive batches (counts or % of the ring); the last repeats.",
    )
    failure_budget: FailureBudget = Field(default_factory=FailureBudget)
    gate: Gate = Field(default_factory=Gate)
    soak: Duration = Field(timedelta(0), description="Wait after the gate passes.")
    approval: bool = Field(False, description="A person must approve promotion past this ring.")
    auto_rollback: bool = Field(False, description="Roll back changed hosts when the ring halts.")
    windows: tuple[MaintenanceWindow, ...] = Field(
        (), description="Maintenance windows; none means always open."
    )
    reboot: RebootMode = Field(
        "never",
        description="After apply: never reboot (report a needed reboot), reboot if-required "
        "(/run/reboot-required, a newer kernel), or always.",
    )
    max_rebooting: int = Field(1, ge=1, description="Hosts of a batch rebooting at once.")
    reboot_timeout: Duration = Field(
        timedelta(minutes=10),
        description="Limit for a host to come back (SSH, and systemd running or degraded).",
    )
    restart_services: bool = Field(
        False,
        description="Restart services still running deleted libraries after apply "
        "(needrestart where installed); false: report them.",
    )

    @field_validator("reboot_timeout")
    @classmethod
    def _some_timeout(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("a timeout must be longer than 0s")
        return value

    require_change_ticket: bool = Field(
        False, description="A rollout reaching this ring needs `rollout --change-ticket ID`."
    )
    change_ticket_pattern: str | None = Field(
        None,
        description="Regular expression a change ticket id must match whole "
        r"(ServiceNow: `CHG\d+`, Jira: `[A-Z]+-\d+`).",
    )

    @field_validator("change_ticket_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a valid regular expression: {error}") from None
        return value

    @field_validator("batches")
    @classmethod
    def _some_batches(cls, value: tuple[int | str, ...]) -> tuple[int | str, ...]:
        if not value:
            raise ValueError('list at least one batch size (like [1, "25%", "100%"])')
        return value


# --- verdicts -----------------------------------------------------------------------------------

HostFailureKind = Literal["unreachable", "apply-failed", "verify-failed"]
HealthStatus = Literal["passed", "failed", "timeout"]
GateStatus = Literal["passed", "failed", "inconclusive"]


class BudgetVerdict(Frozen):
    """A ring's failures so far against its budget; `exceeded` halts the ring mid-way."""

    status: Literal["within", "exceeded"]
    ring_size: int
    limit: int = Field(description="Failures the budget allows.")
    failed: int
    unreachable: int = 0
    apply_failed: int = 0
    verify_failed: int = 0
    failed_hosts: tuple[str, ...] = ()
    reason: str = ""

    @property
    def exceeded(self) -> bool:
        return self.status == "exceeded"


class HealthResult(Frozen):
    """One health check on one host, after its retries."""

    name: str
    host: str
    status: HealthStatus
    attempts: int = Field(1, ge=0)
    detail: str = ""


class NewFailure(Frozen):
    """A check that passed before the rollout and fails after it."""

    host: str
    check_id: str


class GateResult(Frozen):
    """Whether a ring may be left: `passed`, `failed`, or `inconclusive` (never promotes)."""

    status: GateStatus
    reasons: tuple[str, ...] = ()
    hosts: int
    observed: int = Field(description="Hosts whose verification completed.")
    compliant: int = Field(description="Observed hosts applied and verified without a failure.")
    pass_rate: float = Field(
        description="compliant / observed hosts, in % (100 when no host was observed)."
    )
    unobserved: tuple[str, ...] = Field(
        (), description="Hosts the gate could not observe (unreachable, rebooting, not verified)."
    )
    new_failures: tuple[NewFailure, ...] = ()
    health_failures: tuple[HealthResult, ...] = Field(
        (), description="Health results that failed or timed out."
    )

    @property
    def passed(self) -> bool:
        return self.status == "passed"
