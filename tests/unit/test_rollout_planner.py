"""Rollout decisions, table-driven: ring order, --to, and when a ring may be left."""

from __future__ import annotations

import pytest

from orchestrator.errors import UserInputError
from orchestrator.model.results import HostResult
from orchestrator.model.verification import CheckResult, HostVerification
from orchestrator.rollout.planner import judge_ring, ring_waves

RINGS = ["canary", "pilot", "broad"]
HOSTS = {"a": "canary", "b": "pilot", "c": "pilot", "d": "broad", "e": None}


@pytest.mark.parametrize(
    ("to_ring", "expected"),
    [
        (
            None,
            [("canary", ("a",)), ("pilot", ("b", "c")), ("broad", ("d",)), ("(no ring)", ("e",))],
        ),
        ("canary", [("canary", ("a",))]),
        ("pilot", [("canary", ("a",)), ("pilot", ("b", "c"))]),
    ],
)
def test_ring_waves(to_ring: str | None, expected: list) -> None:
    assert ring_waves(RINGS, HOSTS, to_ring) == expected


def test_unknown_to_ring_is_invalid_input() -> None:
    with pytest.raises(UserInputError, match="unknown ring 'pilto' for --to"):
        ring_waves(RINGS, HOSTS, "pilto")


def _applied(status: str) -> HostResult:
    return HostResult(host="x", status=status)  # type: ignore[arg-type]


def _verified(*statuses: str) -> HostVerification:
    results = tuple(
        CheckResult(check_id=f"p/r/{i}", title="t", status=s, expected="e", actual="a")  # type: ignore[arg-type]
        for i, s in enumerate(statuses)
    )
    failed = any(s != "passed" for s in statuses)
    return HostVerification(host="x", status="failed" if failed else "passed", results=results)


@pytest.mark.parametrize(
    ("apply_status", "checks", "ring_status", "reason"),
    [
        ("changed", ("passed", "passed"), "passed", ""),
        ("unchanged", ("passed",), "passed", ""),
        ("failed", ("passed",), "failed", "x: apply failed"),
        ("unreachable", (), "failed", "x: apply unreachable"),
        ("changed", ("passed", "failed"), "failed", "x: verify failed (p/r/1)"),
        (
            "changed",
            ("error", "failed", "failed", "failed"),
            "failed",
            "x: verify failed (p/r/0, p/r/1, p/r/2 (+1 more))",
        ),
    ],
)
def test_judge_ring(apply_status: str, checks: tuple, ring_status: str, reason: str) -> None:
    outcome = judge_ring("canary", ["x"], {"x": _applied(apply_status)}, {"x": _verified(*checks)})
    assert (outcome.status, outcome.reason) == (ring_status, reason)
    assert outcome.failed_hosts == (() if ring_status == "passed" else ("x",))
