"""A run record as JUnit XML, for CI systems that show test results (GitLab, Jenkins, GitHub).

Pure: a record in, a string out. One `<testsuite>` per host; one `<testcase>` per check
(`classname` = host, `name` = check id, a `host` property) and per applied resource
(`name` = `apply/<resource id>`); hosts the run never reached are one skipped testcase. Failures
carry expected, actual and the evidence, masked. An assess record has one testcase per host,
`exposure/high-with-fix`: it fails when the host has an open CVE of urgency high (or not yet
assigned) whose fix its repositories offer, and errs when the host was not assessed. Imports
only the standard library and `report`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from orchestrator.model.record import HostPatching, RunRecord
from orchestrator.model.results import ResourceOutcome
from orchestrator.model.verification import CheckResult
from orchestrator.report.exposure import urgency_bucket
from orchestrator.report.masking import Mask, no_mask
from orchestrator.report.record import HostRow, RunView, build_view, visible

_COUNTED = ("tests", "failures", "errors", "skipped")


def render_junit(record: RunRecord, mask: Mask = no_mask) -> str:
    view = build_view(record, mask)
    r = view.record
    root = ET.Element("testsuites", {"name": f"patchring {r.kind} {r.id}"})
    totals = dict.fromkeys(_COUNTED, 0)
    suites = (
        [_assess_suite(view, host) for host in r.patching.hosts]
        if r.patching is not None
        else [_suite(view, row) for row in view.hosts]
    )
    for suite in suites:
        root.append(suite)
        for key in _COUNTED:
            totals[key] += int(suite.get(key, "0"))
    for key in _COUNTED:
        root.set(key, str(totals[key]))
    root.set("time", f"{(r.finished - r.started).total_seconds():.3f}")
    root.set("timestamp", r.started.isoformat())
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _text(value: object) -> str:
    return visible(str(value))


def _suite(view: RunView, row: HostRow) -> ET.Element:
    r = view.record
    seconds = (row.apply.seconds if row.apply else 0.0) + (row.verify.seconds if row.verify else 0)
    suite = ET.Element(
        "testsuite",
        {
            "name": _text(row.host),
            "hostname": _text(row.host),
            "timestamp": r.started.isoformat(),
            "time": f"{seconds:.3f}",
        },
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("host", row.host),
        ("ring", row.ring),
        ("state", row.state),
        ("run_id", r.id),
        ("commit", r.source.commit or ""),
        *([("change_ticket", r.change_ticket)] if r.change_ticket else []),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": _text(value)})
    cases = _apply_cases(row) + _check_cases(row)
    if not cases:
        case = _case(row.host, "run")
        why = row.problem or "not reached: the run stopped before this host's ring"
        ET.SubElement(case, "skipped", {"message": _text(why)})
        cases.append(case)
    suite.extend(cases)
    counts = {
        "tests": len(cases),
        "failures": sum(case.find("failure") is not None for case in cases),
        "errors": sum(case.find("error") is not None for case in cases),
        "skipped": sum(case.find("skipped") is not None for case in cases),
    }
    for key in _COUNTED:
        suite.set(key, str(counts[key]))
    return suite


EXPOSURE_CASE = "exposure/high-with-fix"


def _assess_suite(view: RunView, host: HostPatching) -> ET.Element:
    r = view.record
    suite = ET.Element(
        "testsuite",
        {
            "name": _text(host.host),
            "hostname": _text(host.host),
            "timestamp": r.started.isoformat(),
        },
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (("host", host.host), ("ring", host.ring or ""), ("run_id", r.id)):
        ET.SubElement(properties, "property", {"name": name, "value": _text(value)})
    case = _case(host.host, EXPOSURE_CASE)
    fixable = [
        c for c in host.open_cves or () if c.fix_available and urgency_bucket(c.urgency) == "high"
    ]
    if host.status != "assessed":
        message = host.error or host.status
        ET.SubElement(case, "error", {"message": _text(message), "type": "NotAssessed"})
    elif host.open_cves is None:
        ET.SubElement(case, "skipped", {"message": "no security data"})
    elif fixable:
        message = f"{len(fixable)} open CVE(s) of urgency high with a fix available"
        failure = ET.SubElement(case, "failure", {"message": message, "type": "Exposed"})
        failure.text = _text(
            "\n".join(
                f"{c.cve} ({c.source} {c.installed_source_version}, {c.urgency}): fixed by "
                + ", ".join(c.fixed_by)
                for c in fixable
            )
        )
    suite.append(case)
    for key, element in (("failures", "failure"), ("errors", "error"), ("skipped", "skipped")):
        suite.set(key, str(int(case.find(element) is not None)))
    suite.set("tests", "1")
    return suite


def _case(host: str, name: str) -> ET.Element:
    case = ET.Element("testcase", {"classname": _text(host), "name": _text(name)})
    properties = ET.SubElement(case, "properties")
    ET.SubElement(properties, "property", {"name": "host", "value": _text(host)})
    return case


def _apply_cases(row: HostRow) -> list[ET.Element]:
    if row.apply is None:
        return []
    cases = [_outcome_case(row.host, outcome) for outcome in row.apply.outcomes]
    if not cases and row.apply.status in {"failed", "unreachable"}:
        case = _case(row.host, "apply")
        element = ET.SubElement(case, "error", {"message": _text(row.apply.error or "failed")})
        element.set("type", "HostUnreachable" if row.apply.status == "unreachable" else "Apply")
        element.text = _text(row.apply.error or "")
        cases.append(case)
    return cases


def _outcome_case(host: str, outcome: ResourceOutcome) -> ET.Element:
    case = _case(host, f"apply/{outcome.resource_id}")
    if outcome.status in {"failed", "still-differs"}:
        failure = ET.SubElement(
            case,
            "failure",
            {"message": _text(f"{outcome.status}: {outcome.summary}"), "type": "ApplyFailed"},
        )
        body = [f"resource: {outcome.resource_id} (policy {outcome.policy})", outcome.summary]
        body += ["", outcome.error] if outcome.error else []
        body += ["", "diff:", outcome.diff] if outcome.diff else []
        failure.text = _text("\n".join(body))
    elif outcome.status == "skipped":
        ET.SubElement(case, "skipped", {"message": _text(outcome.summary or "skipped")})
    else:
        ET.SubElement(case, "system-out").text = _text(f"{outcome.status}: {outcome.summary}")
    return case


def _check_cases(row: HostRow) -> list[ET.Element]:
    cases = []
    if row.verify is not None and not row.verify.results and row.verify.error:
        case = _case(row.host, "verify")
        element = ET.SubElement(case, "error", {"message": _text(row.verify.error)})
        element.set("type", "HostUnreachable")
        cases.append(case)
    cases += [_check_case(row.host, check) for check in row.checks.values()]
    return cases


def _check_case(host: str, check: CheckResult) -> ET.Element:
    case = _case(host, check.check_id)
    if check.status == "passed":
        return case
    if check.status == "waived":
        found = f"found {check.real_status}: expected {check.expected}, got {check.actual}"
        ET.SubElement(case, "skipped", {"message": _text(f"waived: {check.message}; {found}")})
        return case
    message = f"expected {check.expected}, got {check.actual}"
    tag, kind = ("failure", "CheckFailed") if check.status == "failed" else ("error", "CheckError")
    element = ET.SubElement(case, tag, {"message": _text(message), "type": kind})
    body = [check.title, f"expected: {check.expected}", f"actual:   {check.actual}"]
    body += [f"message:  {check.message}"] if check.message else []
    for evidence in check.evidence:
        body += ["", f"$ {evidence.command}", f"exit status {evidence.exit_status}"]
        body += [evidence.stdout.rstrip("\n")] if evidence.stdout.strip() else []
        body += ["stderr:", evidence.stderr.rstrip("\n")] if evidence.stderr.strip() else []
    element.text = _text("\n".join(body))
    return case
