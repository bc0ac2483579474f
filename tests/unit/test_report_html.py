"""The renderers (HTML, JUnit XML, Markdown) and `write_reports`, against the fixed failed rollout
of `test_report_record`; and the HTML page screenshotted by a headless Chromium."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from orchestrator.model.record import GitSource, RunRecord
from orchestrator.model.verification import HostVerification
from orchestrator.report.files import write_reports
from orchestrator.report.html import render_html
from orchestrator.report.junit import render_junit
from orchestrator.report.markdown import render_markdown
from orchestrator.report.masking import MASK, Masker
from orchestrator.store import StoreError, dump_record
from tests.unit.test_report_record import TOKEN, failed_rollout

MASKER = Masker.from_vars({"agent_token": TOKEN})
VOID = {"meta", "wbr", "br", "img", "hr", "input", "link"}


class _Page(HTMLParser):
    """Checks tags balance and collects the matrix: host row -> the classes of its cells."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.rows: dict[str, list[str]] = {}
        self.titles: list[str] = []
        self._row: list[str] | None = None
        self._in_host = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag not in VOID:
            self.open.append(tag)
        classes = (a.get("class") or "").split()
        if tag == "tr" and "host-row" in classes:
            self._row = []
        if tag == "th" and "host" in classes:
            self._in_host = True
        if tag == "td" and self._row is not None:
            self._row.append(classes[1] if classes[:1] == ["cell"] else "gap")
            self.titles.append(a.get("title") or "")

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1:]}>"
        self.open.pop()
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._in_host and self._row is not None:
            self.rows[data] = self._row
            self._in_host = False


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    assert page.open == []
    return page


# --- HTML ----------------------------------------------------------------------------------------


def test_html_summary_comes_first_with_status_compliance_and_commit() -> None:
    html = render_html(failed_rollout())
    summary = html[: html.index("Hosts &times; checks")]
    for text in (
        "Rollout halted in ring canary; later rings were not touched",
        '<span class="status-badge halted">halted</span>',
        "Checks passed",
        '<div class="kpi-value">12<span class="of">/ 18</span>',
        '<div class="kpi-value">0<span class="of">/ 2</span>',  # 4 hosts not reached
        "Reached hosts compliant",
        "2 not compliant · 4 not reached (not counted)",
        "9c1e4b2a7f3d5e6c8b9a0d1e2f3a4b5c6d7e8f90",
        "acme-agent: upgrade to 1.0-2 fleet-wide",
        "Dana Ops &lt;dana@example.com&gt;",
        "20261127T031840Z-rollout-3fa2",
        "runner@ci-worker-3",
        "GitHub Actions",
        "2 of 2 hosts failed; the ring&#39;s budget allows 0",  # markupsafe spells it &#39;
        "templates/agent.conf.j2",
    ):
        assert text in summary, text
    assert summary.index("canary") < summary.index("pilot") < summary.index("broad")
    assert "Uncommitted changes" not in html and "Emergency run" not in html


def test_html_matrix_rows_by_ring_and_cells_with_symbols() -> None:
    page = _parse(render_html(failed_rollout()))
    apply_and_checks = ["failed", "failed", *["passed"] * 3, "failed", *["passed"] * 3]
    assert page.rows["web-01"] == [*apply_and_checks, "failed"]
    assert page.rows["web-02"] == [*apply_and_checks, "error"]
    for host in ("web-03", "web-04", "web-05", "web-06"):
        assert page.rows[host] == ["none", "gap"]
    assert list(page.rows) == ["web-01", "web-02", "web-03", "web-04", "web-05", "web-06"]
    assert any("failed: expected running, got inactive" in t for t in page.titles)


def test_html_lists_every_failure_with_evidence_and_the_dpkg_error() -> None:
    html = render_html(failed_rollout())
    failures = html[html.index("<h2>Failures") :]
    assert failures.count("acme-agent: simulated broken postinst") == 2
    assert failures.count('class="failure"') == 6 and failures.count("apply failed") == 2
    assert "$ systemctl is-active acme-agent" in failures
    assert '<span class="exit bad">exit 3</span>' in failures
    assert '<code class="actual">half-configured</code>' in failures
    assert '<a href="#f1">✗</a>' in html  # failed cells link to their details


def test_html_escapes_everything_and_is_self_contained() -> None:
    html = render_html(failed_rollout())
    assert "port 7070 &lt;closed&gt; &amp; nothing listening" in html
    assert "<closed>" not in html
    for external in ("<script", "<link", "src=", "url(", "@import", "<iframe"):
        assert external not in html
    _parse(html)


def test_html_masks_secrets_from_errors_and_evidence() -> None:
    assert TOKEN in render_html(failed_rollout())
    html = render_html(failed_rollout(), MASKER)
    assert TOKEN not in html and f"api?token={MASK}" in html


def test_html_warns_of_dirty_trees_missing_commits_and_emergencies() -> None:
    record = failed_rollout()
    dirty = record.model_copy(
        update={
            "source": record.source.model_copy(update={"dirty": True}),
            "emergency_reason": "CVE-2026-10001 exploited; INC-77",
        }
    )
    html = render_html(dirty)
    assert "Uncommitted changes." in html and "uncommitted changes</span>" in html
    assert "Emergency run.</strong> Reason given: CVE-2026-10001 exploited; INC-77" in html
    bare = record.model_copy(update={"source": GitSource(repo="/srv/p")})
    assert "No Git commit." in render_html(bare)


def _passing() -> RunRecord:
    record = failed_rollout()
    verify = tuple(
        v.model_copy(
            update={
                "status": "passed",
                "results": tuple(
                    c.model_copy(update={"status": "passed", "actual": c.expected})
                    for c in v.results
                ),
            }
        )
        for v in record.verify
    )
    return record.model_copy(
        update={"kind": "verify", "status": "succeeded", "apply": (), "rings": (), "verify": verify}
    )


def test_html_of_a_passing_verify_run() -> None:
    html = render_html(_passing())
    assert "Verify succeeded: 2 of 2 hosts compliant" in html
    assert "No failures: every check that ran passed" in html
    assert "nothing applied in this run" in html
    _parse(html)


def test_unreachable_host_shows_why_in_the_matrix_and_in_junit() -> None:
    record = _passing()
    down = HostVerification(
        host="web-02", ring="canary", status="unreachable", error="unreachable: timed out"
    )
    record = record.model_copy(update={"status": "failed", "verify": (record.verify[0], down)})
    page = _parse(render_html(record))
    assert page.rows["web-02"] == ["gap"]
    assert "unreachable: timed out" in render_html(record)
    root = ET.fromstring(render_junit(record))
    error = root.find("testsuite[@name='web-02']/testcase[@name='verify']/error")
    assert error is not None and error.get("message") == "unreachable: timed out"


# --- JUnit ---------------------------------------------------------------------------------------


def test_junit_is_valid_xml_with_correct_counts() -> None:
    root = ET.fromstring(render_junit(failed_rollout()))
    cases = root.findall("testsuite/testcase")
    counted = {
        "tests": len(cases),
        "failures": sum(c.find("failure") is not None for c in cases),
        "errors": sum(c.find("error") is not None for c in cases),
        "skipped": sum(c.find("skipped") is not None for c in cases),
    }
    assert counted == {"tests": 30, "failures": 7, "errors": 1, "skipped": 6}
    assert {k: int(root.get(k, "-1")) for k in counted} == counted
    for suite in root.findall("testsuite"):
        suite_cases = suite.findall("testcase")
        assert int(suite.get("tests", "-1")) == len(suite_cases)
        assert int(suite.get("failures", "-1")) == sum(
            c.find("failure") is not None for c in suite_cases
        )
    assert [s.get("name") for s in root.findall("testsuite")] == [f"web-0{i}" for i in range(1, 7)]


def test_junit_testcase_per_host_and_check_with_expected_actual_and_evidence() -> None:
    root = ET.fromstring(render_junit(failed_rollout()))
    case = root.find("testsuite/testcase[@name='acme-agent/service:acme-agent/running']")
    assert case is not None and case.get("classname") == "web-01"
    prop = case.find("properties/property[@name='host']")
    assert prop is not None and prop.get("value") == "web-01"
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == "expected running, got inactive"
    assert failure.text is not None
    assert "$ systemctl is-active acme-agent\nexit status 3\ninactive" in failure.text
    error = root.find(
        "testsuite[@name='web-02']/testcase[@name='acme-agent/checks/test_agent.py::"
        "test_agent_listens']/error"
    )
    assert error is not None and error.get("type") == "CheckError"


def test_junit_apply_failures_and_unreached_hosts_are_testcases() -> None:
    root = ET.fromstring(render_junit(failed_rollout(), MASKER))
    apply = root.find("testsuite[@name='web-01']/testcase[@name='apply/package:acme-agent']")
    assert apply is not None
    failure = apply.find("failure")
    assert failure is not None and failure.text is not None
    assert "acme-agent: simulated broken postinst" in failure.text
    assert TOKEN not in failure.text and MASK in failure.text
    skipped = root.find("testsuite[@name='web-05']/testcase[@name='run']/skipped")
    assert skipped is not None
    assert skipped.get("message") == ("not reached: the run stopped before this host's ring")


def test_junit_survives_control_characters_from_hosts() -> None:
    record = failed_rollout()
    verify = record.verify[0]
    odd = verify.results[0].model_copy(update={"actual": "\x1b[31mhalf\x00-configured\x1b[0m"})
    record = record.model_copy(
        update={"verify": (verify.model_copy(update={"results": (odd,)}), *record.verify[1:])}
    )
    root = ET.fromstring(render_junit(record))
    failure = root.find(
        "testsuite/testcase[@name='acme-agent/package:acme-agent/installed']/failure"
    )
    assert failure is not None and failure.get("message") == (
        "expected installed, got half\\x00-configured"
    )


# --- Markdown ------------------------------------------------------------------------------------


def test_markdown_summary_for_a_ci_job() -> None:
    text = render_markdown(failed_rollout(), MASKER, limit=2)
    lines = text.splitlines()
    assert lines[0] == (
        "### ❌ patchring: Rollout halted in ring canary; later rings were not touched"
    )
    assert (
        "**0/2 reached hosts compliant** (4 not reached) · **12/18 checks passed** (67%)"
        " · **2 apply failures**" in text
    )
    assert (
        "- **Commit** `9c1e4b2a7f3d` *acme-agent: upgrade to 1.0-2 fleet-wide* by Dana Ops" in text
    )
    assert (
        "| canary | ❌ failed | 0/2 | 12/18 | 2 of 2 hosts failed; the ring's budget allows 0 |"
        in text
    )
    assert "| pilot | ⏸️ not started | 0/2 | 0/0 | halted at canary |" in text
    assert text.count("acme-agent: simulated broken postinst") == 1  # same error, shown once
    assert "`package:acme-agent` failed on `web-01`, `web-02`:" in text
    assert "**Failed checks** (first 2 of 6; see the HTML report)" in text
    row = "| web-01 | ❌ `acme-agent/package:acme-agent/installed` | `installed` |"
    assert f"{row} `half-configured` |" in text
    assert TOKEN not in text


def test_markdown_table_cells_cannot_break_the_table() -> None:
    record = failed_rollout()
    verify = record.verify[0]
    odd = verify.results[0].model_copy(update={"actual": "a | b\nc `d`"})
    record = record.model_copy(
        update={"verify": (verify.model_copy(update={"results": (odd,)}), *record.verify[1:])}
    )
    text = render_markdown(record)
    assert "`` a \\| b c `d` ``" in text


# --- files ---------------------------------------------------------------------------------------


def test_write_reports_writes_every_format_next_to_the_record(tmp_path: Path) -> None:
    record = failed_rollout()
    files = write_reports(record, tmp_path / "runs", MASKER)
    assert {name: path.name for name, path in files.items()} == {
        "html": f"{record.id}.html",
        "junit": f"{record.id}.junit.xml",
        "markdown": f"{record.id}.md",
        "json": f"{record.id}.json",
    }
    assert files["html"].read_text() == render_html(record, MASKER)
    assert json.loads(files["json"].read_text())["id"] == record.id
    for path in files.values():
        assert TOKEN not in path.read_text()
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(
        p.name for p in files.values()
    )
    unmasked = write_reports(record, tmp_path / "plain")
    assert unmasked["json"].read_text() == dump_record(record)


def test_write_reports_to_an_unwritable_folder_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match="could not write the reports of run"):
        write_reports(failed_rollout(), tmp_path / "file" / "runs")


# --- the page in a real browser ------------------------------------------------------------------

CHROMIUM = shutil.which("chromium")


def _chromium(page: Path, profile: Path, action: str, timeout: float) -> str:
    """Headless Chromium at 1400 x 1800 with no network of its own, doing `action` on `page`."""
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--window-size=1400,1800",
            action,
            f"file://{page}",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.stdout


def _screenshot(page: Path, png: Path, profile: Path) -> None:
    _chromium(page, profile, f"--screenshot={png}", timeout=120)


def dump_dom(page: Path, profile: Path) -> str:
    """The DOM headless Chromium ends with after loading `page` (its scripts run)."""
    return _chromium(page, profile, "--dump-dom", timeout=180)


def _png_size(png: Path) -> tuple[int, int, float]:
    """Width, height, and the share of non-zero bytes in the (filtered) pixel data."""
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, pixels, size = 8, b"", (0, 0)
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            pixels += body
        pos += 12 + length
    raw = zlib.decompress(pixels)
    return size[0], size[1], 1 - raw.count(0) / len(raw)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh does)")
def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    report, blank = tmp_path / "report.html", tmp_path / "blank.html"
    report.write_text(render_html(failed_rollout()), encoding="utf-8")
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    _screenshot(report, tmp_path / "report.png", tmp_path / "profile")
    _screenshot(blank, tmp_path / "blank.png", tmp_path / "profile")
    shot = tmp_path / "report.png"
    assert shot.exists()
    width, height, ink = _png_size(shot)
    assert (width, height) == (1400, 1800)
    assert shot.stat().st_size > 5 * (tmp_path / "blank.png").stat().st_size
    assert ink > max(0.01, 5 * _png_size(tmp_path / "blank.png")[2])


def _with_multiline_message(record: RunRecord) -> RunRecord:
    verify = record.verify[0]
    result = verify.results[0].model_copy(
        update={"message": "assert 'a' == 'b'\n  - b\n  + a", "actual": "line one\nline two"}
    )
    changed = verify.model_copy(update={"results": (result, *verify.results[1:])})
    return record.model_copy(update={"verify": (changed, *record.verify[1:])})


def test_multi_line_failure_texts_keep_their_lines() -> None:
    record = _with_multiline_message(failed_rollout())
    text = render_markdown(record, MASKER, limit=2)
    assert "```text\nline one\nline two\nassert 'a' == 'b'\n  - b\n  + a\n```" in text
    html = render_html(record)
    assert "p.message, code.actual { white-space: pre-wrap; }" in html
    assert "assert &#39;a&#39; == &#39;b&#39;\n  - b\n  + a" in html


def test_the_failure_count_says_how_many_hosts_it_spans() -> None:
    html = render_html(failed_rollout())
    assert '<h2>Failures <span class="count">8 on 2 hosts</span></h2>' in html
    assert "1 apply failure · 3 failed checks" in html


_READ_BACK = """<script>
const message = [...document.querySelectorAll('p.message')]
  .find(m => m.textContent.includes("assert 'a'"));
const height = message.getBoundingClientRect().height;
const line = parseFloat(getComputedStyle(message).lineHeight);
const kpi = [...document.querySelectorAll('.kpi')].find(k => /hosts compliant/.test(k.innerText));
const evidence = Math.max(...[...document.querySelectorAll('.evidence pre')]
  .map(p => p.innerText.split('\\n').length), 0);
document.title = 'SEEN ' + JSON.stringify({
  lines: Math.round(height / line),
  kpi: kpi.innerText.replace(/\\s+/g, ' ').trim(),
  failures: document.querySelector('h2 .count').innerText,
  evidence: evidence,
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/setup.sh does)")
def test_the_report_a_reader_sees_in_chromium(tmp_path: Path) -> None:
    """The HTML stumbles as a browser lays them out: a multi-line failure text keeps its lines,
    hosts the rollout never reached are not counted as non-compliant, the failure count spans
    its hosts, and a failing check's evidence is clipped rather than a whole file."""
    record = _with_multiline_message(failed_rollout())
    verify = record.verify[0]
    flooded = verify.results[1].model_copy(
        update={
            "evidence": (
                verify.results[1]
                .evidence[0]
                .model_copy(update={"stdout": "".join(f"line {n}\n" for n in range(400))}),
            )
            if verify.results[1].evidence
            else ()
        }
    )
    record = record.model_copy(
        update={
            "verify": (
                verify.model_copy(
                    update={"results": (verify.results[0], flooded, *verify.results[2:])}
                ),
                *record.verify[1:],
            )
        }
    )
    page = tmp_path / "report.html"
    page.write_text(render_html(record).replace("</body>", _READ_BACK + "</body>"), "utf-8")
    dom = dump_dom(page, tmp_path / "profile")
    import html as html_text
    import re

    found = re.search(r"<title>SEEN (.*?)</title>", dom)
    assert found, dom[:500]
    seen = json.loads(html_text.unescape(found.group(1)))
    assert seen["lines"] >= 3  # "assert 'a' == 'b'", "- b", "+ a": not one paragraph
    assert seen["kpi"].startswith("Reached hosts compliant 0/ 2")  # as rendered: "0" "/ 2"
    assert "4 not reached (not counted)" in seen["kpi"]
    assert seen["failures"] == "8 on 2 hosts"
    assert 0 < seen["evidence"] <= 42  # 40 lines kept and a line saying how many were cut
