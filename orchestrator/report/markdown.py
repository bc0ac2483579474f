"""A run record as a short Markdown summary: a CI job summary or a pull-request comment.

Pure: a record in, a string out. Status line, commit, per-ring table, apply failures (identical
errors on several hosts shown once) and the first `limit` failed checks; the HTML report has the
rest. Every host-derived text is masked. Imports only the standard library and `report`.
"""

from __future__ import annotations

import re

from orchestrator.model.record import RunRecord
from orchestrator.report.exposure import BUCKETS, ExposureView, UrgencyCount, build_exposure
from orchestrator.report.masking import Mask, no_mask
from orchestrator.report.record import (
    CI_NAMES,
    ApplyFailure,
    RunView,
    build_view,
    format_duration,
    percent,
    short_sha,
    subject,
)
from orchestrator.report.rollout_text import restart_why
from orchestrator.words import counted

MAX_CELL = 80
MAX_ERROR_LINES = 8
STATUS_MARK = {"succeeded": "✅", "failed": "❌", "halted": "❌", "interrupted": "⚠️"}
RING_MARK = {
    "passed": "✅ passed",
    "failed": "❌ failed",
    "inconclusive": "⚠️ inconclusive",
    "in-progress": "▶️ in progress",
    "not-started": "⏸️ not started",
}


def render_markdown(record: RunRecord, mask: Mask = no_mask, limit: int = 10) -> str:
    view = build_view(record, mask)
    if view.record.patching is not None:
        exposure = build_exposure(view.record.patching)
        parts = [_summary(view), *_exposure(exposure, limit)]
        return "\n\n".join(part for part in parts if part) + "\n"
    parts = [
        _summary(view),
        _rings(view),
        _history(view),
        _host_table(view),
        _apply_failures(view),
        _check_failures(view, limit),
        _waived(view, limit),
    ]
    return "\n\n".join(part for part in parts if part) + "\n"


def _waived(view: RunView, limit: int) -> str:
    """Checks an exception waives, with what they really found and who owns the waiver."""
    if not view.waived:
        return ""
    rows = [
        f"#### Waived checks ({len(view.waived)})",
        "",
        "| Host | Check | Found | Waiver |",
        "|---|---|---|---|",
    ]
    for item in view.waived[:limit]:
        c = item.check
        rows.append(
            f"| {_cell(item.host)} | {_code(c.check_id)} | {c.real_status or '-'} "
            f"| {_cell(c.message, 200)} |"
        )
    if len(view.waived) > limit:
        rows.append(f"| … | {len(view.waived) - limit} more | | |")
    return "\n".join(rows)


def _cell(text: str, limit: int = MAX_CELL) -> str:
    """One table cell: one line, short, with Markdown and HTML specials made inert."""
    flat = re.sub(r"\s+", " ", text).strip()
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", flat) or " "


def _code(text: str, limit: int = MAX_CELL) -> str:
    """A code span in a table cell (pipes escaped, backticks fenced)."""
    flat = re.sub(r"\s+", " ", text).strip()
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    if not flat:
        return "(empty)"
    fence = "``" if "`" in flat else "`"
    pad = " " if "`" in flat else ""
    return f"{fence}{pad}{flat.replace('|', chr(92) + '|')}{pad}{fence}"


def _fenced(text: str) -> str:
    lines = text.rstrip("\n").split("\n")
    if len(lines) > MAX_ERROR_LINES:
        lines = [*lines[:MAX_ERROR_LINES], f"... {len(lines) - MAX_ERROR_LINES} more lines"]
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n" + "\n".join(lines) + f"\n{fence}"


def _summary(view: RunView) -> str:
    r, c = view.record, view.compliance
    lines = [f"### {STATUS_MARK.get(r.status, '')} patchring: {_cell(view.headline, 200)}"]
    if r.patching is not None:
        lines += ["", f"- **Commit** {_commit(r)}", f"- **Run** {_run(r)}"]
        return "\n".join(lines)
    reached = c.hosts_total - c.hosts_not_reached
    facts = [
        f"**{c.hosts_compliant}/{counted(reached, 'host')} compliant**"
        if not c.hosts_not_reached
        else f"**{c.hosts_compliant}/{reached} reached hosts compliant**"
        f" ({c.hosts_not_reached} not reached)",
        f"**{c.checks_passed}/{c.checks_total} checks passed**"
        f" ({percent(c.checks_passed, c.checks_total)})"
        + (f", {c.checks_waived} waived" if c.checks_waived else ""),
    ]
    if c.apply_failures:
        facts.append(f"**{counted(c.apply_failures, 'apply failure')}**")
    lines += ["", " · ".join(facts), ""]
    lines += [f"- **Commit** {_commit(r)}", f"- **Run** {_run(r)}"]
    if r.change_ticket:
        lines.append(f"- **Change ticket** `{_cell(r.change_ticket, 100)}`")
    if r.source.dirty:
        lines += ["", "> ⚠️ The policies had uncommitted changes when this run started."]
    if r.emergency_reason:
        lines += ["", f"> 🚨 Emergency run: {_cell(r.emergency_reason, 300)}"]
    return "\n".join(lines)


def _commit(r: RunRecord) -> str:
    source = r.source
    if not source.commit:
        return f"none: policies read from `{_cell(source.repo)}`, not a Git repository"
    by = f" by {_cell(source.author.split(' <')[0])}" if source.author else ""
    return f"`{short_sha(source.commit)}` *{_cell(subject(source.message))}*{by}"


def _run(r: RunRecord) -> str:
    took = format_duration((r.finished - r.started).total_seconds())
    text = f"`{r.id}` ({took}) by {_cell(f'{r.operator.user}@{r.operator.hostname}')}"
    ci = r.operator.ci
    if ci:
        system = CI_NAMES.get(ci.get("system", ""), ci.get("system", "CI"))
        job = " ".join(filter(None, (ci.get("job"), ci.get("run_id"))))
        where = f"{system} {_cell(job)}".strip()
        url = ci.get("url", "")
        text += (
            f" in [{where}]({url})" if url.startswith(("https://", "http://")) else f" in {where}"
        )
    return text


def _rings(view: RunView) -> str:
    if not view.rings:
        return ""
    rows = ["| Ring | Status | Hosts compliant | Checks passed | Notes |", "|---|---|--:|--:|---|"]
    for ring in view.rings:
        rows.append(
            f"| {_cell(ring.ring)} | {RING_MARK[ring.status]} | {ring.compliant}/{len(ring.hosts)}"
            f" | {ring.checks_passed}/{ring.checks_total} | {_cell(ring.reason)} |"
        )
    return "\n".join(rows)


def _history(view: RunView) -> str:
    """A rollout's gates and approvals, every invocation's, as the ledger holds them."""
    log = view.record.rollout
    if log is None or not (log.gates or log.approvals or log.restarts):
        return ""
    rows = [f"**Rollout** `{_cell(log.id)}`: {_cell(log.status)}", ""]
    entries = [(g.at, f"gate {_cell(g.ring)} {g.outcome}", "; ".join(g.reasons)) for g in log.gates]
    entries += [
        (a.at, f"approval of {_cell(a.ring)} by {_cell(a.who)}", a.reason) for a in log.approvals
    ]
    entries += [
        (e.at, f"{e.kind} {_cell(e.host)} {e.status}", restart_why(e))
        for e in log.restarts
        if e.at is not None
    ]
    for at, what, why in sorted(entries, key=lambda entry: entry[0]):
        rows.append(f"- {at:%Y-%m-%d %H:%M:%S} {what}" + (f": {_cell(why, 300)}" if why else ""))
    return "\n".join(rows)


def _host_table(view: RunView) -> str:
    """A rollout's every host with its latest outcome, folded (a CI summary stays short)."""
    if view.record.rollout is None or not view.hosts:
        return ""
    rows = [
        f"<details><summary>Hosts ({len(view.hosts)})</summary>",
        "",
        "| Host | Ring | State | Apply | Checks passed |",
        "|---|---|---|---|--:|",
    ]
    for row in view.hosts:
        passed = sum(c.status == "passed" for c in row.checks.values())
        apply = row.apply.status if row.apply else "-"
        checks = f"{passed}/{len(row.checks)}" if row.verify else "-"
        rows.append(f"| {_cell(row.host)} | {_cell(row.ring)} | {row.state} | {apply} | {checks} |")
    return "\n".join([*rows, "", "</details>"])


def _apply_failures(view: RunView) -> str:
    if not view.apply_failures:
        return ""
    groups: dict[tuple[str, str], list[ApplyFailure]] = {}
    for failure in view.apply_failures:
        groups.setdefault((failure.resource_id, failure.error), []).append(failure)
    out = ["**Apply failures**"]
    for (resource, error), failures in groups.items():
        hosts = ", ".join(f"`{_cell(f.host)}`" for f in failures)
        what = f"`{_cell(resource)}`" if resource else "host"
        out += ["", f"{what} failed on {hosts}:"]
        out += ["", _fenced(error or failures[0].summary or "(no error text)")]
    return "\n".join(out)


def _check_failures(view: RunView, limit: int) -> str:
    failures = view.check_failures
    if not failures:
        return "" if view.apply_failures else "No failed checks."
    shown = failures[:limit]
    head = (
        f"**Failed checks** ({len(failures)})"
        if len(shown) == len(failures)
        else (f"**Failed checks** (first {len(shown)} of {len(failures)}; see the HTML report)")
    )
    rows = [head, "", "| Host | Check | Expected | Actual |", "|---|---|---|---|"]
    for f in shown:
        c = f.check
        mark = "❌" if c.status == "failed" else "⚠️ error:"
        rows.append(
            f"| {_cell(f.host)} | {mark} {_code(c.check_id)} | {_code(c.expected)} |"
            f" {_code(c.actual)} |"
        )
    # Multi-line texts (pytest's assertion output, a command's output) keep their lines below
    # the table: a table cell can only flatten them.
    for f in shown:
        c = f.check
        detail = "\n".join(t for t in (c.actual, c.message) if "\n" in t.strip())
        if detail:
            rows += ["", f"<details><summary>{_cell(f.host)}: {_cell(c.check_id)}</summary>", ""]
            rows += [_fenced(detail), "", "</details>"]
    return "\n".join(rows)


def _exposed(count: UrgencyCount) -> str:
    if not count.exposed:
        return "0"
    return (
        f"{count.exposed} ({count.fix_available} fixable)"
        if count.fix_available
        else (str(count.exposed))
    )


def _exposure(view: ExposureView, limit: int) -> list[str]:
    """The exposure summary per ring, the open CVEs with their hosts (the first `limit` times
    five; the HTML report has them all), and the hosts that could not be assessed."""
    heads = ["Ring", "Hosts", "Security updates", "Reboot"]
    aligns = ["---", "--:", "--:", "--:"]
    if view.tracked:
        heads += ["Exposed", *(b.capitalize() for b in BUCKETS)]
        aligns += ["--:"] * (1 + len(BUCKETS))
    rows = [
        "**Exposure summary**: hosts with an open CVE of each urgency (of them, how many have "
        "a fix available from their repositories)"
        if view.tracked
        else "**Patch state** (no security data: open CVEs unknown)",
        "",
        f"| {' | '.join(heads)} |",
        f"|{'|'.join(aligns)}|",
    ]
    for ring in view.rings:
        cells = [_cell(ring.ring), str(ring.assessed), str(ring.security_updates)]
        cells.append(str(ring.reboot_required))
        if view.tracked:
            cells += [str(ring.exposed), *(_exposed(c) for c in ring.by_urgency)]
        rows.append(f"| {' | '.join(cells)} |")
    parts = ["\n".join(rows)]
    if view.tracked:
        parts.append(_cve_table(view, limit * 5))
    missing = view.not_assessed
    if missing:
        lines = [f"**Not assessed** ({len(missing)})", ""]
        lines += [f"- `{_cell(h.host)}` {h.status}: {_cell(h.error or '', 300)}" for h in missing]
        parts.append("\n".join(lines))
    return parts


def _cve_table(view: ExposureView, limit: int) -> str:
    if not view.cves:
        return "No open CVEs on any assessed host."
    shown = view.cves[:limit]
    more = "" if len(shown) == len(view.cves) else f", first {len(shown)}; see the HTML report"
    rows = [
        f"**Open CVEs** ({len(view.cves)}{more})",
        "",
        "| CVE | Source | Urgency | Fixed in | Hosts still open | Fix available |",
        "|---|---|---|---|---|---|",
    ]
    for cve in shown:
        hosts = ", ".join(
            f"`{_cell(h.host)}`" + (" ✓" if h.fix_available else "") for h in cve.hosts[:20]
        )
        if len(cve.hosts) > 20:
            hosts += f" and {len(cve.hosts) - 20} more"
        fixed = ", ".join(_code(v) for v in cve.fixed_versions) or "no fix yet"
        available = f"{cve.fix_available} of {len(cve.hosts)}"
        rows.append(
            f"| {_cell(cve.cve)} | {_code(cve.source)} | {cve.urgency} | {fixed} | {hosts} |"
            f" {available} |"
        )
    rows += ["", "✓ a pending update from the host's repositories fixes it."]
    return "\n".join(rows)
