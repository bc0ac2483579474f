"""Run reports and the compliance page stay readable for a big fleet: 300 hosts x 200 checks.

Past `MATRIX_MAX_CHECKS` columns the run report shows a per-control table instead of the hosts x
checks matrix; headless Chromium lays both pages out and nothing on them scrolls sideways (the
matrix alone, forced on, does: the measurement can fail)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.model.patching import SlaDays, Urgency
from orchestrator.model.record import (
    GitSource,
    HostPatching,
    OpenCve,
    Operator,
    PatchingSection,
    RunRecord,
)
from orchestrator.model.verification import CheckResult, HostVerification
from orchestrator.report import html as html_report
from orchestrator.report.compliance import build_compliance
from orchestrator.report.compliance_render import render_compliance_html
from orchestrator.report.html import render_html
from tests.unit.test_report_html import CHROMIUM, dump_dom

STARTED = datetime(2026, 11, 20, 9, tzinfo=UTC)
HOSTS, CHECKS = 300, 200


def _check(host: int, check: int) -> CheckResult:
    status = "failed" if (host + check) % 97 == 0 else "waived" if check == 7 else "passed"
    return CheckResult.model_construct(
        check_id=f"hardening/setting:/etc/sysctl.d/90-fleet-{check:03}.conf:net.ipv4.value",
        title=f"fleet sysctl setting number {check}",
        status=status,
        expected="1",
        actual="0" if status == "failed" else "1",
        message="",
        evidence=(),
        source="generated",
        policy="hardening",
        resource_id=f"setting:/etc/sysctl.d/90-fleet-{check:03}.conf:net.ipv4",
        real_status="failed" if status == "waived" else None,
        waived_by="legacy-sysctl" if status == "waived" else None,
    )


def _ring(host: int) -> str:
    return "canary" if host < 10 else "broad"


def _record(kind: str, **fields: object) -> RunRecord:
    return RunRecord.model_validate(
        dict(
            id=f"20261120T090000Z-{kind}-beef",
            kind=kind,
            status="failed",
            started=STARTED,
            finished=STARTED + timedelta(minutes=9),
            tool_version="0.1.0",
            source=GitSource(repo="fleet", commit="cd" * 20),
            operator=Operator(user="ci", hostname="runner"),
            **fields,
        )
    )


def wide_verify() -> RunRecord:
    verify = tuple(
        HostVerification.model_construct(
            host=f"app-{h:03}.eu-west.example.internal",
            ring=_ring(h),
            status="failed",
            results=tuple(_check(h, c) for c in range(CHECKS)),
            error=None,
            remote_commands=1,
            seconds=1.0,
        )
        for h in range(HOSTS)
    )
    return _record("verify").model_copy(update={"verify": verify})


def wide_assess() -> RunRecord:
    def cve(n: int) -> OpenCve:
        return OpenCve(
            cve=f"CVE-2026-{40000 + n}",
            source=f"lib{n}",
            installed_source_version="1.0-1",
            urgency=Urgency.HIGH if n % 2 else Urgency.MEDIUM,
            status="resolved",
            fixed_version="1.0-2",
            fix_available=True,
            fixed_by=(f"lib{n} 1.0-2",),
        )

    hosts = tuple(
        HostPatching(
            host=f"app-{h:03}.eu-west.example.internal",
            ring=_ring(h),
            status="assessed",
            codename="bookworm",
            open_cves=tuple(cve(n) for n in range(40) if (h + n) % 3),
        )
        for h in range(HOSTS)
    )
    return _record("assess", patching=PatchingSection(rings=("canary", "broad"), hosts=hosts))


def test_a_wide_run_report_summarises_per_control_instead_of_the_matrix() -> None:
    page = render_html(wide_verify())
    assert 'class="matrix"' not in page
    assert 'class="data per-control"' in page
    assert page.count('<code class="check-id">') >= CHECKS  # every check id as visible text
    assert "200 checks on 300 hosts" in page


def test_a_small_run_report_keeps_its_matrix() -> None:
    small = wide_verify()
    small = small.model_copy(
        update={
            "verify": tuple(
                v.model_copy(update={"results": v.results[:5]}) for v in small.verify[:4]
            )
        }
    )
    page = render_html(small)
    assert 'class="matrix"' in page
    assert 'class="data per-control"' not in page


_MEASURE = """<script>
const wide = [...document.querySelectorAll('*')].filter(e => {
  const x = getComputedStyle(e).overflowX;
  return (x === 'auto' || x === 'scroll') && e.scrollWidth > e.clientWidth + 1;
});
document.title = 'LAYOUT ' + document.documentElement.scrollWidth + ' ' + window.innerWidth
  + ' ' + wide.length;
</script>"""


def _layout(page_html: str, tmp_path: Path) -> tuple[int, int, int]:
    """Chromium's layout of the page at 1400 px: the page's scroll width, the viewport width,
    and how many elements scroll sideways."""
    page = tmp_path / "page.html"
    page.write_text(page_html.replace("</body>", _MEASURE + "</body>"), encoding="utf-8")
    dom = dump_dom(page, tmp_path / "profile")
    found = re.search(r"<title>LAYOUT (\d+) (\d+) (\d+)</title>", dom)
    assert found, dom[:500]
    body, viewport, scrollers = (int(g) for g in found.groups())
    return body, viewport, scrollers


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh does)")
def test_wide_pages_never_scroll_sideways_in_chromium(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = wide_verify()
    body, viewport, scrollers = _layout(render_html(record), tmp_path)
    assert viewport == 1400
    assert body <= viewport
    assert scrollers == 0
    view = build_compliance([wide_assess(), record], STARTED + timedelta(days=30), SlaDays())
    body, viewport, scrollers = _layout(render_compliance_html(view), tmp_path)
    assert (body <= viewport, scrollers) == (True, 0)
    # the measurement can fail: the hosts x checks matrix, forced on, scrolls sideways
    monkeypatch.setattr(html_report, "MATRIX_MAX_CHECKS", CHECKS)
    _, _, scrollers = _layout(render_html(record), tmp_path)
    assert scrollers >= 1
