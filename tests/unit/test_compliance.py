"""`patchring compliance` and its pure builder, against synthetic recorded runs: two assess runs
(2026-11-01 and 2026-11-20) and a verify run; SLA arithmetic at the day and time-zone
boundaries; `--as-of` between the two runs gives the earlier state; exit 3 when overdue; no
host is contacted."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from orchestrator.cli.main import main
from orchestrator.model.patching import SlaDays, Urgency
from orchestrator.model.record import (
    GitSource,
    HostPatching,
    OpenCve,
    Operator,
    PatchingSection,
    PendingPackage,
    RunRecord,
)
from orchestrator.model.verification import CheckResult, HostVerification
from orchestrator.report.compliance import (
    build_compliance,
    due_date,
    is_overdue,
    parse_as_of,
    sla_days_for,
)
from orchestrator.report.compliance_render import (
    compliance_document,
    render_compliance_html,
    render_compliance_markdown,
)
from orchestrator.store import RunStore

FIRST = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
SECOND = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SLA = SlaDays(high=7, medium=30, low=90)
SSL = "CVE-2026-1111"  # high, fixed by libssl3 3.0.22-1 (pending on both hosts on day 1)
ZLIB = "CVE-2026-2222"  # medium, no fix available
ACCEPTED = "CVE-2026-3333"


# --- SLA arithmetic ------------------------------------------------------------------------------


def test_due_is_the_sla_days_after_the_utc_day_the_fix_was_first_seen() -> None:
    assert due_date(datetime(2026, 12, 1, 0, 0, tzinfo=UTC), 7) == date(2026, 12, 8)
    assert due_date(datetime(2026, 12, 1, 23, 59, tzinfo=UTC), 7) == date(2026, 12, 8)
    assert due_date(datetime(2026, 12, 1, 12, 0, tzinfo=UTC), 0) == date(2026, 12, 1)


def test_a_first_seen_time_in_another_zone_counts_on_its_utc_day() -> None:
    late_in_brazil = datetime(2026, 12, 1, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    early_in_tokyo = datetime(2026, 12, 2, 3, 0, tzinfo=timezone(timedelta(hours=9)))
    assert due_date(late_in_brazil, 7) == date(2026, 12, 9)  # 2026-12-02 01:30 UTC
    assert due_date(early_in_tokyo, 7) == date(2026, 12, 8)  # 2026-12-01 18:00 UTC


def test_overdue_from_the_day_after_the_due_day() -> None:
    due = date(2026, 12, 8)
    assert not is_overdue(due, parse_as_of("2026-12-08"))  # the whole due day is in time
    assert is_overdue(due, parse_as_of("2026-12-09T00:00:00Z"))
    # 2026-12-09 00:30 in Paris is still 2026-12-08 in UTC
    assert not is_overdue(due, parse_as_of("2026-12-09T00:30:00+01:00"))


def test_as_of_a_date_is_the_end_of_that_day_utc_and_needs_a_zone_with_a_time() -> None:
    assert parse_as_of("2026-11-10") == datetime(2026, 11, 10, 23, 59, 59, 999999, tzinfo=UTC)
    assert parse_as_of("2026-11-10T08:00:00+02:00") == datetime(2026, 11, 10, 6, tzinfo=UTC)
    for bad in ("2026-11-10T08:00:00", "10/11/2026", "2026-13-01", "yesterday"):
        with pytest.raises(ValueError, match="is not a date"):
            parse_as_of(bad)


def test_urgency_buckets_choose_the_sla() -> None:
    assert sla_days_for(SLA, Urgency.HIGH) == 7
    assert sla_days_for(SLA, Urgency.NOT_YET_ASSIGNED) == 7  # unassessed counts as high
    assert sla_days_for(SLA, Urgency.MEDIUM) == 30
    assert sla_days_for(SLA, Urgency.END_OF_LIFE) is None  # unimportant: no deadline


# --- synthetic history ---------------------------------------------------------------------------


def _cve(cve: str, urgency: Urgency, fix: str | None) -> OpenCve:
    return OpenCve(
        cve=cve,
        source="openssl" if fix else "zlib",
        installed_source_version="3.0.20-1",
        urgency=urgency,
        status="resolved" if fix else "open",
        fixed_version="3.0.22-1" if fix else None,
        fix_available=fix is not None,
        fixed_by=(fix,) if fix else (),
    )


SSL_OPEN = _cve(SSL, Urgency.HIGH, "libssl3 3.0.22-1")
ZLIB_OPEN = _cve(ZLIB, Urgency.MEDIUM, None)
SSL_PENDING = PendingPackage(
    package="libssl3",
    installed_version="3.0.20-1",
    candidate_version="3.0.22-1",
    classification="security",
)


def _host(name: str, ring: str, cves: tuple[OpenCve, ...], **more: object) -> HostPatching:
    pending = (SSL_PENDING,) if SSL_OPEN in cves else ()
    return HostPatching.model_validate(
        dict(
            host=name,
            ring=ring,
            status="assessed",
            codename="bookworm",
            pending=pending,
            open_cves=cves,
            **more,
        )
    )


def _record(run_id: str, started: datetime, **fields: object) -> RunRecord:
    return RunRecord.model_validate(
        dict(
            id=run_id,
            status="succeeded",
            started=started,
            finished=started + timedelta(minutes=1),
            tool_version="0.1.0",
            source=GitSource(repo="fleet", commit="ab" * 20),
            operator=Operator(user="ci", hostname="runner"),
            **fields,
        )
    )


def history() -> list[RunRecord]:
    first = _record(
        "20261101T090000Z-assess-0001",
        FIRST,
        kind="assess",
        patching=PatchingSection(
            rings=("canary", "broad"),
            hosts=(
                _host("web-01", "canary", (SSL_OPEN, ZLIB_OPEN)),
                _host("web-02", "broad", (SSL_OPEN,), accepted_cves=(ACCEPTED,)),
            ),
        ),
    )
    second = _record(
        "20261120T090000Z-assess-0002",
        SECOND,
        kind="assess",
        patching=PatchingSection(
            rings=("canary", "broad"),
            hosts=(
                _host("web-01", "canary", (ZLIB_OPEN,)),  # libssl3 upgraded: SSL fixed
                _host("web-02", "broad", (SSL_OPEN,), accepted_cves=(ACCEPTED,)),
                HostPatching(host="web-03", ring="broad", status="unreachable", error="timeout"),
            ),
        ),
    )
    verify = _record(
        "20261105T120000Z-verify-0003",
        datetime(2026, 11, 5, 12, tzinfo=UTC),
        kind="verify",
        verify=(
            _verified("web-01", "canary", {"agent/version": "passed", "ssh/root": "failed"}),
            _verified("web-02", "broad", {"agent/version": "failed", "ssh/root": "waived"}),
        ),
    )
    return [second, verify, first]  # any order: the builder sorts by start time


def _verified(host: str, ring: str, statuses: dict[str, str]) -> HostVerification:
    results = tuple(
        CheckResult.model_validate(
            dict(
                check_id=check_id,
                title=f"check {check_id}",
                status=status,
                expected="x",
                actual="x" if status == "passed" else "y",
                real_status="failed" if status == "waived" else None,
                waived_by="ssh-legacy" if status == "waived" else None,
            )
        )
        for check_id, status in statuses.items()
    )
    failed = any(r.status == "failed" for r in results)
    return HostVerification(
        host=host, ring=ring, status="failed" if failed else "passed", results=results
    )


def _states(view_cves: object, cve: str) -> dict[str, str]:
    status = next(c for c in view_cves if c.cve == cve)  # type: ignore[attr-defined]
    return {h.host: h.state for h in status.hosts}


def test_as_of_a_date_between_the_two_assess_runs_gives_the_earlier_state() -> None:
    view = build_compliance(history(), parse_as_of("2026-11-05"), SLA)
    assert view.runs == ("20261101T090000Z-assess-0001", "20261105T120000Z-verify-0003")
    assert _states(view.cves, SSL) == {"web-01": "open", "web-02": "open"}
    assert _states(view.cves, ACCEPTED) == {"web-02": "excepted"}
    ssl = next(c for c in view.cves if c.cve == SSL)
    # the clock started when the first assess run saw libssl3 3.0.22-1 pending
    assert {h.due for h in ssl.hosts} == {date(2026, 11, 8)}
    assert view.overdue == 0


def test_past_the_due_day_the_open_cve_is_overdue_on_every_host() -> None:
    view = build_compliance(history(), parse_as_of("2026-11-09"), SLA)
    assert _states(view.cves, SSL) == {"web-01": "overdue", "web-02": "overdue"}
    assert _states(view.cves, ZLIB) == {"web-01": "open"}  # no fix available: no clock
    assert view.overdue == 2


def test_after_the_second_run_the_upgraded_host_is_fixed_and_the_other_still_overdue() -> None:
    view = build_compliance(history(), parse_as_of("2026-11-25"), SLA)
    assert _states(view.cves, SSL) == {"web-01": "fixed", "web-02": "overdue"}
    hosts = {h.host: h for h in view.hosts}
    assert hosts["web-01"].overdue == ()
    assert hosts["web-02"].overdue == (SSL,)
    assert hosts["web-02"].excepted == (ACCEPTED,)
    assert hosts["web-02"].assessed_at == SECOND
    assert hosts["web-02"].security_updates == 1
    assert "web-03" not in hosts  # never assessed, never verified


def test_the_locks_first_seen_date_starts_the_clock_before_any_run() -> None:
    seen = {"bookworm": {"libssl3": {"3.0.22-1": datetime(2026, 10, 20, 8, tzinfo=UTC)}}}
    view = build_compliance(history(), parse_as_of("2026-11-05"), SLA, seen)
    ssl = next(c for c in view.cves if c.cve == SSL)
    assert {h.due for h in ssl.hosts} == {date(2026, 10, 27)}
    assert {h.state for h in ssl.hosts} == {"overdue"}


def test_controls_count_pass_fail_and_waived_per_ring() -> None:
    view = build_compliance(history(), parse_as_of("2026-11-25"), SLA)
    controls = {
        c.check_id: {r.ring: (r.passed, r.failed, r.waived) for r in c.rings} for c in view.controls
    }
    assert controls == {
        "agent/version": {"canary": (1, 0, 0), "broad": (0, 1, 0)},
        "ssh/root": {"canary": (0, 1, 0), "broad": (0, 0, 1)},
    }
    before = build_compliance(history(), parse_as_of("2026-11-04"), SLA)
    assert before.controls == ()  # the verify run was on 2026-11-05


def test_ring_filter_keeps_only_that_rings_hosts() -> None:
    view = build_compliance(history(), parse_as_of("2026-11-25"), SLA, ring="canary")
    assert [h.host for h in view.hosts] == ["web-01"]
    assert _states(view.cves, SSL) == {"web-01": "fixed"}
    assert all(r.ring == "canary" for c in view.controls for r in c.rings)


def test_renderers_show_every_id_as_text() -> None:
    view = build_compliance(history(), parse_as_of("2026-11-25"), SLA)
    markdown = render_compliance_markdown(view)
    html = render_compliance_html(view)
    for text in (markdown, html):
        for shown in (SSL, ZLIB, ACCEPTED, "agent/version", "ssh/root", "web-02"):
            assert shown in text
    assert f'<code class="advisory-id">{SSL}</code>' in html  # text, not only a tooltip
    document = compliance_document(view)
    assert document["schema"] == "patchring.compliance/v1"
    assert document["overdue"] == 1
    json.dumps(document)


# --- the command ---------------------------------------------------------------------------------

INVENTORY = """\
ssh: {user: root, connect_timeout: 2}
hosts:
  web-01: {address: 192.0.2.10, ring: canary}
  web-02: {address: 192.0.2.11, ring: broad}
"""
PATCHING = "patching:\n  sla_days: {high: 7, medium: 30, low: 90}\n"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "policies").mkdir()
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "hosts.yml").write_text(INVENTORY)
    (tmp_path / "inventory" / "patching.yml").write_text(PATCHING)
    store = RunStore.for_repo(tmp_path)
    for record in history():
        store.save(record)
    return tmp_path


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("compliance tried to open a connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _compliance(repo: Path, *flags: str) -> int:
    return main(["compliance", "--repo", str(repo), *flags])


def test_compliance_as_of_between_the_runs_is_exit_0_offline(
    repo: Path, no_network: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _compliance(repo, "--as-of", "2026-11-05", "--json") == 0
    document = json.loads(capsys.readouterr().out)
    ssl = next(c for c in document["cves"] if c["cve"] == SSL)
    assert {h["host"]: h["state"] for h in ssl["hosts"]} == {"web-01": "open", "web-02": "open"}
    assert document["sla"] == {"high": 7, "medium": 30, "low": 90, "unimportant": None}


def test_compliance_with_an_overdue_cve_is_exit_3(
    repo: Path, no_network: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _compliance(repo, "--as-of", "2026-11-25") == 3
    out = capsys.readouterr().out
    assert "1 overdue item" in out
    assert f"| `{SSL}` | high | 7 d | 1 | 0 | 0 | 1 | web-02 |" in out


def test_compliance_html_to_a_file(repo: Path, no_network: None, tmp_path: Path) -> None:
    page = tmp_path / "compliance.html"
    assert _compliance(repo, "--format", "html", "-o", str(page), "--as-of", "2026-11-25") == 3
    assert SSL in page.read_text()


def test_compliance_before_any_run_and_bad_flags_are_exit_1(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _compliance(repo, "--as-of", "2026-10-01") == 1
    assert "no runs recorded up to 2026-10-01 23:59 UTC" in capsys.readouterr().err
    assert _compliance(repo, "--as-of", "tomorrow") == 1
    assert "--as-of 'tomorrow' is not a date" in capsys.readouterr().err
    assert _compliance(repo, "--ring", "prod") == 1
    assert "unknown ring 'prod'" in capsys.readouterr().err


def test_a_misspelled_sla_urgency_is_a_located_error(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "inventory" / "patching.yml").write_text(
        "patching:\n  sla_days: {high: 7, critcal: 3}\n"
    )
    assert _compliance(repo) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("inventory/patching.yml:2:")
    assert "critcal" in err[0]
    (repo / "inventory" / "patching.yml").write_text("patching:\n  sla_days: {high: -1}\n")
    assert _compliance(repo) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("inventory/patching.yml:2:")


def test_compliance_imports_no_host_adapter(repo: Path) -> None:
    """The command never loads the engine (pyinfra) nor the check runner (testinfra): it has
    no way to reach a host (paramiko is loaded, by the ssh_config reader, only to parse)."""
    code = (
        "import sys\n"
        "from orchestrator.cli.main import main\n"
        f"rc = main(['compliance', '--repo', {str(repo)!r}, '--as-of', '2026-11-05', '--json'])\n"
        "adapters = ('pyinfra', 'testinfra', 'orchestrator.engine', 'orchestrator.verify.runner')\n"
        "loaded = sorted(m for m in adapters if m in sys.modules)\n"
        "print(rc, loaded, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stderr.strip().splitlines()[-1] == "0 []"
