"""Pure rollout decisions, table-driven: batches, failure budgets, gates, windows and soak."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from orchestrator.model.results import HostResult
from orchestrator.model.ring import (
    FailureBudget,
    Gate,
    HealthCheck,
    HealthStatus,
    MaintenanceWindow,
    Weekday,
)
from orchestrator.model.verification import CheckResult, HostVerification
from orchestrator.rollout.decisions import (
    GateResult,
    HealthResult,
    HostFailureKind,
    NewFailure,
    batch_sizes,
    budget_state,
    classify_host,
    evaluate_gate,
    failure_limit,
    next_window_start,
    parse_duration,
    soak_until,
    split_batches,
    window_open,
)

BERLIN = ZoneInfo("Europe/Berlin")

# --- batches ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "batches", "sizes"),
    [
        (10, [1, "25%", "100%"], [1, 3, 6]),  # 2.5 rounds up; 100% is capped at what is left
        (10, [2], [2, 2, 2, 2, 2]),  # the last size repeats
        (7, ["30%"], [3, 3, 1]),  # 2.1 rounds up; the last batch takes the rest
        (3, ["1%"], [1, 1, 1]),  # at least one host
        (30, ["10%"], [3] * 10),  # exact: 10% of 30 is 3, not 3.0000000000000004 -> 4
        (3, ["33.3%"], [1, 1, 1]),
        (4, [1, 1, "50%"], [1, 1, 2]),
        (5, [10], [5]),
        (5, ["2"], [2, 2, 1]),
        (5, [], [5]),  # no sizes: one batch of the whole ring
        (5, ["100%"], [5]),
        (0, [1, "25%"], []),
    ],
)
def test_batch_sizes(total: int, batches: list[int | str], sizes: list[int]) -> None:
    assert batch_sizes(total, batches) == sizes


def test_split_batches_keeps_host_order() -> None:
    hosts = ["a", "b", "c", "d", "e"]
    assert split_batches(hosts, [1, "50%"]) == [("a",), ("b", "c", "d"), ("e",)]
    assert split_batches(hosts, [2]) == [("a", "b"), ("c", "d"), ("e",)]
    assert split_batches((), [1]) == []


@pytest.mark.parametrize("bad", [0, "0%", "150%", "x", -1])
def test_split_batches_rejects_invalid_sizes(bad: int | str) -> None:
    with pytest.raises(ValueError):
        split_batches(["a"], [bad])


# --- failure budget -----------------------------------------------------------------------------


def applied(status: str | None, host: str = "x") -> HostResult | None:
    return None if status is None else HostResult(host=host, status=status)  # type: ignore[arg-type]


def verified(status: str | None, host: str = "x", **checks: str) -> HostVerification | None:
    if status is None:
        return None
    results = tuple(
        CheckResult(check_id=f"p/{c}", title=c, status=s, expected="e", actual="a")  # type: ignore[arg-type]
        for c, s in checks.items()
    )
    return HostVerification(host=host, status=status, results=results)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("apply_status", "verify_status", "kind"),
    [
        (None, None, "unreachable"),  # never answered
        ("changed", None, None),  # applied, not verified yet
        ("unchanged", "passed", None),
        ("changed", "passed", None),
        ("changed", "failed", "verify-failed"),
        ("changed", "unreachable", "unreachable"),
        ("failed", None, "apply-failed"),
        ("failed", "passed", "apply-failed"),  # apply problems come first
        ("unreachable", None, "unreachable"),
        ("unreachable", "failed", "unreachable"),
        (None, "failed", "verify-failed"),
        (None, "passed", None),
    ],
)
def test_classify_host(
    apply_status: str | None, verify_status: str | None, kind: HostFailureKind | None
) -> None:
    assert classify_host(applied(apply_status), verified(verify_status)) == kind


@pytest.mark.parametrize(
    ("max_failed", "max_failed_percent", "ring_size", "limit"),
    [
        (None, None, 10, 0),  # default: no failure allowed
        (2, None, 10, 2),
        (None, 10, 10, 1),
        (None, 10, 9, 0),  # 0.9 rounds down
        (None, 10, 30, 3),  # exact, not 3.0000000000000004
        (None, 12.5, 8, 1),
        (None, 33.3, 3, 0),
        (None, 100, 4, 4),
        (5, 10, 100, 5),  # the stricter of the two
        (1, 50, 10, 1),
        (3, 10, 10, 1),
        (0, 50, 10, 0),
    ],
)
def test_failure_limit(
    max_failed: int | None, max_failed_percent: float | None, ring_size: int, limit: int
) -> None:
    budget = FailureBudget(max_failed=max_failed, max_failed_percent=max_failed_percent)
    assert failure_limit(budget, ring_size) == limit


@pytest.mark.parametrize(
    ("failures", "budget", "status", "reason"),
    [
        ({}, FailureBudget(), "within", ""),
        (
            {"a": "unreachable"},
            FailureBudget(),
            "exceeded",
            "1 of 10 hosts failed (1 unreachable); the failure budget allows 0",
        ),
        (
            {"a": "unreachable", "b": "apply-failed"},
            FailureBudget(max_failed=2),
            "within",
            "2 of 10 hosts failed (1 unreachable, 1 apply-failed); the failure budget allows 2",
        ),
        (
            {"a": "verify-failed", "b": "apply-failed", "c": "verify-failed"},
            FailureBudget(max_failed=5, max_failed_percent=20),
            "exceeded",
            "3 of 10 hosts failed (1 apply-failed, 2 verify-failed); the failure budget allows 2",
        ),
    ],
)
def test_budget_state(
    failures: Mapping[str, HostFailureKind], budget: FailureBudget, status: str, reason: str
) -> None:
    verdict = budget_state(10, failures, budget)
    assert (verdict.status, verdict.reason) == (status, reason)
    assert verdict.exceeded is (status == "exceeded")
    assert verdict.failed == len(failures)
    assert verdict.failed_hosts == tuple(failures)
    kinds = list(failures.values())
    assert (verdict.unreachable, verdict.apply_failed, verdict.verify_failed) == (
        kinds.count("unreachable"),
        kinds.count("apply-failed"),
        kinds.count("verify-failed"),
    )


# --- gate ---------------------------------------------------------------------------------------

HOSTS = ("a", "b", "c")
UP = HealthCheck(name="up", command="systemctl is-active acme-agent")


DOWN = "unreachable: ssh: connect to host a port 22: Connection timed out"


def ring(**states: str) -> tuple[dict[str, HostResult], dict[str, HostVerification]]:
    """Per host `ok`, `bad` (a check fails), `apply` (apply failed), `down` (unreachable at
    the gate: every check an error, as the verifier reports it), `gone` (no verification at
    all), `dark` (reachable, yet every check errored) or `flaky` (one check errored)."""
    applies: dict[str, HostResult] = {}
    verifies: dict[str, HostVerification] = {}
    for host, state in states.items():
        apply_status = "failed" if state == "apply" else "changed"
        applies[host] = HostResult(host=host, status=apply_status)  # type: ignore[arg-type]
        if state == "gone":
            continue
        version = {"bad": "failed", "down": "error", "dark": "error", "flaky": "error"}
        running = "error" if state in {"down", "dark"} else "passed"
        checks = {"version": version.get(state, "passed"), "running": running}
        verify_status = {"ok": "passed", "down": "unreachable"}.get(state, "failed")
        result = verified(verify_status, host, **checks)
        assert result is not None
        if state in {"down", "dark"}:
            errored = tuple(r.model_copy(update={"message": DOWN}) for r in result.results)
            error = DOWN if state == "down" else None
            result = result.model_copy(update={"results": errored, "error": error})
        verifies[host] = result
    return applies, verifies


def health(*results: tuple[str, str, HealthStatus, str]) -> dict[str, HealthResult]:
    return {
        f"{name}@{host}": HealthResult(name=name, host=host, status=status, detail=detail)
        for name, host, status, detail in results
    }


BASELINE = {
    "a": verified("passed", "a", version="passed", running="passed"),
    "b": verified("failed", "b", version="failed", running="passed"),  # already failing
}
ALL_UP = health(("up", "a", "passed", ""), ("up", "b", "passed", ""), ("up", "c", "passed", ""))


@pytest.mark.parametrize(
    ("gate", "states", "baseline", "probes", "status", "reasons"),
    [
        (Gate(), {"a": "ok", "b": "ok", "c": "ok"}, None, {}, "passed", ()),
        (
            Gate(),
            {"a": "ok", "b": "bad", "c": "ok"},
            None,
            {},
            "failed",
            ("pass rate 66.67% < 100% (2 of 3 hosts compliant)",),
        ),
        (Gate(min_pass_rate=60), {"a": "ok", "b": "bad", "c": "ok"}, None, {}, "passed", ()),
        (
            Gate(min_pass_rate=66.7),
            {"a": "ok", "b": "bad", "c": "ok"},
            None,
            {},
            "failed",
            ("pass rate 66.67% < 66.7% (2 of 3 hosts compliant)",),
        ),
        (  # b was failing before the rollout: not a new failure
            Gate(min_pass_rate=50, no_new_failures=True),
            {"a": "ok", "b": "bad", "c": "ok"},
            BASELINE,
            {},
            "passed",
            (),
        ),
        (  # a passed before: its failing check is new
            Gate(min_pass_rate=50, no_new_failures=True),
            {"a": "bad", "b": "ok", "c": "ok"},
            BASELINE,
            {},
            "failed",
            ("1 new failure(s): a p/version",),
        ),
        (
            Gate(no_new_failures=True),
            {"a": "ok", "b": "ok", "c": "ok"},
            None,
            {},
            "inconclusive",
            ("no baseline verification to compare with (no_new_failures)",),
        ),
        (  # unreachable hosts were not observed: inconclusive, never failed
            Gate(min_hosts=2),
            {"a": "down", "b": "down", "c": "ok"},
            None,
            {},
            "inconclusive",
            (
                f"2 host(s) not observed: a, b ({DOWN})",
                "only 1 of 3 hosts observed; the gate needs 2",
            ),
        ),
        (  # rebooted between apply and gate: their errored checks are no new failures
            Gate(no_new_failures=True),
            {"a": "down", "b": "down"},
            {h: verified("passed", h, version="passed", running="passed") for h in "ab"},
            {},
            "inconclusive",
            (
                f"2 host(s) not observed: a, b ({DOWN})",
                "only 0 of 2 hosts observed; the gate needs 1",
            ),
        ),
        (  # a genuine failure among observed hosts wins; the unobserved are named apart
            Gate(),
            {"a": "down", "b": "bad", "c": "ok"},
            None,
            {},
            "failed",
            (
                "pass rate 50% < 100% (1 of 2 observed host(s) compliant)",
                f"1 host(s) not observed: a ({DOWN})",
            ),
        ),
        (  # the same with no_new_failures: only the observed host's check is new
            Gate(min_pass_rate=0, no_new_failures=True),
            {"a": "down", "b": "bad", "c": "ok"},
            {h: verified("passed", h, version="passed", running="passed") for h in "abc"},
            {},
            "failed",
            ("1 new failure(s): b p/version", f"1 host(s) not observed: a ({DOWN})"),
        ),
        (  # observed with every check an error (nothing known) vs one check an error
            Gate(min_pass_rate=0, no_new_failures=True),
            {"a": "dark", "b": "ok"},
            {h: verified("passed", h, version="passed", running="passed") for h in "ab"},
            {},
            "inconclusive",
            (f"1 host(s) not observed: a (no check could run: {DOWN})",),
        ),
        (
            Gate(min_pass_rate=0, no_new_failures=True),
            {"a": "flaky", "b": "ok"},
            {h: verified("passed", h, version="passed", running="passed") for h in "ab"},
            {},
            "failed",
            ("1 new failure(s): a p/version",),
        ),
        (  # hosts grouped by why they were not observed
            Gate(),
            {"a": "down", "b": "ok", "c": "gone", "d": "down"},
            None,
            {},
            "inconclusive",
            (f"3 host(s) not observed: a, c, d (a, d: {DOWN}; c: not verified)",),
        ),
        (
            Gate(min_hosts=3),
            {"a": "ok", "b": "ok"},
            None,
            {},
            "inconclusive",
            ("only 2 of 2 hosts observed; the gate needs 3",),
        ),
        (  # a failed apply on an observed host is a failure; the unreachable are not
            Gate(),
            {"a": "down", "b": "down", "c": "apply"},
            None,
            {},
            "failed",
            (
                "pass rate 0% < 100% (0 of 1 observed host(s) compliant)",
                f"2 host(s) not observed: a, b ({DOWN})",
            ),
        ),
        (
            Gate(health_checks=(UP,)),
            {"a": "ok", "b": "ok", "c": "ok"},
            None,
            ALL_UP,
            "passed",
            (),
        ),
        (
            Gate(health_checks=(UP,)),
            {"a": "ok", "b": "ok", "c": "ok"},
            None,
            {**ALL_UP, **health(("up", "a", "failed", "exit 3"), ("up", "c", "failed", ""))},
            "failed",
            ("health check 'up' failed on a (exit 3), c",),
        ),
        (
            Gate(health_checks=(UP,)),
            {"a": "ok", "b": "ok", "c": "ok"},
            None,
            {**ALL_UP, **health(("up", "b", "timeout", "after 3 attempts"))},
            "inconclusive",
            ("health check 'up' timed out on b",),
        ),
        (
            Gate(health_checks=(UP,)),
            {"a": "ok", "b": "ok", "c": "ok"},
            None,
            health(("up", "a", "passed", "")),
            "inconclusive",
            ("health check 'up' has no result for b, c",),
        ),
        (  # an unobserved host owes no health result, and its failing one is not a failure
            Gate(health_checks=(UP,)),
            {"a": "ok", "b": "ok", "c": "down"},
            None,
            {**ALL_UP, **health(("up", "c", "failed", "ssh: connection timed out"))},
            "inconclusive",
            (f"1 host(s) not observed: c ({DOWN})",),
        ),
    ],
)
def test_evaluate_gate(
    gate: Gate,
    states: dict[str, str],
    baseline: Mapping[str, HostVerification] | None,
    probes: Mapping[str, HealthResult],
    status: str,
    reasons: tuple[str, ...],
) -> None:
    applies, verifies = ring(**states)
    result = evaluate_gate(gate, tuple(states), applies, verifies, baseline, probes)
    assert (result.status, result.reasons) == (status, reasons)


def test_gate_result_counts_and_every_reason() -> None:
    applies, verifies = ring(a="down", b="down", c="apply")
    result = evaluate_gate(Gate(health_checks=(UP,)), HOSTS, applies, verifies, None, {})
    assert result == GateResult(
        status="failed",
        reasons=(
            "pass rate 0% < 100% (0 of 1 observed host(s) compliant)",
            f"2 host(s) not observed: a, b ({DOWN})",
            "health check 'up' has no result for c",
        ),
        hosts=3,
        observed=1,
        compliant=0,
        pass_rate=0.0,
        unobserved=("a", "b"),
    )
    assert not result.passed


def test_gate_lists_new_failures_and_names_at_most_three() -> None:
    states = {h: "bad" for h in "abcde"}
    applies, verifies = ring(**states)
    before = {h: verified("passed", h, version="passed", running="passed") for h in "abcde"}
    baseline = {h: v for h, v in before.items() if v is not None}
    gate = Gate(min_pass_rate=0, no_new_failures=True)
    result = evaluate_gate(gate, tuple(states), applies, verifies, baseline, {})
    assert result.reasons == ("5 new failure(s): a p/version, b p/version, c p/version (+2 more)",)
    assert result.new_failures[0] == NewFailure(host="a", check_id="p/version")
    assert result.pass_rate == 0.0


def test_health_failures_are_kept_in_the_result() -> None:
    applies, verifies = ring(a="ok")
    probes = health(("up", "a", "timeout", "no answer in 10s"), ("other", "a", "failed", ""))
    result = evaluate_gate(Gate(health_checks=(UP,)), ("a",), applies, verifies, None, probes)
    assert result.status == "inconclusive"
    assert [(r.name, r.status) for r in result.health_failures] == [("up", "timeout")]


@pytest.mark.parametrize(("min_hosts", "status"), [(0, "passed"), (1, "inconclusive")])
def test_an_empty_ring(min_hosts: int, status: str) -> None:
    result = evaluate_gate(Gate(min_hosts=min_hosts), (), {}, {}, None, {})
    assert (result.status, result.pass_rate) == (status, 100.0)


# --- windows ------------------------------------------------------------------------------------


def window(
    start: str, end: str, days: tuple[Weekday, ...] | None = None, zone: str = "Europe/Berlin"
) -> MaintenanceWindow:
    if days is None:
        return MaintenanceWindow(start=start, end=end, timezone=zone)
    return MaintenanceWindow(days=days, start=start, end=end, timezone=zone)


WEEKNIGHTS = window("22:00", "04:00", ("mon", "tue", "wed", "thu", "fri"))


def berlin(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("windows", "now", "is_open"),
    [
        ((), utc("2024-03-04T12:00"), True),  # no windows: always open
        ((WEEKNIGHTS,), berlin("2024-03-04T23:00"), True),  # Monday night
        ((WEEKNIGHTS,), berlin("2024-03-04T21:59"), False),
        ((WEEKNIGHTS,), berlin("2024-03-04T22:00"), True),  # start is inclusive
        ((WEEKNIGHTS,), berlin("2024-03-05T03:59"), True),  # Monday's window, past midnight
        ((WEEKNIGHTS,), berlin("2024-03-05T04:00"), False),  # end is exclusive
        ((WEEKNIGHTS,), berlin("2024-03-09T02:00"), True),  # Saturday early: Friday's window
        ((WEEKNIGHTS,), berlin("2024-03-10T02:00"), False),  # Sunday early: no Saturday window
        ((WEEKNIGHTS,), berlin("2024-03-04T02:00"), False),  # Monday early: no Sunday window
        ((WEEKNIGHTS,), utc("2024-03-04T21:30"), True),  # 22:30 CET
        ((WEEKNIGHTS,), utc("2024-07-01T20:30"), True),  # 22:30 CEST
        ((WEEKNIGHTS,), utc("2024-07-01T19:30"), False),  # 21:30 CEST
        # Days are the window's own: Sunday 16:00 UTC is Monday 01:00 in Tokyo.
        ((window("00:00", "06:00", ("mon",), "Asia/Tokyo"),), utc("2024-03-03T16:00"), True),
        ((window("00:00", "06:00", ("mon",), "Asia/Tokyo"),), utc("2024-03-04T16:00"), False),
        ((window("00:00", "24:00"),), berlin("2024-03-04T23:59"), True),  # all day
        ((window("00:00", "24:00", ("mon",)),), berlin("2024-03-05T00:00"), False),
        ((window("09:00", "17:00"), window("20:00", "21:00")), berlin("2024-03-04T20:30"), True),
        ((window("09:00", "17:00"), window("20:00", "21:00")), berlin("2024-03-04T18:00"), False),
        # Spring forward (31 March 2024, 02:00 CET -> 03:00 CEST): 01:00-05:00 lasts 3 hours.
        ((window("01:00", "05:00", ("sun",)),), utc("2024-03-31T02:30"), True),  # 04:30 CEST
        ((window("01:00", "05:00", ("sun",)),), utc("2024-03-31T03:00"), False),  # 05:00 CEST
        # Fall back (27 October 2024, 03:00 CEST -> 02:00 CET): Saturday 22:00-04:00 lasts 7h.
        ((window("22:00", "04:00", ("sat",)),), utc("2024-10-26T20:00"), True),  # 22:00 CEST
        ((window("22:00", "04:00", ("sat",)),), utc("2024-10-27T02:30"), True),  # 03:30 CET
        ((window("22:00", "04:00", ("sat",)),), utc("2024-10-27T03:00"), False),  # 04:00 CET
    ],
)
def test_window_open(windows: tuple[MaintenanceWindow, ...], now: datetime, is_open: bool) -> None:
    assert window_open(windows, now) is is_open


@pytest.mark.parametrize(
    ("windows", "now", "expected"),
    [
        ((), utc("2024-03-04T12:00"), None),
        ((WEEKNIGHTS,), berlin("2024-03-04T23:00"), berlin("2024-03-04T23:00")),  # open: now
        ((WEEKNIGHTS,), berlin("2024-03-04T12:00"), berlin("2024-03-04T22:00")),
        ((WEEKNIGHTS,), berlin("2024-03-09T12:00"), berlin("2024-03-11T22:00")),  # weekend
        ((WEEKNIGHTS,), utc("2024-07-01T12:00"), utc("2024-07-01T20:00")),  # 22:00 CEST
        (
            (WEEKNIGHTS, window("06:00", "07:00", ("tue",), "UTC")),
            berlin("2024-03-09T12:00"),
            berlin("2024-03-11T22:00"),
        ),
        (
            (WEEKNIGHTS, window("06:00", "07:00", ("sun",), "UTC")),
            berlin("2024-03-09T12:00"),
            utc("2024-03-10T06:00"),
        ),
        # A start in the spring-forward gap (02:30 does not exist) opens an hour later by the
        # wall clock: 03:30 CEST.
        ((window("02:30", "05:00", ("sun",)),), utc("2024-03-30T12:00"), utc("2024-03-31T01:30")),
    ],
)
def test_next_window_start(
    windows: tuple[MaintenanceWindow, ...], now: datetime, expected: datetime | None
) -> None:
    found = next_window_start(windows, now)
    assert found == expected
    if found is not None:
        assert found.tzinfo is now.tzinfo


def test_windows_need_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        window_open((WEEKNIGHTS,), datetime(2024, 3, 4, 23, 0))
    with pytest.raises(ValueError, match="timezone-aware"):
        next_window_start((), datetime(2024, 3, 4, 23, 0))


# --- soak ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("soak", "expected"),
    [
        ("0s", utc("2024-03-04T12:00")),
        ("30m", utc("2024-03-04T12:30")),
        ("1d2h", utc("2024-03-05T14:00")),
    ],
)
def test_soak_until(soak: str, expected: datetime) -> None:
    assert soak_until(utc("2024-03-04T12:00"), parse_duration(soak)) == expected
    assert soak_until(utc("2024-03-04T12:00"), timedelta(0)) == utc("2024-03-04T12:00")
