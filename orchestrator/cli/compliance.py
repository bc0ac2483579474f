"""`patchring compliance`: patch SLAs and control results for auditors, from the run history.

Offline: reads the recorded runs (`.patchring/runs/*.json`), the inventory's SLA days and the
lock's first-seen dates; no host is contacted. `--as-of` uses only the records started up to
then. Exit codes: 0 nothing overdue; 3 a CVE is open past its SLA on a host; 1 invalid input.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.cli.console import Output
from orchestrator.cli.project import load
from orchestrator.errors import EXIT_HOSTS_FAILED, EXIT_OK, UserInputError
from orchestrator.inventory import select_hosts
from orchestrator.model.record import RunRecord
from orchestrator.store.runs import RunStore


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "compliance",
        parents=[common],
        help="patch SLAs per CVE, control results per ring, patch level per host (offline)",
    )
    p.add_argument("--ring", help="only hosts of this ring")
    p.add_argument(
        "--as-of",
        metavar="DATE",
        help="the state on that day (YYYY-MM-DD, end of day UTC) or at a time with a zone",
    )
    p.add_argument("--json", action="store_true", help="a patchring.compliance/v1 document")
    p.add_argument("--format", choices=("markdown", "html"), default="markdown")
    p.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    p.set_defaults(handler=cmd_compliance)


def cmd_compliance(args: argparse.Namespace, output: Output) -> int:
    from orchestrator.report.compliance import build_compliance, parse_as_of
    from orchestrator.report.compliance_render import (
        compliance_document,
        render_compliance_html,
        render_compliance_markdown,
    )

    try:
        as_of = parse_as_of(args.as_of) if args.as_of else datetime.now(UTC)
    except ValueError as exc:
        raise UserInputError(str(exc)) from None
    project = load(args.repo, args.inventory, output)
    records = _records(RunStore.for_repo(args.repo), output)
    seen = project.lock.lock.seen if project.lock else {}
    view = build_compliance(records, as_of, project.inventory.patching.sla_days, seen, args.ring)
    if args.ring and not view.hosts:
        select_hosts(project.inventory, ring=args.ring)  # a ring of no record: is it known?
    if not view.runs:
        raise UserInputError(
            f"no runs recorded up to {as_of:%Y-%m-%d %H:%M} UTC in {args.repo / '.patchring/runs'}",
            hint="`patchring assess` and `patchring verify` record runs",
        )
    if args.json:
        output.document(compliance_document(view))
    else:
        html = args.format == "html"
        text = render_compliance_html(view) if html else render_compliance_markdown(view)
        if args.output:
            args.output.write_text(output.mask(text), encoding="utf-8")
            output.note(f"wrote {args.output}")
        else:
            output.text(text)
    return EXIT_HOSTS_FAILED if view.overdue else EXIT_OK


def _records(store: RunStore, output: Output) -> list[RunRecord]:
    records = []
    for summary in store.list():
        if summary.problem is not None:
            output.error(f"patchring: warning: skipped {summary.path}: {summary.problem}")
            continue
        records.append(store.load(summary.id))
    return records
