"""The text a rollout command ends with."""

from __future__ import annotations

from orchestrator.model.record import RingOutcome
from orchestrator.model.results import HostResult, ResourceOutcome
from orchestrator.model.verification import CheckResult, HostVerification
from orchestrator.report.rollout_text import rollout_summary


def test_a_completed_rollout_says_its_id_once_and_what_each_ring_changed() -> None:
    rings = [
        RingOutcome(ring="canary", hosts=("a",), status="passed"),
        RingOutcome(ring="broad", hosts=("b", "c"), status="passed"),
    ]
    restart = ResourceOutcome(
        resource_id="restart:acme-agent.service", policy="p", status="changed", summary="restart"
    )
    apply = [
        HostResult(host="a", status="changed", outcomes=(restart,)),
        HostResult(host="b", status="changed", outcomes=(restart,)),
        HostResult(host="c", status="unchanged"),
    ]
    assert rollout_summary("R1", "completed", "every ring passed its gate", rings, apply, []) == [
        "Rollout R1 completed: every ring passed its gate",
        "  ring canary     passed       1 host: 1 changed, 0 unchanged; "
        "restarted acme-agent.service on 1 host",
        "  ring broad      passed       2 hosts: 1 changed, 1 unchanged; "
        "restarted acme-agent.service on 1 host",
    ]


def test_a_halt_names_the_host_the_resource_and_the_end_of_the_error() -> None:
    why = "1 of 1 host failed (1 apply-failed); the failure budget allows 0"
    rings = [
        RingOutcome(ring="canary", hosts=("a",), status="failed", failed_hosts=("a",), reason=why),
        RingOutcome(ring="broad", hosts=("b",), status="not-started"),
    ]
    error = "\n".join(f"line {n}" for n in range(1, 10))
    failed = ResourceOutcome(
        resource_id="package:acme-agent", policy="p", status="failed", summary="", error=error
    )
    apply = [HostResult(host="a", status="failed", outcomes=(failed,))]
    check = CheckResult(
        check_id="acme/package:acme-agent/version",
        title="t",
        status="failed",
        expected="1.0-9",
        actual="1.0-2",
    )
    verify = [HostVerification(host="a", status="failed", results=(check,))]
    lines = rollout_summary("R2", "halted", f"ring canary halted: {why}", rings, apply, verify)
    assert lines == [
        f"Rollout R2 halted: ring canary halted: {why}",
        "  ring canary     failed       1 host: 0 changed, 0 unchanged, 1 failed",
        "  ring broad      not-started  1 host",
        "",
        "Failed hosts:",
        "  ! a (ring canary): package:acme-agent failed",
        "      ... (3 lines before; the run record has them all)",
        *[f"      line {n}" for n in range(4, 10)],
        "  ! a (ring canary): check acme/package:acme-agent/version failed",
        "      expected 1.0-9, found 1.0-2",
    ]
