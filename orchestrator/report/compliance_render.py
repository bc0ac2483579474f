"""Renderers of the compliance view: a `patchring.compliance/v1` JSON document, Markdown for a CI
job summary or a terminal, and a self-contained HTML page (Jinja2 template `compliance.html.j2`).

Every CVE, advisory and check id is printed as visible text. Pure: a `ComplianceView` in, a
string or a document out; imports only `report`.
"""

from __future__ import annotations

from typing import Any

from orchestrator.report.compliance import (
    COMPLIANCE_SCHEMA,
    ComplianceView,
    CveState,
    CveStatus,
)
from orchestrator.report.templating import render_template
from orchestrator.words import counted

STATES: tuple[CveState, ...] = ("overdue", "open", "excepted", "fixed")


def compliance_document(view: ComplianceView) -> dict[str, Any]:
    document = view.model_dump(mode="json")
    document["overdue"] = view.overdue
    return {"schema": COMPLIANCE_SCHEMA, **document}


def compliance_headline(view: ComplianceView) -> str:
    scope = f"ring {view.ring}" if view.ring else "all rings"
    cves = len(view.cves)
    return (
        f"Compliance as of {view.as_of:%Y-%m-%d %H:%M} UTC ({scope}): "
        f"{counted(view.overdue, 'overdue item')}, {counted(cves, 'CVE')}, "
        f"{counted(len(view.controls), 'control')}, {counted(len(view.hosts), 'host')}"
    )


def _sla(days: int | None) -> str:
    return f"{days} d" if days is not None else "none"


def _hosts_in(status: CveStatus, state: CveState, limit: int) -> str:
    names = [h.host for h in status.hosts if h.state == state]
    shown = ", ".join(names[:limit]) + (f" (+{len(names) - limit})" if len(names) > limit else "")
    return shown or "none"


def render_compliance_markdown(view: ComplianceView, limit: int = 25) -> str:
    lines = [f"### {compliance_headline(view)}", ""]
    lines += [f"Built offline from {counted(len(view.runs), 'recorded run')}.", ""]
    lines += ["#### Per CVE", ""]
    if view.cves:
        lines += [
            "| CVE | Urgency | SLA | Overdue | Open | Excepted | Fixed | Overdue hosts |",
            "|---|---|---|---:|---:|---:|---:|---|",
        ]
        for c in view.cves[:limit]:
            counts = " | ".join(str(c.count(s)) for s in STATES)
            lines.append(
                f"| `{c.cve}` | {c.urgency or '?'} | {_sla(c.sla_days)} | {counts} "
                f"| {_hosts_in(c, 'overdue', 8)} |"
            )
        if len(view.cves) > limit:
            lines.append(f"\n{len(view.cves) - limit} more CVEs in `--json` or `--format html`.")
    else:
        lines.append("No CVE recorded (no assess run with security data).")
    lines += ["", "#### Per control", ""]
    if view.controls:
        lines += ["| Check | Ring | Passed | Failed | Waived |", "|---|---|---:|---:|---:|"]
        for control in view.controls[:limit]:
            for ring in control.rings:
                lines.append(
                    f"| `{control.check_id}` | {ring.ring} | {ring.passed} | {ring.failed} "
                    f"| {ring.waived} |"
                )
        if len(view.controls) > limit:
            lines.append(f"\n{len(view.controls) - limit} more controls in the other formats.")
    else:
        lines.append("No check results recorded.")
    lines += ["", "#### Per host", ""]
    lines += [
        "| Host | Ring | Assessed | Security updates | Open CVEs | Overdue | Failed checks |",
        "|---|---|---|---:|---:|---|---:|",
    ]
    for host in view.hosts[: limit * 4]:
        when = f"{host.assessed_at:%Y-%m-%d}" if host.assessed_at else "never"
        overdue = ", ".join(f"`{c}`" for c in host.overdue) or "none"
        lines.append(
            f"| {host.host} | {host.ring} | {when} | {host.security_updates} | {host.open_cves} "
            f"| {overdue} | {host.checks_failed} |"
        )
    return "\n".join(lines) + "\n"


def render_compliance_html(view: ComplianceView) -> str:
    return render_template(
        "compliance.html.j2",
        view=view,
        title=compliance_headline(view),
        headline=compliance_headline(view),
        states=STATES,
    )
