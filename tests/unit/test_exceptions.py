"""Exceptions (exceptions/*.yml): located errors, holds in the desired state, expiry as of a
controllable date, waived checks in every report, accepted CVEs, the exception-debt gate and
the approver rule read from Git."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from orchestrator.errors import UserInputError, ValidationError
from orchestrator.model.desired import DesiredState
from orchestrator.model.exceptions import ActiveException
from orchestrator.model.policy import Package, Patch
from orchestrator.model.ring import Gate
from orchestrator.model.verification import CheckResult, HostVerification
from orchestrator.policy import Project, WorktreeSource, load_project
from orchestrator.report.html import render_html
from orchestrator.report.junit import render_junit
from orchestrator.report.markdown import render_markdown
from orchestrator.rollout.decisions import evaluate_gate
from orchestrator.verify.waivers import host_status, waive
from tests.unit.test_patch_checks import (
    ONLY_OTHER,
    PENDING,
    _data,
    _outputs,
)

HOSTS = """\
rings:
  - name: canary
  - name: broad
groups:
  web: {}
hosts:
  web-01: {address: 10.0.0.1, ring: canary, groups: [web]}
  web-02: {address: 10.0.0.2, ring: broad, groups: [web]}
  db-01: {address: 10.0.0.3, ring: broad}
"""

POLICY = """\
name: agent
select: {all: true}
packages:
  - name: acme-agent
    version: 1.0-2
patches:
  - advisory: DSA-9001-1
    cves: [CVE-2026-9001]
    package: acme-tool
    fixed: 1.0-2
"""

EXCEPTIONS = """\
exceptions:
  - id: hold-agent-web
    hold: {package: acme-agent, version: 1.0-1}
    select: {hosts: [web-02]}
    owner: dana@example.com
    reason: vendor certification of 1.0-2 pending
    ticket: CHG0012345
    approved_by: lee@example.com
    expires: 2027-01-31
  - id: hold-tool
    hold: {package: acme-tool, version: 1.0-1}
    select: {hosts: [db-01]}
    owner: ops
    reason: tool 1.0-2 breaks the db backup
    approved_by: lee@example.com
    expires: 2026-12-20
  - id: waive-banner
    waive: ["hardening/*"]
    select: {rings: [canary]}
    owner: sec
    reason: banner text under legal review
    approved_by: lee@example.com
    expires: 2026-12-10
"""

TODAY = dt.date(2026, 12, 2)


def _repo(tmp_path: Path, files: dict[str, str]) -> WorktreeSource:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return WorktreeSource(tmp_path)


def _load(tmp_path: Path, exceptions: str = EXCEPTIONS, today: dt.date = TODAY) -> Project:
    files = {
        "inventory/hosts.yml": HOSTS,
        "policies/agent.yml": POLICY,
        "exceptions/q4.yml": exceptions,
    }
    return load_project(_repo(tmp_path, files), today=today)


def _problems(tmp_path: Path, exceptions: str) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        _load(tmp_path, exceptions)
    return [str(d) for d in caught.value.diagnostics]


def _package(state: DesiredState, name: str) -> Package | None:
    found = [r.spec for r in state.resources if isinstance(r.spec, Package) and r.spec.name == name]
    return found[0] if found else None


def test_a_hold_pins_the_held_version_on_its_hosts_only(tmp_path: Path) -> None:
    project = _load(tmp_path)
    held = _package(project.desired["web-02"], "acme-agent")
    assert held is not None and held.version == "1.0-1"
    other = _package(project.desired["web-01"], "acme-agent")
    assert other is not None and other.version == "1.0-2"
    pinned_at = next(
        r for r in project.desired["web-02"].resources if r.key == "acme-agent"
    ).field_locations["version"]
    assert str(pinned_at) == "exceptions/q4.yml:2:5"
    assert [x.id for x in project.desired["web-02"].exceptions] == ["hold-agent-web"]


def test_a_hold_drops_the_advisory_that_would_upgrade_the_package(tmp_path: Path) -> None:
    project = _load(tmp_path)
    db = project.desired["db-01"]
    assert not [r for r in db.resources if isinstance(r.spec, Patch)]
    assert [r.key for r in db.held] == ["DSA-9001-1/acme-tool"]
    web = project.desired["web-01"]
    assert [r.key for r in web.resources if isinstance(r.spec, Patch)] == ["DSA-9001-1/acme-tool"]


def test_expiry_is_inclusive_and_warned_about_ahead(tmp_path: Path) -> None:
    project = _load(tmp_path, today=dt.date(2026, 12, 10))
    warnings = [str(w) for w in project.warnings]
    assert (
        "exceptions/q4.yml:23:14: warning: exception 'waive-banner' expires today (2026-12-10); "
        "owner sec: renew it or let it lapse" in warnings
    )
    assert any("'hold-tool' expires in 10 days (2026-12-20)" in w for w in warnings)
    assert not any("hold-agent-web" in w for w in warnings)  # 52 days left: beyond warn_days
    assert [x.id for x in project.desired["web-01"].exceptions] == ["waive-banner"]
    later = _load(tmp_path, today=dt.date(2026, 12, 21))
    assert later.desired["db-01"].exceptions == ()
    assert [r.key for r in later.desired["db-01"].resources if isinstance(r.spec, Patch)] == [
        "DSA-9001-1/acme-tool"
    ]
    expired = [str(w) for w in later.warnings if "hold-tool" in str(w)]
    assert expired == [
        "exceptions/q4.yml:16:14: warning: exception 'hold-tool' expired on 2026-12-20 and no "
        "longer applies: what it held back counts again (owner ops)"
    ]


def test_the_clock_comes_from_patchring_today_and_a_bad_date_is_a_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {
        "inventory/hosts.yml": HOSTS,
        "policies/agent.yml": POLICY,
        "exceptions/q.yml": EXCEPTIONS,
    }
    source = _repo(tmp_path, files)
    monkeypatch.setenv("PATCHRING_TODAY", "2026-12-25")
    assert load_project(WorktreeSource(tmp_path)).today == dt.date(2026, 12, 25)
    monkeypatch.setenv("PATCHRING_TODAY", "25.12.2026")
    said = re.escape("PATCHRING_TODAY='25.12.2026' is not a date")
    with pytest.raises(UserInputError, match=said):
        load_project(WorktreeSource(tmp_path))
    assert source  # the files stay as they were


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "exceptions:\n  - id: x\n    hold: {package: a, version: '1'}\n    waive: [a/*]\n"
            "    select: {all: true}\n    owner: o\n    reason: r\n    approved_by: p\n"
            "    expires: 2027-01-01\n",
            "exceptions/q4.yml:2:5: error: an exception excepts exactly one of hold, accept, "
            "waive; it sets hold and waive",
        ),
        (
            "exceptions:\n  - id: x\n    accept: [CVE-26]\n    select: {all: true}\n"
            "    owner: o\n    reason: r\n    approved_by: p\n    expires: 2027-01-01\n",
            "exceptions/q4.yml:3:14: error: 'CVE-26' is not a CVE id (CVE-2026-1234) nor an "
            "advisory id (DSA-5678-1, DLA-...)",
        ),
        (
            "exceptions:\n  - id: x\n    accept: [CVE-2026-1234]\n    select: {all: true}\n"
            "    reason: r\n    approved_by: p\n    expires: 2027-02-30\n",
            "owner",
        ),
        (
            "exceptions:\n  - id: x\n    accept: [CVE-2026-1234]\n    select: {rings: [canery]}\n"
            "    owner: o\n    reason: r\n    approved_by: p\n    expires: 2027-01-01\n",
            "exceptions/q4.yml:4:13: error: exception 'x' selects unknown ring 'canery'",
        ),
    ],
)
def test_bad_exceptions_are_located_errors(tmp_path: Path, text: str, expected: str) -> None:
    found = _problems(tmp_path, text)
    assert any(expected in line for line in found), found


def test_every_error_of_an_exception_is_reported_at_once(tmp_path: Path) -> None:
    text = (
        "exceptions:\n  - id: x\n    accept: [CVE-2026-1234]\n    select: {all: true}\n"
        "    reason: r\n    approved_by: p\n    expires: 2027-02-30\n"
        "  - id: x\n    waive: [a]\n    select: {all: true}\n    owner: o\n    reason: r\n"
        "    approved_by: p\n    expires: 2027-01-01\n"
    )
    found = _problems(tmp_path, text)
    assert any(
        line.startswith("exceptions/q4.yml:2:5: error:") and "owner" in line for line in found
    )
    assert any(line.startswith("exceptions/q4.yml:7:14: error:") for line in found), found


def test_a_duplicate_id_names_the_first(tmp_path: Path) -> None:
    entry = (
        "  - id: same\n    waive: [a]\n    select: {all: true}\n    owner: o\n    reason: r\n"
        "    approved_by: p\n    expires: 2027-01-01\n"
    )
    found = _problems(tmp_path, "exceptions:\n" + entry + entry)
    assert (
        "exceptions/q4.yml:9:9: error: duplicate exception id 'same' (first used at "
        "exceptions/q4.yml:2:5)" in found
    )


WAIVER = ActiveException(
    id="waive-banner",
    kind="waive",
    owner="sec",
    reason="legal review",
    approved_by="lee",
    expires=dt.date(2026, 12, 10),
    ticket="CHG1",
    waive=("hardening/*",),
)


def _check(check_id: str, status: str) -> CheckResult:
    return CheckResult(
        check_id=check_id,
        title=check_id,
        status=status,  # type: ignore[arg-type]
        expected="banner",
        actual="none" if status == "failed" else "banner",
        message="no banner" if status == "failed" else "",
    )


def test_a_waived_check_is_waived_never_passed_with_its_real_result_kept() -> None:
    results = waive(
        [
            _check("hardening/block:/etc/issue.net/content", "failed"),
            _check("hardening/setting:/etc/login.defs/value", "passed"),
            _check("hardening/file:/etc/motd/mode", "error"),
            _check("agent/package:acme-agent/version", "failed"),
        ],
        [WAIVER],
    )
    assert [(r.status, r.real_status, r.waived_by) for r in results] == [
        ("waived", "failed", "waive-banner"),
        ("waived", "passed", "waive-banner"),
        ("error", None, None),  # a check that could not run is not waived
        ("failed", None, None),
    ]
    assert results[0].message == (
        "waived by waive-banner (owner sec, until 2026-12-10, CHG1); no banner"
    )
    assert host_status(results[:2]) == "passed"
    assert host_status(results) == "failed"


def test_every_report_shows_a_waived_check_as_waived() -> None:
    from tests.unit.test_report_record import failed_rollout

    record = failed_rollout()
    verify = record.verify[0]
    waived = waive(
        [*verify.results, _check("hardening/block:/etc/issue.net/content", "failed")], [WAIVER]
    )
    record = record.model_copy(
        update={"verify": (verify.model_copy(update={"results": waived}), *record.verify[1:])}
    )
    markdown = render_markdown(record)
    assert "#### Waived checks (3)" in markdown  # two hardening checks of the record, and ours
    assert "waived by waive-banner (owner sec, until 2026-12-10, CHG1)" in markdown
    html = render_html(record)
    assert "<h2>Waived checks" in html and 'class="cell waived"' in html
    junit = ET.fromstring(render_junit(record))
    skipped = [
        case
        for case in junit.iter("testcase")
        if case.get("name") == "hardening/block:/etc/issue.net/content"
    ]
    assert skipped and skipped[0].find("skipped") is not None
    assert "found failed" in (skipped[0].find("skipped").get("message") or "")  # type: ignore[union-attr]


def test_an_accepted_cve_does_not_fail_the_open_cve_check_and_is_named() -> None:
    from orchestrator.model.baseline import PatchBaseline
    from orchestrator.verify.patchchecks import evaluate_patch_check

    data = _data(PatchBaseline(max_open_urgency="high"), accepted=frozenset({"CVE-2026-9001"}))
    passed, actual = evaluate_patch_check(
        "no-open-cve-with-fix", "patching", _outputs(PENDING), data
    )
    assert passed is True
    assert actual == (
        "no CVE of urgency high or higher open with a fix available "
        "(1 accepted as a risk: CVE-2026-9001)"
    )
    assert ONLY_OTHER  # the fixture module stays imported for its data


def _verified(host: str) -> HostVerification:
    return HostVerification(host=host, status="passed", results=(_check("a/b/c", "passed"),))


def test_the_gate_fails_past_the_exception_debt_ceiling() -> None:
    from orchestrator.model.results import HostResult

    hosts = [f"h{i}" for i in range(10)]
    applied = {h: HostResult(host=h, status="unchanged") for h in hosts}
    verified = {h: _verified(h) for h in hosts}
    gate = Gate(max_exception_debt="10%")
    one = evaluate_gate(gate, hosts, applied, verified, None, {}, excepted={"h1"})
    assert one.status == "passed"
    two = evaluate_gate(gate, hosts, applied, verified, None, {}, excepted={"h1", "h2"})
    assert two.status == "failed"
    assert two.reasons == (
        "exception debt: 2 of 10 hosts under an exception (h1, h2), more than "
        "max_exception_debt 10% allows (1)",
    )
    counted = evaluate_gate(
        Gate(max_exception_debt=2), hosts, applied, verified, None, {}, excepted={"h1", "h2"}
    )
    assert counted.status == "passed"


def _git(root: Path, *args: str, author: str = "Lee Approver <lee@example.com>") -> None:
    name, email = author[:-1].split(" <")
    subprocess.run(
        ["git", "-c", f"user.name={name}", "-c", f"user.email={email}", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


def test_an_approver_who_authored_the_exception_is_refused(tmp_path: Path) -> None:
    from orchestrator.gitops import exception_approvers

    rules = HOSTS + "exceptions: {approver_not_author: true}\n"
    files = {
        "inventory/hosts.yml": rules,
        "policies/agent.yml": POLICY,
        "exceptions/q4.yml": EXCEPTIONS,
    }
    _repo(tmp_path, files)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "policies", "inventory")
    _git(tmp_path, "commit", "-qm", "policies")
    _git(tmp_path, "add", "exceptions")
    _git(tmp_path, "commit", "-qm", "exceptions", author="Dana Ops <dana@example.com>")
    project = load_project(WorktreeSource(tmp_path), today=TODAY)
    assert exception_approvers(tmp_path, project) == []  # dana wrote them, lee approves
    text = EXCEPTIONS + (
        "  - id: self-approved\n    waive: [a/*]\n    select: {all: true}\n    owner: o\n"
        "    reason: r\n    approved_by: lee@example.com\n    expires: 2027-01-01\n"
    )
    (tmp_path / "exceptions" / "q4.yml").write_text(text)
    _git(tmp_path, "commit", "-qam", "one more")  # by lee
    project = load_project(WorktreeSource(tmp_path), today=TODAY)
    found = [str(d) for d in exception_approvers(tmp_path, project)]
    assert len(found) == 1
    assert found[0].startswith(
        "exceptions/q4.yml:29:18: error: exception 'self-approved' is approved by "
        "lee@example.com, who authored the commit that added it ("
    )


def test_the_editor_schema_of_exceptions_files_accepts_the_example_and_rejects_typos() -> None:
    import jsonschema
    import yaml

    from orchestrator.policy.schema import SCHEMAS

    schema = SCHEMAS["exceptions"]()
    assert schema["title"] == "patchring exceptions"
    document = yaml.safe_load(EXCEPTIONS)
    for entry in document["exceptions"]:
        entry["expires"] = str(entry["expires"])  # YAML dates, as an editor sees the text
    jsonschema.validate(document, schema)
    document["exceptions"][0]["owener"] = "typo"
    with pytest.raises(jsonschema.ValidationError, match="owener"):
        jsonschema.validate(document, schema)
