"""A run record as one self-contained HTML page for auditors: summary, hosts x checks, failures.

Pure: a record in, a string out. Inline CSS only (no scripts, fonts or images to fetch), so the
file works offline, from a CI artifact or an e-mail, and prints cleanly. Every text is escaped;
every text that came from a host or an error is masked first (see `record.build_view`).
Imports only the standard library and `report`; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from html import escape

from orchestrator.model.record import GitSource, Operator, RunRecord
from orchestrator.model.verification import CheckResult, Evidence
from orchestrator.report.masking import Mask, no_mask
from orchestrator.report.record import (
    CI_NAMES,
    ApplyFailure,
    CheckColumn,
    CheckFailure,
    HostRow,
    RingRow,
    RunView,
    build_view,
    format_duration,
    percent,
    subject,
)

MAX_OUTPUT_LINES = 60
DASH = "&ndash;"
SYMBOL = {"passed": "✓", "failed": "✗", "error": "!", "none": DASH}
APPLY_SYMBOL = {"changed": "~", "unchanged": "=", "failed": "✗", "unreachable": "!"}


def render_html(record: RunRecord, mask: Mask = no_mask) -> str:
    view = build_view(record, mask)
    failures = _failure_anchors(view)
    parts = [
        _head(view),
        _masthead(view),
        _banners(view.record),
        _kpis(view),
        _rings(view),
        _history(view.record),
        _provenance(view.record),
        _matrix(view, failures),
        _failures(view, failures),
        _footer(view.record),
    ]
    return "".join(parts) + "</main>\n</body>\n</html>\n"


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _breakable(text: str) -> str:
    """Escaped, with line-break opportunities after `:` `.` `/` `_` (long resource names)."""
    return re.sub(r"([:./_])", r"\1<wbr>", _e(text))


def _pill(state: str, text: str | None = None) -> str:
    return f'<span class="pill {_e(state)}">{_e(text or state.replace("-", " "))}</span>'


def _time(record: RunRecord) -> tuple[str, str, str]:
    started = record.started.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    finished = record.finished.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    took = format_duration((record.finished - record.started).total_seconds())
    return started, finished, took


def _head(view: RunView) -> str:
    r = view.record
    title = f"patchring {r.kind} {r.id}: {r.status}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="patchring">\n'
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n"
    )


def _masthead(view: RunView) -> str:
    r = view.record
    started, _, took = _time(r)
    return (
        f'<header class="masthead status-{_e(r.status)}">'
        f'<div class="eyebrow">patchring · {_e(r.kind)} report</div>'
        f'<div class="headline"><h1>{_e(view.headline)}</h1>'
        f'<span class="status-badge {_e(r.status)}">{_e(r.status)}</span></div>'
        f'<p class="meta">Run <code>{_e(r.id)}</code> · started {_e(started)} · took {_e(took)}'
        f" · by {_e(_operator_short(r.operator))}</p></header>\n"
    )


def _banners(r: RunRecord) -> str:
    out = []
    if r.emergency_reason:
        out.append(
            '<div class="banner danger"><strong>Emergency run.</strong> Reason given: '
            f"{_e(r.emergency_reason)}</div>"
        )
    if r.source.commit is None:
        out.append(
            '<div class="banner warn"><strong>No Git commit.</strong> The policies were read from '
            f"{_e(r.source.repo)}, which is not a Git repository; file hashes below identify "
            "them.</div>"
        )
    elif r.source.dirty:
        out.append(
            '<div class="banner warn"><strong>Uncommitted changes.</strong> The working tree '
            f"differed from commit <code>{_e(r.source.commit[:12])}</code> when this run "
            "started; the input file hashes below show exactly what was used.</div>"
        )
    return "".join(out) + ("\n" if out else "")


def _kpi(label: str, value: int, total: int | None, note: str, tone: str) -> str:
    whole = f'<span class="of">/ {total}</span>' if total is not None else ""
    bar = ""
    if total:
        bar = f'<div class="bar"><span style="width:{100 * value / total:.1f}%"></span></div>'
    return (
        f'<div class="kpi {tone}"><div class="kpi-label">{_e(label)}</div>'
        f'<div class="kpi-value">{value}{whole}</div>{bar}'
        f'<div class="kpi-note">{_e(note)}</div></div>'
    )


def _tone(good: int, total: int) -> str:
    return "neutral" if total == 0 else ("good" if good == total else "bad")


def _kpis(view: RunView) -> str:
    c = view.compliance
    checks_note = f"{percent(c.checks_passed, c.checks_total)} passed"
    if c.checks_failed or c.checks_error:
        errors = f"{c.checks_error} error{'s' if c.checks_error != 1 else ''}"
        checks_note += f" · {c.checks_failed} failed · {errors}"
    failing = c.hosts_total - c.hosts_compliant - c.hosts_not_reached
    hosts_note = f"{failing} not compliant · {c.hosts_not_reached} not reached"
    rings_passed = sum(r.status == "passed" for r in view.rings)
    not_started = sum(r.status == "not-started" for r in view.rings)
    apply_total = sum(len(row.apply.outcomes) for row in view.hosts if row.apply)
    applied = any(row.apply is not None for row in view.hosts)
    tiles = [
        _kpi(
            "Checks passed",
            c.checks_passed,
            c.checks_total,
            checks_note,
            _tone(c.checks_passed, c.checks_total),
        ),
        _kpi(
            "Hosts compliant",
            c.hosts_compliant,
            c.hosts_total,
            hosts_note,
            _tone(c.hosts_compliant, c.hosts_total),
        ),
        _kpi(
            "Rings passed",
            rings_passed,
            len(view.rings),
            f"{not_started} not started",
            _tone(rings_passed, len(view.rings)),
        ),
        _kpi(
            "Apply failures",
            c.apply_failures,
            None,
            f"of {apply_total} resource results" if applied else "nothing applied in this run",
            "bad" if c.apply_failures else ("good" if applied else "neutral"),
        ),
    ]
    return f'<section class="kpis">{"".join(tiles)}</section>\n'


def _rings(view: RunView) -> str:
    rows = []
    for ring in view.rings:
        rows.append(
            f'<tr><th scope="row">{_e(ring.ring)}</th><td>{_pill(ring.status)}</td>'
            f'<td class="num">{len(ring.hosts)}</td>'
            f'<td class="num">{ring.compliant} / {len(ring.hosts)}</td>'
            f'<td class="num">{ring.checks_passed} / {ring.checks_total}'
            f' <span class="muted">({percent(ring.checks_passed, ring.checks_total)})</span></td>'
            f'<td class="num">{ring.apply_failures or DASH}</td>'
            f'<td class="reason">{_e(ring.reason) or DASH}</td></tr>'
        )
    return (
        '<section><h2>Compliance by ring</h2><table class="data rings"><thead><tr>'
        '<th>Ring</th><th>Status</th><th class="num">Hosts</th><th class="num">Compliant</th>'
        '<th class="num">Checks passed</th><th class="num">Apply failures</th><th>Notes</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></section>\n"
    )


def _dl(items: Iterable[tuple[str, str]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _source_items(source: GitSource, inputs: dict[str, str]) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    if source.commit:
        dirty = ' <span class="pill warn">uncommitted changes</span>' if source.dirty else ""
        items.append(("Commit", f'<code class="sha">{_e(source.commit)}</code>{dirty}'))
        items.append(("Message", f"<strong>{_e(subject(source.message))}</strong>"))
        items.append(("Author", _e(source.author) if source.author else DASH))
        items.append(("Date", _e(source.date) if source.date else DASH))
    else:
        items.append(("Commit", '<span class="pill warn">not a Git commit</span>'))
    items.append(("Repository", f"<code>{_e(source.repo)}</code>"))
    rows = "".join(
        f'<tr><td><code>{_e(path)}</code></td><td><code class="sha" title="{_e(digest)}">'
        f"{_e(digest[:16])}</code></td></tr>"
        for path, digest in inputs.items()
    )
    files = (
        f"<details><summary>{len(inputs)} files, sha256</summary>"
        f'<table class="inputs">{rows}</table></details>'
        if inputs
        else DASH
    )
    items.append(("Inputs", files))
    return items


def _operator_short(operator: Operator) -> str:
    who = f"{operator.user}@{operator.hostname}"
    system = operator.ci.get("system")
    return f"{who} via {CI_NAMES.get(system, 'CI')}" if system else who


def _run_items(r: RunRecord) -> list[tuple[str, str]]:
    started, finished, took = _time(r)
    items = [
        ("Kind", _e(r.kind)),
        ("Run id", f"<code>{_e(r.id)}</code>"),
        ("Started", _e(started)),
        ("Finished", f'{_e(finished)} <span class="muted">({_e(took)})</span>'),
        ("Operator", _e(f"{r.operator.user}@{r.operator.hostname}")),
    ]
    ci = dict(r.operator.ci)
    if ci:
        system = ci.pop("system", "ci")
        url = ci.pop("url", "")
        details = " · ".join(
            f"{_e(k.replace('_', ' '))} <code>{_e(v)}</code>" for k, v in ci.items()
        )
        link = (
            f' · <a href="{_e(url)}">{_e(url)}</a>'
            if url.startswith(("https://", "http://"))
            else ""
        )
        items.append(("CI", f"{_e(CI_NAMES.get(system, system))} · {details}{link}"))
    chosen = [f"{_e(k)} <code>{_e(v)}</code>" for k, v in r.selection.items() if v]
    items.append(("Selection", " · ".join(chosen) or "every host"))
    if r.emergency_reason:
        items.append(("Emergency", f"<strong>{_e(r.emergency_reason)}</strong>"))
    items.append(("Tool", f"patchring {_e(r.tool_version)} · schema <code>{_e(r.schema_)}</code>"))
    return items


def _provenance(r: RunRecord) -> str:
    return (
        '<section class="provenance"><div class="panel"><h2>Policy source</h2>'
        f"{_dl(_source_items(r.source, r.inputs))}</div>"
        f'<div class="panel"><h2>Run</h2>{_dl(_run_items(r))}</div></section>\n'
    )


# --- hosts x checks ------------------------------------------------------------------------------


def _failure_anchors(view: RunView) -> dict[tuple[str, str], str]:
    anchors = {(f.host, f.check.check_id): f"f{i}" for i, f in enumerate(view.check_failures, 1)}
    anchors |= {
        (f.host, f"apply:{f.resource_id}"): f"a{i}" for i, f in enumerate(view.apply_failures, 1)
    }
    return anchors


def _matrix_head(view: RunView, with_apply: bool) -> str:
    groups: list[tuple[str, str, int]] = []
    for column in view.columns:
        if groups and groups[-1][:2] == (column.policy, column.group):
            groups[-1] = (column.policy, column.group, groups[-1][2] + 1)
        else:
            groups.append((column.policy, column.group, 1))
    apply = '<th rowspan="2" class="apply-col">Apply</th>' if with_apply else ""
    top = "".join(
        f'<th colspan="{span}" class="group" title="{_e(group)}">{_breakable(group)}'
        f'<span class="policy">{_e(policy)}</span></th>'
        for policy, group, span in groups
    )
    props = "".join(
        f'<th class="prop" title="{_e(c.check_id)}: {_e(c.title)}">{_breakable(c.label)}</th>'
        for c in view.columns
    )
    return (
        f'<thead><tr><th rowspan="2" class="corner">Host</th>{apply}{top}</tr>'
        f"<tr>{props}</tr></thead>"
    )


def _check_cell(row: HostRow, column: CheckColumn, anchors: dict[tuple[str, str], str]) -> str:
    check = row.checks.get(column.check_id)
    if check is None:
        tip = f"{row.host} · {column.check_id}: not run"
        return f'<td class="cell none" title="{_e(tip)}">{SYMBOL["none"]}</td>'
    tip = f"{row.host} · {check.title}\n{check.status}: expected {check.expected}"
    tip += f", got {check.actual}" + (f"\n{check.message}" if check.message else "")
    symbol = SYMBOL[check.status]
    anchor = anchors.get((row.host, check.check_id))
    inner = f'<a href="#{anchor}">{symbol}</a>' if anchor else symbol
    label = _e(check.status)
    return f'<td class="cell {label}" title="{_e(tip)}" aria-label="{label}">{inner}</td>'


def _apply_cell(row: HostRow, anchors: dict[tuple[str, str], str]) -> str:
    result = row.apply
    if result is None:
        return f'<td class="cell none apply-col" title="not applied">{SYMBOL["none"]}</td>'
    counts: dict[str, int] = {}
    for outcome in result.outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    tip = f"{row.host}: apply {result.status}; " + (
        ", ".join(f"{n} {s}" for s, n in counts.items()) or (result.error or "no resources")
    )
    state = "failed" if result.status in {"failed", "unreachable"} else "passed"
    symbol = APPLY_SYMBOL[result.status]
    anchor = next(
        (a for (h, k), a in anchors.items() if h == row.host and k.startswith("apply:")), None
    )
    inner = f'<a href="#{anchor}">{symbol}</a>' if anchor and state == "failed" else symbol
    return (
        f'<td class="cell {state} apply-col" title="{_e(tip)}">{inner}'
        f'<span class="apply-word">{_e(result.status)}</span></td>'
    )


def _host_cell(row: HostRow) -> str:
    return f'<th scope="row" class="host"><span>{_e(row.host)}</span>{_pill(row.state)}</th>'


def _matrix(view: RunView, anchors: dict[tuple[str, str], str]) -> str:
    with_apply = any(row.apply is not None for row in view.hosts)
    width = len(view.columns) + 1 + int(with_apply)
    body = []
    for ring in view.rings:
        body.append(
            f'<tr class="ring-row"><th colspan="{width}">Ring {_e(ring.ring)} {_pill(ring.status)}'
            f'<span class="muted">{_ring_note(ring)}</span></th></tr>'
        )
        for row in (r for r in view.hosts if r.ring == ring.ring):
            cells = _apply_cell(row, anchors) if with_apply else ""
            if row.state == "not-reached" or (not row.checks and view.columns):
                why = row.problem or _not_reached(ring.status, ring.reason)
                span = len(view.columns)
                cells += f'<td colspan="{span}" class="gap">{_e(why)}</td>' if span else ""
            else:
                cells += "".join(_check_cell(row, c, anchors) for c in view.columns)
            body.append(f'<tr class="host-row {_e(row.state)}">{_host_cell(row)}{cells}</tr>')
    legend = (
        '<p class="legend"><span class="cell passed">✓</span> passed '
        '<span class="cell failed">✗</span> failed <span class="cell error">!</span> error '
        '(the check could not run) <span class="cell none">&ndash;</span> not run. '
        "Hover a cell for expected and actual values; failed cells link to their details.</p>"
    )
    return (
        f"<section><h2>Hosts &times; checks</h2>{legend}"
        '<div class="matrix-wrap"><table class="matrix">'
        f"{_matrix_head(view, with_apply)}<tbody>{''.join(body)}</tbody></table></div>"
        "</section>\n"
    )


def _history(record: RunRecord) -> str:
    """A rollout as its ledger tells it: gates and approvals, then every host outcome."""
    log = record.rollout
    if log is None:
        return ""
    entries = [(g.at, f"gate {g.ring}", _pill(g.outcome), "; ".join(g.reasons)) for g in log.gates]
    entries += [(a.at, f"approval of {a.ring}", _e(a.who), a.reason) for a in log.approvals]
    rows = "".join(
        f"<tr><td>{_e(f'{at:%Y-%m-%d %H:%M:%S}')}</td><td>{_e(what)}</td><td>{state}</td>"
        f'<td class="reason">{_e(why) or DASH}</td></tr>'
        for at, what, state, why in sorted(entries, key=lambda entry: entry[0])
    )
    events = "".join(
        f"<tr><td>{_e(f'{o.at:%Y-%m-%d %H:%M:%S}')}</td><td>{_e(o.ring)}</td>"
        f'<td class="num">{o.batch + 1}</td><td>{_e(o.host)}</td><td>{_e(o.phase)}</td>'
        f"<td>{_e(o.status)}</td></tr>"
        for o in log.events
    )
    return (
        f"<section><h2>Rollout {_e(log.id)} {_pill(log.status)}</h2>"
        '<table class="data"><thead><tr><th>When (UTC)</th><th>What</th><th>Outcome</th>'
        f"<th>Notes</th></tr></thead><tbody>{rows}</tbody></table>"
        f"<details><summary>Every host outcome ({len(log.events)})</summary>"
        '<table class="data"><thead><tr><th>When (UTC)</th><th>Ring</th>'
        '<th class="num">Batch</th><th>Host</th><th>Phase</th><th>Status</th></tr></thead>'
        f"<tbody>{events}</tbody></table></details></section>\n"
    )


def _ring_note(ring: RingRow) -> str:
    count = len(ring.hosts)
    if ring.status == "not-started":
        return f"{count} host{'s' if count != 1 else ''}, not reached"
    return f"{ring.compliant} of {count} hosts compliant"


def _not_reached(ring_status: str, reason: str) -> str:
    if ring_status == "not-started":
        return "not reached: the rollout stopped before this ring" + (
            f" ({reason})" if reason else ""
        )
    return "no check results"


# --- failures ------------------------------------------------------------------------------------


def _pre(text: str, css: str = "") -> str:
    lines = text.rstrip("\n").split("\n")
    more = ""
    if len(lines) > MAX_OUTPUT_LINES:
        more = f"\n… {len(lines) - MAX_OUTPUT_LINES} more lines in the JSON record"
        lines = lines[:MAX_OUTPUT_LINES]
    return f'<pre class="{css}">{_e(chr(10).join(lines))}{_e(more)}</pre>'


def _evidence(items: tuple[Evidence, ...]) -> str:
    if not items:
        return ""
    out = ['<div class="evidence"><div class="label">Evidence</div>']
    for ev in items:
        tone = "ok" if ev.exit_status == 0 else "bad"
        out.append(
            f'<div class="cmd"><code>$ {_e(ev.command)}</code>'
            f'<span class="exit {tone}">exit {ev.exit_status}</span></div>'
        )
        if ev.stdout.strip():
            out.append(_pre(ev.stdout))
        if ev.stderr.strip():
            out.append(_pre(ev.stderr, "stderr"))
    return "".join(out) + "</div>"


def _check_failure(failure: CheckFailure, anchor: str) -> str:
    c: CheckResult = failure.check
    message = f'<p class="message">{_e(c.message)}</p>' if c.message else ""
    source = ' <span class="pill neutral">user check</span>' if c.source == "user" else ""
    return (
        f'<div class="failure" id="{anchor}"><div class="failure-head">'
        f'<span class="cell {_e(c.status)}">{SYMBOL[c.status]}</span>'
        f'<strong>{_e(c.title)}</strong>{source}<code class="check-id">{_e(c.check_id)}</code>'
        '</div><div class="compare">'
        f'<div><div class="label">Expected</div><code>{_e(c.expected)}</code></div>'
        f'<div><div class="label">Actual</div><code class="actual">{_e(c.actual)}</code></div>'
        f"</div>{message}{_evidence(c.evidence)}</div>"
    )


def _apply_failure(failure: ApplyFailure, anchor: str) -> str:
    what = (
        f"<code>{_e(failure.resource_id)}</code>"
        + (f' <span class="muted">policy {_e(failure.policy)}</span>' if failure.policy else "")
        if failure.resource_id
        else "<strong>the host as a whole</strong>"
    )
    summary = f'<p class="message">{_e(failure.summary)}</p>' if failure.summary else ""
    error = f'<div class="label">Error</div>{_pre(failure.error, "error")}' if failure.error else ""
    diff = f'<div class="label">Diff</div>{_pre(failure.diff, "diff")}' if failure.diff else ""
    return (
        f'<div class="failure apply" id="{anchor}"><div class="failure-head">'
        f'<span class="tag">apply failed</span>{what}</div>{summary}{error}{diff}</div>'
    )


def _failures(view: RunView, anchors: dict[tuple[str, str], str]) -> str:
    total = len(view.check_failures) + len(view.apply_failures)
    if not total:
        return (
            '<section><h2>Failures</h2><p class="all-clear">No failures: every check that ran '
            "passed and every resource was applied.</p></section>\n"
        )
    blocks = []
    for row in view.hosts:
        applies = [f for f in view.apply_failures if f.host == row.host]
        checks = [f for f in view.check_failures if f.host == row.host]
        if not applies and not checks:
            continue
        items = [_apply_failure(f, anchors[(f.host, f"apply:{f.resource_id}")]) for f in applies]
        items += [_check_failure(f, anchors[(f.host, f.check.check_id)]) for f in checks]
        counts = f"{len(applies)} apply · {len(checks)} checks"
        blocks.append(
            f'<article class="host-failures"><h3>{_e(row.host)} <span class="muted">ring '
            f"{_e(row.ring)} · {counts}</span></h3>{''.join(items)}</article>"
        )
    head = f'<h2>Failures <span class="count">{total}</span></h2>'
    return f"<section>{head}{''.join(blocks)}</section>\n"


def _footer(r: RunRecord) -> str:
    return (
        f"<footer>Generated by patchring {_e(r.tool_version)} from run record <code>{_e(r.id)}"
        f"</code> ({_e(r.schema_)}). The JSON record next to this file is the authoritative "
        "copy; this page is self-contained and works offline.</footer>\n"
    )


STYLE = """
:root {
  --fg: #1f2328; --muted: #59636e; --faint: #818b98; --line: #d1d9e0; --soft: #eef1f4;
  --page: #f6f8fa; --card: #ffffff; --accent: #0969da;
  --pass: #1a7f37; --pass-bg: #dafbe1; --fail: #cf222e; --fail-bg: #ffebe9;
  --err: #9a6700; --err-bg: #fff8c5; --none: #818b98; --none-bg: #f6f8fa;
  --mono: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "DejaVu Sans Mono",
    "Liberation Mono", monospace;
}
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body {
  margin: 0; background: var(--page); color: var(--fg);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "Noto Sans",
    "DejaVu Sans", "Liberation Sans", Arial, sans-serif;
  -webkit-print-color-adjust: exact; print-color-adjust: exact;
}
main { max-width: 1240px; margin: 0 auto; padding: 32px 32px 48px; }
h1, h2, h3 { line-height: 1.25; margin: 0; }
h2 { font-size: 17px; font-weight: 600; margin: 0 0 12px; }
h3 { font-size: 15px; font-weight: 600; }
code, pre { font-family: var(--mono); font-size: 12.5px; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
section { margin-top: 28px; }
.muted { color: var(--muted); font-weight: 400; }

.masthead { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 20px 24px; border-top: 4px solid var(--faint); }
.masthead.status-succeeded { border-top-color: var(--pass); }
.masthead.status-failed, .masthead.status-halted { border-top-color: var(--fail); }
.masthead.status-interrupted { border-top-color: var(--err); }
.eyebrow { font-size: 12px; letter-spacing: .06em; text-transform: uppercase; color: var(--muted);
  font-weight: 600; }
.headline { display: flex; align-items: flex-start; justify-content: space-between; gap: 16px;
  margin: 6px 0 8px; }
.headline h1 { font-size: 22px; font-weight: 600; }
.meta { margin: 0; color: var(--muted); }
.meta code { color: var(--fg); }
.status-badge { flex: none; font-size: 12px; font-weight: 700; letter-spacing: .06em;
  text-transform: uppercase; padding: 5px 12px; border-radius: 999px; border: 1px solid;
  background: var(--none-bg); color: var(--muted); }
.status-badge.succeeded { background: var(--pass-bg); color: var(--pass); }
.status-badge.failed, .status-badge.halted { background: var(--fail-bg); color: var(--fail); }
.status-badge.interrupted { background: var(--err-bg); color: var(--err); }

.banner { margin-top: 12px; padding: 10px 14px; border-radius: 8px; border: 1px solid; }
.banner.warn { background: var(--err-bg); border-color: #d4a72c; color: #4d2d00; }
.banner.danger { background: var(--fail-bg); border-color: #ff8182; color: #82071e; }

.kpis { display: grid; grid-template-columns: repeat(4, 1fr); gap: 12px; margin-top: 16px; }
.kpi { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 14px 16px; }
.kpi-label { color: var(--muted); font-size: 12.5px; font-weight: 600; }
.kpi-value { font-size: 28px; font-weight: 600; line-height: 1.2; margin-top: 4px;
  font-variant-numeric: tabular-nums; }
.kpi-value .of { font-size: 16px; color: var(--muted); font-weight: 400; margin-left: 4px; }
.kpi-note { color: var(--muted); font-size: 12.5px; margin-top: 6px; }
.bar { height: 6px; border-radius: 3px; background: var(--soft); margin-top: 8px;
  overflow: hidden; }
.bar span { display: block; height: 100%; background: var(--faint); }
.kpi.good .bar span { background: var(--pass); }
.kpi.bad .bar span { background: var(--fail); }
.kpi.bad .kpi-value { color: var(--fail); }
.kpi.good .kpi-value { color: var(--pass); }

table { border-collapse: collapse; }
.data { width: 100%; background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  border-collapse: separate; border-spacing: 0; overflow: hidden; }
.data th, .data td { padding: 9px 14px; text-align: left; border-bottom: 1px solid var(--soft);
  vertical-align: top; }
.data thead th { background: var(--page); color: var(--muted); font-size: 12px; font-weight: 600;
  text-transform: uppercase; letter-spacing: .04em; border-bottom: 1px solid var(--line); }
.data tbody tr:last-child > * { border-bottom: 0; }
.data .num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.data .reason { color: var(--muted); }

.pill { display: inline-block; font-size: 11.5px; font-weight: 600; line-height: 18px;
  padding: 0 8px; border-radius: 999px; white-space: nowrap; background: var(--none-bg);
  color: var(--muted); border: 1px solid var(--line); }
.pill.passed, .pill.compliant { background: var(--pass-bg); color: var(--pass);
  border-color: #aceebb; }
.pill.failed, .pill.failing, .pill.unreachable { background: var(--fail-bg); color: var(--fail);
  border-color: #ffcecb; }
.pill.warn, .pill.inconclusive, .pill.in-progress { background: var(--err-bg); color: var(--err);
  border-color: #eed888; }

.provenance { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.panel { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 16px 20px; min-width: 0; }
.panel h2 { font-size: 15px; }
dl { display: grid; grid-template-columns: 96px 1fr; gap: 6px 12px; margin: 0; }
dt { color: var(--muted); }
dd { margin: 0; min-width: 0; overflow-wrap: anywhere; }
.sha { font-size: 12px; }
details summary { cursor: pointer; color: var(--accent); }
.inputs { margin-top: 6px; font-size: 12px; }
.inputs td { padding: 2px 12px 2px 0; }

.legend { color: var(--muted); margin: -4px 0 10px; font-size: 12.5px; }
.legend .cell { display: inline-block; width: 20px; height: 20px; line-height: 20px;
  border-radius: 4px; text-align: center; margin: 0 2px 0 8px; }
.legend .cell:first-child { margin-left: 0; }
.matrix-wrap { overflow-x: auto; background: var(--card); border: 1px solid var(--line);
  border-radius: 10px; }
.matrix { width: 100%; font-size: 12.5px; }
.matrix th, .matrix td { border-bottom: 1px solid var(--soft); }
.matrix thead th { background: var(--page); font-weight: 600; color: var(--muted);
  padding: 6px 8px; border-bottom: 1px solid var(--line); }
.matrix th.corner { text-align: left; padding-left: 14px; font-size: 12px;
  text-transform: uppercase; letter-spacing: .04em; min-width: 190px; }
.matrix th.group { color: var(--fg); font-family: var(--mono); font-size: 11.5px; max-width: 180px;
  font-weight: 600; border-left: 1px solid var(--line); text-align: center; }
.matrix th.group .policy { display: block; font-family: system-ui, sans-serif; font-weight: 400;
  color: var(--faint); font-size: 11px; }
.matrix th.prop { font-weight: 500; font-size: 11.5px; max-width: 120px; }
.matrix th.apply-col, .matrix td.apply-col { border-right: 1px solid var(--line); }
.matrix th.apply-col { font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.matrix tr.ring-row th { text-align: left; background: #fbfcfd; padding: 8px 14px;
  font-weight: 600; border-top: 1px solid var(--line); border-bottom: 1px solid var(--line); }
.matrix tr.ring-row .pill { margin: 0 10px 0 6px; }
.matrix tbody tr:first-child.ring-row th { border-top: 0; }
.matrix th.host { text-align: left; font-weight: 500; padding: 6px 14px; white-space: nowrap; }
.matrix th.host, .matrix th.corner { position: sticky; left: 0; z-index: 1; }
.matrix th.host { background: var(--card); }
.matrix th.host span:first-child { font-family: var(--mono); margin-right: 8px; }
.matrix td.cell { text-align: center; padding: 0; height: 34px; min-width: 44px;
  font-weight: 700; font-size: 14px; }
.matrix td.cell a { color: inherit; display: block; line-height: 34px; }
.matrix td.gap { color: var(--faint); font-style: italic; padding: 6px 12px; }
.matrix tr.not-reached th.host { color: var(--muted); }
.apply-word { display: block; font-size: 10.5px; font-weight: 500; line-height: 1; }
.cell.passed { background: var(--pass-bg); color: var(--pass); }
.cell.failed { background: var(--fail-bg); color: var(--fail); }
.cell.error { background: var(--err-bg); color: var(--err); }
.cell.none { background: var(--none-bg); color: var(--none); font-weight: 400; }
.matrix td.cell { box-shadow: inset 0 0 0 2px var(--card); }

.count { display: inline-block; font-size: 12px; font-weight: 600; background: var(--fail-bg);
  color: var(--fail); border-radius: 999px; padding: 0 8px; vertical-align: 2px;
  margin-left: 4px; }
.host-failures { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 16px 20px; margin-bottom: 12px; }
.host-failures h3 { font-family: var(--mono); font-size: 14px; margin-bottom: 4px; }
.host-failures h3 .muted { font-family: system-ui, sans-serif; font-size: 12.5px;
  margin-left: 6px; }
.failure { border-top: 1px solid var(--soft); padding: 14px 0 4px; break-inside: avoid; }
.failure-head { display: flex; align-items: center; flex-wrap: wrap; gap: 8px; }
.failure-head .cell { display: inline-block; width: 22px; height: 22px; line-height: 22px;
  border-radius: 5px; text-align: center; font-weight: 700; }
.check-id { color: var(--muted); font-size: 11.5px; margin-left: auto; }
.tag { font-size: 11px; font-weight: 700; letter-spacing: .05em; text-transform: uppercase;
  background: var(--fail); color: #fff; padding: 2px 8px; border-radius: 4px; }
.compare { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; margin: 10px 0 0 30px; }
.compare > div { background: var(--page); border: 1px solid var(--soft); border-radius: 6px;
  padding: 6px 10px; min-width: 0; overflow-wrap: anywhere; }
.compare .actual { color: var(--fail); }
.label { font-size: 11px; font-weight: 600; text-transform: uppercase; letter-spacing: .05em;
  color: var(--muted); margin: 10px 0 4px; }
.compare .label { margin-top: 0; }
.message { margin: 8px 0 0 30px; }
.failure.apply .message, .failure.apply .label, .failure.apply pre { margin-left: 0; }
.evidence { margin-left: 30px; }
.cmd { display: flex; align-items: center; gap: 10px; margin-top: 6px; }
.cmd code { overflow-wrap: anywhere; }
.exit { font-size: 11px; font-weight: 600; padding: 0 6px; border-radius: 4px; flex: none; }
.exit.ok { background: var(--pass-bg); color: var(--pass); }
.exit.bad { background: var(--fail-bg); color: var(--fail); }
pre { margin: 6px 0 0; padding: 10px 12px; background: #f6f8fa; border: 1px solid var(--soft);
  border-radius: 6px; white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.45; }
pre.stderr, pre.error { background: #fff5f5; border-color: #ffd8d3; color: #82071e; }
.all-clear { background: var(--pass-bg); color: var(--pass); border-radius: 10px;
  padding: 12px 16px; margin: 0; font-weight: 500; }
footer { margin-top: 32px; padding-top: 16px; border-top: 1px solid var(--line);
  color: var(--faint); font-size: 12px; }

@media (max-width: 900px) {
  .kpis { grid-template-columns: repeat(2, 1fr); }
  .provenance, .compare { grid-template-columns: 1fr; }
}
@media print {
  body { background: #fff; font-size: 11.5px; }
  main { max-width: none; padding: 0; }
  .masthead, .kpi, .panel, .data, .matrix-wrap, .host-failures { border-color: #c8ced6; }
  .matrix-wrap { overflow: visible; }
  section { break-inside: auto; }
  .kpis, .provenance, .host-failures h3, .failure { break-inside: avoid; }
  h2 { break-after: avoid; }
  a { color: inherit; }
  details > * { display: block; }
  @page { size: A4 landscape; margin: 12mm; }
}
"""
