"""The exposure summary of an assess record (per ring, hosts exposed per urgency; per CVE, the
hosts still open), and how the HTML, Markdown and JUnit renderers show it, against one fixed
assessment: 2 rings, 5 hosts, 5 CVEs, one host unreachable with a secret in its error."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jinja2 import UndefinedError

from orchestrator.model.patching import Urgency
from orchestrator.model.record import (
    HostPatching,
    OpenCve,
    PatchingSection,
    PendingPackage,
    RunRecord,
)
from orchestrator.patching.summary import unassessed_host
from orchestrator.report.assess import patching_section
from orchestrator.report.exposure import RingExposure, build_exposure, exposure_headline
from orchestrator.report.files import render_reports
from orchestrator.report.html import render_html
from orchestrator.report.junit import render_junit
from orchestrator.report.markdown import render_markdown
from orchestrator.report.masking import MASK, Masker
from orchestrator.report.templating import environment
from orchestrator.store import dump_record
from tests.unit.test_report_assess import _web
from tests.unit.test_report_html import CHROMIUM, _png_size, _screenshot
from tests.unit.test_report_record import STARTED, TOKEN, failed_rollout


def _cve(
    cve: str, source: str, urgency: Urgency, fixed: str | None = None, fix: str | None = None
) -> OpenCve:
    return OpenCve(
        cve=cve,
        source=source,
        installed_source_version="1.0-1",
        urgency=urgency,
        status="resolved" if fixed else "open",
        fixed_version=fixed,
        fix_available=fix is not None,
        fixed_by=(fix,) if fix else (),
    )


AGENT_FIXED = _cve("CVE-2026-0001", "acme-agent", Urgency.HIGH, "1.0-2", "acme-agent 1.0-2")


def section() -> PatchingSection:
    security = PendingPackage(
        package="acme-agent",
        installed_version="1.0-1",
        candidate_version="1.0-2",
        classification="security",
    )
    other = PendingPackage(package="tzdata", candidate_version="2026a-1", classification="other")
    return PatchingSection(
        security_data="data/tracker.json",
        rings=("canary", "broad"),
        hosts=(
            HostPatching(
                host="web-01",
                ring="canary",
                status="assessed",
                codename="bookworm",
                pending=(security, other),
                open_cves=(
                    AGENT_FIXED,
                    _cve("CVE-2026-0002", "acme-agent", Urgency.MEDIUM),
                ),
            ),
            HostPatching(
                host="web-02",
                ring="canary",
                status="assessed",
                codename="bookworm",
                reboot_required=True,
                open_cves=(
                    _cve("CVE-2026-0001", "acme-agent", Urgency.HIGH, "1.0-2"),
                    _cve("CVE-2026-0003", "openssl", Urgency.LOW, "3.0.9-1", "libssl3 3.0.9-1"),
                ),
            ),
            HostPatching(
                host="web-03",
                ring="broad",
                status="assessed",
                codename="trixie",
                pending=(security,),
                open_cves=(
                    _cve(
                        "CVE-2026-0001",
                        "acme-agent",
                        Urgency.HIGH,
                        "1.0-1+deb13u1",
                        "acme-agent 1.0-1+deb13u1",
                    ),
                    _cve("CVE-2019-18276", "bash", Urgency.UNIMPORTANT),
                ),
            ),
            HostPatching(
                host="web-04",
                ring="broad",
                status="assessed",
                codename="trixie",
                open_cves=(_cve("CVE-2026-0004", "zlib", Urgency.NOT_YET_ASSIGNED),),
            ),
            HostPatching(
                host="web-05",
                ring="broad",
                status="unreachable",
                error=f"unreachable: ssh said token={TOKEN}",
            ),
        ),
    )


def assess_record(patching: PatchingSection | None = None) -> RunRecord:
    base = failed_rollout()
    return base.model_copy(
        update={
            "id": "20261127T031840Z-assess-3fa2",
            "kind": "assess",
            "status": "failed",
            "finished": STARTED + timedelta(seconds=4),
            "apply": (),
            "verify": (),
            "rings": (),
            "patching": patching or section(),
        }
    )


# --- the builder ---------------------------------------------------------------------------------


def _counts(ring: RingExposure) -> dict[str, tuple[int, int]]:
    return {c.urgency: (c.exposed, c.fix_available) for c in ring.by_urgency}


def test_hosts_exposed_per_ring_and_urgency_with_fixes_available() -> None:
    view = build_exposure(section())
    canary, broad = view.rings
    assert (canary.ring, canary.hosts, canary.assessed, canary.exposed) == ("canary", 2, 2, 2)
    assert _counts(canary) == {
        "high": (2, 1),  # web-02's repositories lack the fix
        "medium": (1, 0),
        "low": (1, 1),
        "unimportant": (0, 0),
    }
    assert (canary.security_updates, canary.reboot_required) == (1, 1)
    assert (broad.ring, broad.hosts, broad.assessed, broad.exposed) == ("broad", 3, 2, 2)
    # `not yet assigned` counts as high: web-04 is exposed at high, with no fix
    assert _counts(broad) == {
        "high": (2, 1),
        "medium": (0, 0),
        "low": (0, 0),
        "unimportant": (1, 0),
    }
    assert (view.hosts_total, view.hosts_assessed, view.hosts_exposed) == (5, 4, 4)
    assert view.hosts_high_fixable == 2
    assert [h.host for h in view.not_assessed] == ["web-05"]
    assert exposure_headline(view) == (
        "Assess: 4 of 4 hosts exposed to open CVEs, 4 at high urgency; 1 not assessed"
    )


def test_cves_sorted_by_urgency_then_hosts_open_with_the_fix_per_host() -> None:
    cves = build_exposure(section()).cves
    assert [(c.cve, c.urgency.value, len(c.hosts)) for c in cves] == [
        ("CVE-2026-0001", "high", 3),
        ("CVE-2026-0004", "not yet assigned", 1),
        ("CVE-2026-0002", "medium", 1),
        ("CVE-2026-0003", "low", 1),
        ("CVE-2019-18276", "unimportant", 1),
    ]
    agent = cves[0]
    assert agent.source == "acme-agent"
    assert agent.fixed_versions == ("1.0-1+deb13u1", "1.0-2")  # bookworm's and trixie's
    assert [(h.host, h.ring, h.fix_available) for h in agent.hosts] == [
        ("web-01", "canary", True),
        ("web-02", "canary", False),
        ("web-03", "broad", True),
    ]
    assert agent.fix_available == 2
    assert cves[1].fixed_versions == ()


def test_rings_follow_the_inventory_order_and_hosts_without_ring_come_last() -> None:
    patching = section()
    hosts = (*patching.hosts, HostPatching(host="db-01", status="assessed", open_cves=()))
    view = build_exposure(
        patching.model_copy(update={"rings": ("broad", "canary"), "hosts": hosts})
    )
    assert [r.ring for r in view.rings] == ["broad", "canary", "(no ring)"]
    assert view.rings[2].exposed == 0


def test_without_security_data_nothing_is_called_exposed() -> None:
    patching = section()
    bare = patching.model_copy(
        update={
            "security_data": None,
            "hosts": tuple(h.model_copy(update={"open_cves": None}) for h in patching.hosts),
        }
    )
    view = build_exposure(bare)
    assert not view.tracked and view.cves == () and view.hosts_exposed == 0
    assert exposure_headline(view) == (
        "Assess: 2 of 4 hosts with security updates pending; 1 not assessed"
    )
    html = render_html(assess_record(bare))
    assert "No security data was read" in html and "Open CVEs" not in html
    assert "(no security data: open CVEs unknown)" in render_markdown(assess_record(bare))


def test_patching_section_keeps_what_the_record_needs_from_assess() -> None:
    states = {
        "web-01": _web(),
        "web-09": unassessed_host("web-09", "broad", "unreachable", "unreachable: timed out"),
    }
    result = patching_section(states, ["canary", "broad"], "data/tracker.json")
    web, down = result.hosts
    assert (web.security_updates, web.other_updates, web.reboot_required) == (1, 1, True)
    assert web.open_cves is not None
    [cve] = web.open_cves
    assert (cve.cve, cve.urgency, cve.fix_available, cve.fixed_by) == (
        "CVE-2026-1",
        Urgency.HIGH,
        True,
        ("libssl3 3.0.22-1~deb12u2",),
    )
    assert (down.status, down.error, down.open_cves) == (
        "unreachable",
        "unreachable: timed out",
        None,
    )


# --- the record ----------------------------------------------------------------------------------


def test_record_keeps_the_section_and_older_records_still_load() -> None:
    record = assess_record()
    again = RunRecord.model_validate_json(dump_record(record))
    assert again == record
    old = json.loads(dump_record(failed_rollout()))
    del old["patching"]  # a record written before the section existed
    assert RunRecord.model_validate(old).patching is None


def test_every_rendering_of_an_assess_record_is_masked() -> None:
    masker = Masker.from_vars({"agent_token": TOKEN})
    for name, text in render_reports(assess_record(), masker).items():
        assert TOKEN not in text, name
        assert f"token={MASK}" in text.replace("\\*", "*"), name  # Markdown escapes the stars


# --- HTML ----------------------------------------------------------------------------------------


class _Exposure(HTMLParser):
    """Collects the exposure table's cells by ring and the CVE table's rows."""

    def __init__(self) -> None:
        super().__init__()
        self.rings: dict[str, dict[str, tuple[int, int]]] = {}
        self.cves: list[str] = []
        self.chips: dict[str, list[tuple[str, bool]]] = {}
        self._ring: str | None = None
        self._cve: str | None = None
        self._chip: bool | None = None
        self._ring_name = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "tr" and "ring-exposure" in classes:
            self._ring_name = True
        if tag == "td" and "data-urgency" in a and self._ring is not None:
            self.rings[self._ring][a["data-urgency"] or ""] = (
                int(a["data-exposed"] or -1),
                int(a["data-fixable"] or -1),
            )
        if tag == "tr" and "cve-row" in classes:
            self._cve = a["data-cve"]
            self.cves.append(self._cve or "")
            self.chips[self._cve or ""] = []
        if tag == "span" and "host-chip" in classes and self._cve is not None:
            self._chip = "fix" in classes

    def handle_data(self, data: str) -> None:
        if self._ring_name and data.strip():
            self._ring, self._ring_name = data, False
            self.rings[data] = {}
        if self._chip is not None and self._cve is not None:
            self.chips[self._cve].append((data, self._chip))
            self._chip = None

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._ring = self._cve = None


def test_html_shows_the_exposure_summary_with_the_right_counts() -> None:
    html = render_html(assess_record())
    page = _Exposure()
    page.feed(html)
    assert page.rings == {
        "canary": {"high": (2, 1), "medium": (1, 0), "low": (1, 1), "unimportant": (0, 0)},
        "broad": {"high": (2, 1), "medium": (0, 0), "low": (0, 0), "unimportant": (1, 0)},
    }
    assert page.cves == [
        "CVE-2026-0001",
        "CVE-2026-0004",
        "CVE-2026-0002",
        "CVE-2026-0003",
        "CVE-2019-18276",
    ]
    assert page.chips["CVE-2026-0001"] == [("web-01", True), ("web-02", False), ("web-03", True)]
    assert '<span class="pill warn">on 2 of 3</span>' in html
    assert "Assess: 4 of 4 hosts exposed to open CVEs, 4 at high urgency; 1 not assessed" in html
    assert "<code>1.0-1+deb13u1</code>, <code>1.0-2</code>" in html
    assert "unreachable: ssh said token=" in html  # the host's reason, in the host table
    assert "Hosts &times; checks" not in html  # an assessment has no checks matrix
    for external in ("<script", "<link", "src=", "url(", "@import"):
        assert external not in html


def test_templates_escape_and_refuse_undefined_names() -> None:
    env = environment()
    assert env.from_string("{{ text }}").render(text="<b>&") == "&lt;b&gt;&amp;"
    with pytest.raises(UndefinedError):
        env.from_string("{{ missing }}").render()
    patching = section()
    hostile = patching.hosts[0].model_copy(update={"host": "<img src=x>"})
    html = render_html(assess_record(patching.model_copy(update={"hosts": (hostile,)})))
    assert "<img src=x>" not in html and "&lt;img src=x&gt;" in html


# --- Markdown and JUnit --------------------------------------------------------------------------


def test_markdown_shows_the_exposure_summary_and_the_cves() -> None:
    text = render_markdown(assess_record())
    assert text.splitlines()[0] == (
        "### ❌ patchring: Assess: 4 of 4 hosts exposed to open CVEs, 4 at high urgency; "
        "1 not assessed"
    )
    assert (
        "| Ring | Hosts | Security updates | Reboot | Exposed | High | Medium | Low | Unimportant |"
        in text
    )
    assert "| canary | 2 | 1 | 1 | 2 | 2 (1 fixable) | 1 | 1 (1 fixable) | 0 |" in text
    assert "| broad | 2 | 1 | 0 | 2 | 2 (1 fixable) | 0 | 0 | 1 |" in text
    assert (
        "| CVE-2026-0001 | `acme-agent` | high | `1.0-1+deb13u1`, `1.0-2` |"
        " `web-01` ✓, `web-02`, `web-03` ✓ | 2 of 3 |" in text
    )
    assert text.index("CVE-2026-0001") < text.index("CVE-2026-0004") < text.index("CVE-2019")
    assert "- `web-05` unreachable: unreachable: ssh said token=" in text
    assert "Failed checks" not in text and "hosts compliant" not in text


def test_junit_has_one_exposure_testcase_per_host() -> None:
    root = ET.fromstring(render_junit(assess_record()))
    cases = {
        s.get("name"): s.find("testcase[@name='exposure/high-with-fix']")
        for s in root.findall("testsuite")
    }
    assert list(cases) == ["web-01", "web-02", "web-03", "web-04", "web-05"]
    outcome = {
        host: next((child.tag for child in case if child.tag != "properties"), "passed")
        for host, case in cases.items()
        if case is not None
    }
    assert outcome == {
        "web-01": "failure",
        "web-02": "passed",  # its high CVE has no fix available yet
        "web-03": "failure",
        "web-04": "passed",
        "web-05": "error",
    }
    failure = cases["web-01"].find("failure")  # type: ignore[union-attr]
    assert failure is not None and failure.text == (
        "CVE-2026-0001 (acme-agent 1.0-1, high): fixed by acme-agent 1.0-2"
    )
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "2", "1")


# --- the page in a real browser ------------------------------------------------------------------


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh does)")
def test_assess_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    report, blank = tmp_path / "assess.html", tmp_path / "blank.html"
    report.write_text(render_html(assess_record()), encoding="utf-8")
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    _screenshot(report, tmp_path / "assess.png", tmp_path / "profile")
    _screenshot(blank, tmp_path / "blank.png", tmp_path / "profile")
    width, height, ink = _png_size(tmp_path / "assess.png")
    assert (width, height) == (1400, 1800)
    assert (tmp_path / "assess.png").stat().st_size > 5 * (tmp_path / "blank.png").stat().st_size
    assert ink > max(0.01, 5 * _png_size(tmp_path / "blank.png")[2])
