"""Plan rendering: identical changes on many hosts shown once, counted; per-ring summary."""

from __future__ import annotations

from orchestrator.drift.changes import ResourceChange
from orchestrator.model.results import HostPlan
from orchestrator.report.plan import plan_document, render_plan_text

UPGRADE = ResourceChange(
    resource_id="package:acme-agent",
    policy="acme-agent",
    actions=("upgrade",),
    summary="acme-agent 1.0-1 -> 1.0-2",
)


def _conf(host: str) -> ResourceChange:
    return ResourceChange(
        resource_id="file:/etc/acme/agent.conf",
        policy="acme-agent",
        actions=("update",),
        summary="/etc/acme/agent.conf: content",
        diff=f"--- a\n+++ b\n@@ -1 +1 @@\n-name = old\n+name = {host}\n",
    )


PLANS = {
    "web-01": HostPlan(
        host="web-01", ring="canary", status="drifted", changes=(UPGRADE, _conf("web-01"))
    ),
    "web-02": HostPlan(
        host="web-02", ring="pilot", status="drifted", changes=(UPGRADE, _conf("web-02"))
    ),
    "web-03": HostPlan(host="web-03", ring="pilot", status="in-sync"),
    "web-04": HostPlan(
        host="web-04",
        ring="broad",
        status="unreachable",
        error="unreachable: Could not connect (timed out)",
    ),
}


def test_identical_changes_are_shown_once_with_their_host_count() -> None:
    text = render_plan_text(PLANS, ["canary", "pilot", "broad"])
    assert text.count("acme-agent 1.0-1 -> 1.0-2") == 1
    assert "~ package:acme-agent  [upgrade]  on 2 hosts: web-01, web-02" in text
    assert text.count("~ file:/etc/acme/agent.conf") == 1  # contents differ in some lines
    full = render_plan_text(PLANS, ["canary", "pilot", "broad"], full=True)
    assert full.count("~ file:/etc/acme/agent.conf") == 2
    assert "  ! web-04: unreachable: Could not connect (timed out)" in text
    assert text.splitlines()[0] == (
        "Plan: 4 hosts: 2 to change, 1 in sync, 1 unreachable, 0 failed"
    )


def test_plan_document_counts_per_ring() -> None:
    doc = plan_document(PLANS, ["canary", "pilot", "broad"], {"commit": "abc"})
    assert doc["schema"] == "patchring.plan/v1"
    assert doc["summary"]["changes"] == 4
    assert doc["rings"] == [
        {"ring": "canary", "hosts": 1, "in_sync": 0, "drifted": 1, "unreachable": 0, "failed": 0},
        {"ring": "pilot", "hosts": 2, "in_sync": 1, "drifted": 1, "unreachable": 0, "failed": 0},
        {"ring": "broad", "hosts": 1, "in_sync": 0, "drifted": 0, "unreachable": 1, "failed": 0},
    ]
