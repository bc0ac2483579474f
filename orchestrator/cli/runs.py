"""Run records: `Recorder` (used by apply, verify, rollout) and the verify and report commands."""

from __future__ import annotations

import argparse
import getpass
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator import __version__
from orchestrator.cli.console import Output
from orchestrator.cli.project import Selection, select
from orchestrator.errors import EXIT_HOSTS_FAILED, EXIT_OK
from orchestrator.model.record import RingOutcome, RunKind, RunRecord, RunStatus
from orchestrator.model.results import HostResult
from orchestrator.model.verification import HostVerification

RUNS_FOLDER = Path(".patchring") / "runs"


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("verify", parents=[common], help="check every host against its policies")
    _selection_flags(p)
    p.set_defaults(handler=cmd_verify)
    p = sub.add_parser("report", help="render a recorded run (default: the latest)")
    p.add_argument("run", nargs="?", default=None, help="run id (default: latest)")
    p.add_argument("--repo", type=Path, default=Path("."), help="policy repository (default: .)")
    p.add_argument("--format", choices=("markdown", "html", "junit", "json"), default="markdown")
    p.add_argument("--output", "-o", type=Path, help="write to this file instead of stdout")
    p.set_defaults(handler=cmd_report)


def _selection_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ring", help="only hosts of this ring")
    p.add_argument("--host", action="append", metavar="HOST", help="only this host (repeatable)")
    p.add_argument("--json", action="store_true", help="print the run record")


@dataclass
class Recorder:
    """Checks the history is writable before anything runs, then writes the record and reports."""

    repo: Path
    kind: RunKind
    output: Output
    selection: dict[str, str | None]
    started: datetime

    @classmethod
    def start(
        cls, repo: Path, kind: RunKind, output: Output, **selection: str | list[str] | None
    ) -> Recorder:
        _store(repo).check_writable()
        chosen = {k: ",".join(v) if isinstance(v, list) else v for k, v in selection.items()}
        return cls(repo, kind, output, chosen, datetime.now(UTC))

    def finish(
        self,
        chosen: Selection,
        status: RunStatus,
        apply: Sequence[HostResult] = (),
        verify: Sequence[HostVerification] = (),
        rings: Sequence[RingOutcome] = (),
        emergency_reason: str | None = None,
    ) -> tuple[RunRecord, dict[str, Path]]:
        from orchestrator.gitops import compute_inputs, git_source
        from orchestrator.report.files import write_reports
        from orchestrator.report.record import new_run_id, operator_from_env

        now = datetime.now(UTC)
        record = RunRecord(
            id=new_run_id(self.kind, self.started),
            kind=self.kind,
            status=status,
            started=self.started,
            finished=now,
            tool_version=__version__,
            source=git_source(self.repo),
            inputs=compute_inputs(self.repo, chosen.project),
            operator=operator_from_env(os.environ, _user(), socket.gethostname()),
            selection=self.selection,
            apply=tuple(apply),
            verify=tuple(verify),
            rings=tuple(rings),
            emergency_reason=emergency_reason,
        )
        mask = self.output.masker  # every secret of every project this command loaded
        record = mask.value(record)  # secrets never reach the history or a report
        path = _store(self.repo).save(record)
        files = write_reports(record, path.parent, mask)
        return record, files


def _store(repo: Path) -> Any:
    from orchestrator.store import RunStore

    return RunStore(repo / RUNS_FOLDER)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def cmd_verify(args: argparse.Namespace, output: Output) -> int:
    from orchestrator.verify import verify_hosts

    recorder = Recorder.start(args.repo, "verify", output, ring=args.ring, host=args.host)
    chosen = select(args.repo, args.inventory, args.ring, args.host, output)
    with output.progress("Verifying", len(chosen.fleet)) as progress:
        results = verify_hosts(chosen.fleet, progress, output.mask)
    failed = any(v.status != "passed" for v in results.values())
    record, files = recorder.finish(
        chosen, "failed" if failed else "succeeded", verify=list(results.values())
    )
    _print_run(output, record, files, _verify_summary(results.values()))
    return EXIT_HOSTS_FAILED if failed else EXIT_OK


def cmd_report(args: argparse.Namespace, output: Output) -> int:
    from orchestrator.report.html import render_html
    from orchestrator.report.junit import render_junit
    from orchestrator.report.markdown import render_markdown

    record = _store(args.repo).resolve(args.run)
    renderers = {
        "markdown": render_markdown,
        "html": render_html,
        "junit": render_junit,
        "json": lambda r: r.model_dump_json(indent=2, by_alias=True) + "\n",
    }
    text = renderers[args.format](record)
    if args.output:
        args.output.write_text(output.mask(text))
        output.note(f"wrote {args.output}")
    else:
        output.text(text)
    return EXIT_OK


def _verify_summary(results: Any) -> str:
    results = list(results)
    checks = [c for v in results for c in v.results]
    passed = sum(c.status == "passed" for c in checks)
    lines = [f"Verify: {len(results)} hosts, {passed}/{len(checks)} checks passed"]
    for v in results:
        bad = [c for c in v.results if c.status != "passed"]
        mark = "=" if v.status == "passed" else "!"
        lines.append(
            f"  {mark} {v.host:<12} {v.status:<12} {len(v.results) - len(bad)}/"
            f"{len(v.results)} checks passed" + (f"  {v.error}" if v.error else "")
        )
        for c in bad[:10]:
            lines.append(f"      {c.status:<7} {c.check_id}: expected {c.expected}, got {c.actual}")
    return "\n".join(lines)


def _print_run(output: Output, record: RunRecord, files: dict[str, Path], text: str) -> None:
    if output.json_mode:
        output.document(record.model_dump(mode="json", by_alias=True))
        return
    where = ", ".join(str(p) for p in files.values())
    output.text(f"{text}\n\nRun {record.id} recorded; reports: {where}\n")
