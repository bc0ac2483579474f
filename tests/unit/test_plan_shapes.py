"""A template rendered per host: one diff shown, the varying lines marked and listed."""

from __future__ import annotations

from orchestrator.drift.changes import ResourceChange
from orchestrator.model.results import HostPlan
from orchestrator.report.plan import render_plan_text

DIFF = (
    "--- /etc/a.conf (current)\n+++ /etc/a.conf\n@@ -1,2 +1,3 @@\n [agent]\n+# reviewed\n"
    " name = {name}\n level = {level}\n"
)


def _plan(host: str, level: str) -> HostPlan:
    change = ResourceChange(
        resource_id="file:/etc/a.conf",
        policy="p",
        actions=("update",),
        summary="/etc/a.conf: content",
        diff=DIFF.format(name=host, level=level),
    )
    return HostPlan(host=host, status="drifted", changes=(change,))


def test_diffs_that_differ_in_some_lines_are_shown_once_with_what_varies() -> None:
    plans = {h: _plan(h, "info" if n % 2 else "warning") for n, h in enumerate(["a1", "a2", "a3"])}
    text = render_plan_text(plans, [])
    assert text.count("--- /etc/a.conf (current)") == 1
    assert "  ~ file:/etc/a.conf  [update]  on 3 hosts: a1, a2, a3\n" in text
    assert (
        "      3 variants; the diff of a1, lines marked * differ (`plan --full` shows each)" in text
    )
    assert "    *  name = a1\n    *  level = warning\n" in text
    assert "      *  name = …  a1, a2, a3 (a value per host)\n" in text
    assert "      *  level = …  warning (2 hosts), info (1 host)\n" in text


def test_full_shows_every_hosts_diff() -> None:
    plans = {h: _plan(h, "info") for h in ["a1", "a2"]}
    text = render_plan_text(plans, [], full=True)
    assert text.count("--- /etc/a.conf (current)") == 2
    assert "*" not in text


def test_identical_errors_are_listed_once_with_their_hosts() -> None:
    plans = {
        h: HostPlan(host=h, status="failed", error="not offered: acme-agent 1.0-9")
        for h in ["a1", "a2"]
    }
    text = render_plan_text(plans, [])
    assert "  ! a1, a2: not offered: acme-agent 1.0-9\n" in text
