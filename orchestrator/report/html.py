"""A run record as one self-contained HTML page for auditors: summary, hosts x checks, failures,
and for an assessment the exposure summary.

Pure: a record in, a string out. This module builds the view models (what each cell says, which
tone a tile takes, where a failure anchor points); the markup and styles are Jinja2 templates in
`report/templates/` rendered with autoescape (see `report.templating`). Inline CSS only (no
scripts, fonts or images to fetch), so the file works offline, from a CI artifact or an e-mail,
and prints cleanly. Every text that came from a host or an error is masked first (see
`record.build_view`). Imports only the standard library, markupsafe, jinja2 (through
`templating`, which reads the package's own templates) and `report`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from markupsafe import Markup

from orchestrator.model.record import RunRecord
from orchestrator.model.verification import CheckResult
from orchestrator.report.compliance import controls_of
from orchestrator.report.exposure import BUCKETS, build_exposure
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
from orchestrator.report.rollout_text import restart_why
from orchestrator.report.templating import render_template
from orchestrator.words import counted

MAX_OUTPUT_LINES = 40
DASH = Markup("&ndash;")
SYMBOL = {"passed": "✓", "failed": "✗", "error": "!", "waived": "W", "none": DASH}
APPLY_SYMBOL = {"changed": "~", "unchanged": "=", "failed": "✗", "unreachable": "!"}
MATRIX_MAX_CHECKS = 30
"""Past this many check columns the hosts x checks matrix no longer fits a screen: the page
shows a per-control summary instead (the failures per host stay listed below it)."""


def render_html(record: RunRecord, mask: Mask = no_mask) -> str:
    view = build_view(record, mask)
    r = view.record
    started, finished, took = _time(r)
    page = {
        "view": view,
        "r": r,
        "title": f"patchring {r.kind} {r.id}: {r.status}",
        "started": started,
        "finished": finished,
        "took": took,
        "operator_short": _operator_short(r),
        "message_subject": subject(r.source.message),
        "ci": _ci(r),
        "DASH": DASH,
    }
    if r.patching is not None:
        exposure = build_exposure(r.patching)
        return render_template("assess.html.j2", **page, exposure=exposure, buckets=BUCKETS)
    anchors = _failure_anchors(view)
    return render_template(
        "run.html.j2",
        **page,
        kpis=_kpis(view),
        rings=[(ring, percent(ring.checks_passed, ring.checks_total)) for ring in view.rings],
        history=_history(r),
        matrix=_matrix(view, anchors),
        controls=(controls_of(r.verify) if len(view.columns) > MATRIX_MAX_CHECKS else None),
        failures=_failures(view, anchors),
        failure_count=_failure_count(view),
        waived=view.waived,
    )


def _failure_count(view: RunView) -> str:
    """`3 on 2 hosts`: the count the host blocks below add up to."""
    hosts = {f.host for f in view.apply_failures} | {f.host for f in view.check_failures}
    count = len(view.apply_failures) + len(view.check_failures)
    return f"{count} on {counted(len(hosts), 'host')}" if count else "0"


def _time(record: RunRecord) -> tuple[str, str, str]:
    started = record.started.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    finished = record.finished.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    took = format_duration((record.finished - record.started).total_seconds())
    return started, finished, took


def _operator_short(r: RunRecord) -> str:
    who = f"{r.operator.user}@{r.operator.hostname}"
    system = r.operator.ci.get("system")
    return f"{who} via {CI_NAMES.get(system, 'CI')}" if system else who


@dataclass(frozen=True)
class CiView:
    system: str
    details: list[tuple[str, str]]
    url: str  # '' unless http(s): only such links are drawn


def _ci(r: RunRecord) -> CiView | None:
    ci = dict(r.operator.ci)
    if not ci:
        return None
    system = ci.pop("system", "ci")
    url = ci.pop("url", "")
    return CiView(
        system=CI_NAMES.get(system, system),
        details=[(k.replace("_", " "), v) for k, v in ci.items()],
        url=url if url.startswith(("https://", "http://")) else "",
    )


# --- tiles ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kpi:
    label: str
    value: int
    total: int | None
    note: str
    tone: str

    @property
    def width(self) -> str:
        return f"{100 * self.value / self.total:.1f}" if self.total else ""


def _tone(good: int, total: int) -> str:
    return "neutral" if total == 0 else ("good" if good == total else "bad")


def _kpis(view: RunView) -> list[Kpi]:
    c = view.compliance
    checks_note = f"{percent(c.checks_passed, c.checks_total)} passed"
    if c.checks_failed or c.checks_error:
        errors = f"{c.checks_error} error{'s' if c.checks_error != 1 else ''}"
        checks_note += f" · {c.checks_failed} failed · {errors}"
    failing = c.hosts_total - c.hosts_compliant - c.hosts_not_reached
    reached = c.hosts_total - c.hosts_not_reached
    hosts_note = f"{failing} not compliant" + (
        f" · {c.hosts_not_reached} not reached (not counted)" if c.hosts_not_reached else ""
    )
    rings_passed = sum(r.status == "passed" for r in view.rings)
    not_started = sum(r.status == "not-started" for r in view.rings)
    apply_total = sum(len(row.apply.outcomes) for row in view.hosts if row.apply)
    applied = any(row.apply is not None for row in view.hosts)
    return [
        Kpi(
            "Checks passed",
            c.checks_passed,
            c.checks_total,
            checks_note,
            _tone(c.checks_passed, c.checks_total),
        ),
        Kpi(
            "Hosts compliant" if not c.hosts_not_reached else "Reached hosts compliant",
            c.hosts_compliant,
            reached,
            hosts_note,
            _tone(c.hosts_compliant, reached),
        ),
        Kpi(
            "Rings passed",
            rings_passed,
            len(view.rings),
            f"{not_started} not started",
            _tone(rings_passed, len(view.rings)),
        ),
        Kpi(
            "Apply failures",
            c.apply_failures,
            None,
            f"of {apply_total} resource results" if applied else "nothing applied in this run",
            "bad" if c.apply_failures else ("good" if applied else "neutral"),
        ),
    ]


# --- rollout history -----------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEntry:
    at: str
    what: str
    outcome: str
    outcome_is_state: bool  # a gate outcome drawn as a pill; an approver drawn as text
    why: str


def _history(r: RunRecord) -> list[HistoryEntry]:
    log = r.rollout
    if log is None:
        return []
    entries = [(g.at, f"gate {g.ring}", g.outcome, True, "; ".join(g.reasons)) for g in log.gates]
    entries += [(a.at, f"approval of {a.ring}", a.who, False, a.reason) for a in log.approvals]
    entries += [
        (e.at, f"{e.kind} {e.host} (ring {e.ring})", e.status, False, restart_why(e))
        for e in log.restarts
        if e.at is not None
    ]
    return [
        HistoryEntry(f"{at:%Y-%m-%d %H:%M:%S}", what, outcome, is_state, why)
        for at, what, outcome, is_state, why in sorted(entries, key=lambda entry: entry[0])
    ]


# --- hosts x checks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    kind: str  # "check", "apply" or "gap"
    state: str  # css state: passed, failed, error, none
    title: str = ""
    symbol: str = ""
    anchor: str = ""
    word: str = ""  # the apply status under its symbol
    span: int = 0  # a gap's width in columns


@dataclass(frozen=True)
class MatrixRow:
    row: HostRow
    cells: list[Cell]


@dataclass(frozen=True)
class MatrixRing:
    ring: RingRow
    note: str
    rows: list[MatrixRow]


@dataclass(frozen=True)
class Matrix:
    with_apply: bool
    width: int
    groups: list[tuple[str, str, int]]  # (policy, group, columns spanned)
    columns: tuple[CheckColumn, ...]
    rings: list[MatrixRing] = field(default_factory=list)


def _failure_anchors(view: RunView) -> dict[tuple[str, str], str]:
    anchors = {(f.host, f.check.check_id): f"f{i}" for i, f in enumerate(view.check_failures, 1)}
    anchors |= {
        (f.host, f"apply:{f.resource_id}"): f"a{i}" for i, f in enumerate(view.apply_failures, 1)
    }
    return anchors


def _groups(view: RunView) -> list[tuple[str, str, int]]:
    groups: list[tuple[str, str, int]] = []
    for column in view.columns:
        if groups and groups[-1][:2] == (column.policy, column.group):
            groups[-1] = (column.policy, column.group, groups[-1][2] + 1)
        else:
            groups.append((column.policy, column.group, 1))
    return groups


def _check_cell(row: HostRow, column: CheckColumn, anchors: dict[tuple[str, str], str]) -> Cell:
    check = row.checks.get(column.check_id)
    if check is None:
        tip = f"{row.host} · {column.check_id}: not run"
        return Cell("check", "none", tip, SYMBOL["none"])
    tip = f"{row.host} · {check.title}\n{check.status}: expected {check.expected}"
    tip += f", got {check.actual}" + (f"\n{check.message}" if check.message else "")
    anchor = anchors.get((row.host, check.check_id), "")
    return Cell("check", check.status, tip, SYMBOL[check.status], anchor)


def _apply_cell(row: HostRow, anchors: dict[tuple[str, str], str]) -> Cell:
    result = row.apply
    if result is None:
        return Cell("apply", "none", "not applied", SYMBOL["none"])
    counts: dict[str, int] = {}
    for outcome in result.outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    tip = f"{row.host}: apply {result.status}; " + (
        ", ".join(f"{n} {s}" for s, n in counts.items()) or (result.error or "no resources")
    )
    state = "failed" if result.status in {"failed", "unreachable"} else "passed"
    anchor = next(
        (a for (h, k), a in anchors.items() if h == row.host and k.startswith("apply:")), ""
    )
    return Cell(
        "apply",
        state,
        tip,
        APPLY_SYMBOL[result.status],
        anchor if state == "failed" else "",
        word=result.status,
    )


def _matrix(view: RunView, anchors: dict[tuple[str, str], str]) -> Matrix:
    with_apply = any(row.apply is not None for row in view.hosts)
    matrix = Matrix(
        with_apply=with_apply,
        width=len(view.columns) + 1 + int(with_apply),
        groups=_groups(view),
        columns=view.columns,
    )
    for ring in view.rings:
        rows = []
        for row in (r for r in view.hosts if r.ring == ring.ring):
            cells = [_apply_cell(row, anchors)] if with_apply else []
            if row.state == "not-reached" or (not row.checks and view.columns):
                why = row.problem or _not_reached(ring.status, ring.reason)
                if view.columns:
                    cells.append(Cell("gap", "gap", why, span=len(view.columns)))
            else:
                cells += [_check_cell(row, c, anchors) for c in view.columns]
            rows.append(MatrixRow(row, cells))
        matrix.rings.append(MatrixRing(ring, _ring_note(ring), rows))
    return matrix


def _ring_note(ring: RingRow) -> str:
    count = len(ring.hosts)
    if ring.status == "not-started":
        return f"{counted(count, 'host')}, not reached"
    return f"{ring.compliant} of {counted(count, 'host')} compliant"


def _not_reached(ring_status: str, reason: str) -> str:
    if ring_status == "not-started":
        return "not reached: the rollout stopped before this ring" + (
            f" ({reason})" if reason else ""
        )
    return "no check results"


# --- failures ------------------------------------------------------------------------------------


def clip(text: str) -> str:
    """Host output cut to `MAX_OUTPUT_LINES` lines, saying how many more the JSON record has."""
    lines = text.rstrip("\n").split("\n")
    more = ""
    if len(lines) > MAX_OUTPUT_LINES:
        more = f"\n… {len(lines) - MAX_OUTPUT_LINES} more lines in the JSON record"
        lines = lines[:MAX_OUTPUT_LINES]
    return "\n".join(lines) + more


@dataclass(frozen=True)
class ApplyItem:
    failure: ApplyFailure
    anchor: str
    error: str  # clipped
    diff: str  # clipped


@dataclass(frozen=True)
class EvidenceItem:
    command: str
    exit_status: int
    stdout: str  # clipped, '' when blank
    stderr: str


@dataclass(frozen=True)
class CheckItem:
    check: CheckResult
    anchor: str
    symbol: str
    evidence: list[EvidenceItem]


@dataclass(frozen=True)
class HostFailures:
    host: str
    ring: str
    counts: str
    applies: list[ApplyItem]
    checks: list[CheckItem]


def _check_item(failure: CheckFailure, anchor: str) -> CheckItem:
    c = failure.check
    evidence = [
        EvidenceItem(
            ev.command,
            ev.exit_status,
            clip(ev.stdout) if ev.stdout.strip() else "",
            clip(ev.stderr) if ev.stderr.strip() else "",
        )
        for ev in c.evidence
    ]
    return CheckItem(c, anchor, SYMBOL[c.status], evidence)


def _failures(view: RunView, anchors: dict[tuple[str, str], str]) -> list[HostFailures]:
    blocks = []
    for row in view.hosts:
        applies = [f for f in view.apply_failures if f.host == row.host]
        checks = [f for f in view.check_failures if f.host == row.host]
        if not applies and not checks:
            continue
        blocks.append(
            HostFailures(
                host=row.host,
                ring=row.ring,
                counts=f"{counted(len(applies), 'apply failure')} · "
                f"{counted(len(checks), 'failed check')}",
                applies=[
                    ApplyItem(
                        f,
                        anchors[(f.host, f"apply:{f.resource_id}")],
                        clip(f.error) if f.error else "",
                        clip(f.diff) if f.diff else "",
                    )
                    for f in applies
                ],
                checks=[_check_item(f, anchors[(f.host, f.check.check_id)]) for f in checks],
            )
        )
    return blocks
