"""Run records: `Recorder` (used by apply, verify, rollout, assess) and the verify and report
commands."""

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
from orchestrator.cli.project import Selection, add_parallel_flag, parallel_for, select
from orchestrator.errors import EXIT_HOSTS_FAILED, EXIT_OK, UserInputError
from orchestrator.model.notification import NotificationDelivery
from orchestrator.model.record import (
    PatchingSection,
    RingOutcome,
    RolloutLog,
    RunKind,
    RunRecord,
    RunStatus,
)
from orchestrator.model.results import HostResult
from orchestrator.model.verification import CHECK_OK, HostVerification
from orchestrator.words import counted

RUNS_FOLDER = Path(".patchring") / "runs"


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("verify", parents=[common], help="check every host against its policies")
    _selection_flags(p)
    add_parallel_flag(p)
    p.set_defaults(handler=cmd_verify)
    p = sub.add_parser(
        "report", parents=[common], help="render a recorded run (default: the latest)"
    )
    p.add_argument("run", nargs="?", default=None, help="run id (default: latest)")
    p.add_argument(
        "--rollout",
        metavar="ID",
        help="render a whole rollout from its ledger (every batch of every invocation)",
    )
    p.add_argument(
        "--ledger",
        default=os.environ.get("PATCHRING_LEDGER"),
        help="with --rollout: the ledger (default: <repo>/.patchring/ledger.db)",
    )
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
        *,
        at: str | None = None,
        project: Any = None,
        rollout: RolloutLog | None = None,
        patching: PatchingSection | None = None,
        change_ticket: str | None = None,
        notifications: Sequence[NotificationDelivery] = (),
    ) -> tuple[RunRecord, dict[str, Path]]:
        """`at` is the commit the run read (a rollout's), `project` what was loaded from it:
        source and input hashes then describe that commit, not the working tree."""
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
            source=git_source(self.repo, at),
            inputs=compute_inputs(self.repo, project or chosen.project, at=at),
            operator=operator_from_env(os.environ, _user(), socket.gethostname()),
            selection=self.selection,
            apply=tuple(apply),
            verify=tuple(verify),
            rings=tuple(rings),
            emergency_reason=emergency_reason,
            change_ticket=change_ticket,
            rollout=rollout,
            patching=patching,
            notifications=tuple(notifications),
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
    patching = _patch_check_data(args.repo, chosen)
    with output.progress("Verifying", len(chosen.fleet)) as progress:
        parallel = parallel_for(args, chosen.project)
        results = verify_hosts(chosen.fleet, progress, output.mask, patching, parallel)
    failed = any(v.status != "passed" for v in results.values())
    record, files = recorder.finish(
        chosen, "failed" if failed else "succeeded", verify=list(results.values())
    )
    _print_run(output, record, files, _verify_summary(results.values()))
    return EXIT_HOSTS_FAILED if failed else EXIT_OK


def _patch_check_data(repo: Path, chosen: Selection) -> Any:
    """The patch baseline checks' data: the security data file is read here, once per run."""
    from orchestrator.inventory.securitydata import read_security_data
    from orchestrator.policy import WorktreeSource
    from orchestrator.verify.patchdata import patch_check_data

    text = read_security_data(WorktreeSource(repo), chosen.project.inventory)
    return patch_check_data(chosen.project, chosen.fleet, text, datetime.now(UTC))


def cmd_report(args: argparse.Namespace, output: Output) -> int:
    from orchestrator.report.html import render_html
    from orchestrator.report.junit import render_junit
    from orchestrator.report.markdown import render_markdown

    if args.rollout and args.run:
        raise UserInputError("give a run id or --rollout ID, not both")
    record = _rollout_record(args) if args.rollout else _store(args.repo).resolve(args.run)
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


def _rollout_record(args: argparse.Namespace) -> RunRecord:
    """A rollout's record rebuilt from its ledger, as `rollout` writes it when it stops."""
    from orchestrator.gitops import compute_inputs, git_source
    from orchestrator.gitops.commits import CommitSource
    from orchestrator.model.record import Operator
    from orchestrator.policy import load_project
    from orchestrator.report.rollout_history import rollout_history, run_status
    from orchestrator.store.ledger import open_ledger

    with open_ledger(args.ledger or (args.repo / ".patchring" / "ledger.db")) as book:
        rollout = book.get_rollout(args.rollout)
        history = rollout_history(
            rollout,
            book.host_outcomes(rollout.id),
            book.gate_results(rollout.id),
            book.approvals(rollout.id),
        )
    try:
        project = load_project(CommitSource(args.repo, rollout.commit), args.inventory)
        inputs = compute_inputs(args.repo, project, at=rollout.commit)
    except UserInputError:  # the commit is gone from this clone: report without hashes
        inputs = {}
    user, _, hostname = rollout.started_by.rpartition("@")
    return RunRecord(
        id=rollout.id,
        kind="rollout",
        status=run_status(rollout.status),
        started=rollout.started_at,
        finished=rollout.updated_at,
        tool_version=__version__,
        source=git_source(args.repo, rollout.commit),
        inputs=inputs,
        operator=Operator(user=user or rollout.started_by, hostname=hostname),
        selection={"rollout": rollout.id},
        apply=history.apply,
        verify=history.verify,
        rings=history.rings,
        emergency_reason=rollout.emergency_reason,
        change_ticket=rollout.change_ticket,
        rollout=history.log,
    )


def _verify_summary(results: Any) -> str:
    results = list(results)
    checks = [c for v in results for c in v.results]
    passed = sum(c.status == "passed" for c in checks)
    waived = sum(c.status == "waived" for c in checks)
    also = f", {waived} waived" if waived else ""
    lines = [f"Verify: {counted(len(results), 'host')}, {passed}/{len(checks)} checks passed{also}"]
    for v in results:
        bad = [c for c in v.results if c.status not in CHECK_OK]
        mine = [c for c in v.results if c.status == "waived"]
        mark = "=" if v.status == "passed" else "!"
        lines.append(
            f"  {mark} {v.host:<12} {v.status:<12} {len(v.results) - len(bad) - len(mine)}/"
            f"{len(v.results)} checks passed"
            + (f", {len(mine)} waived" if mine else "")
            + (f"  {v.error}" if v.error else "")
        )
        for c in bad[:10]:
            lines.append(f"      {c.status:<7} {c.check_id}: expected {c.expected}, got {c.actual}")
        for c in mine[:10]:
            lines.append(f"      waived  {c.check_id} ({c.real_status}): {c.message}")
    return "\n".join(lines)


def _print_run(output: Output, record: RunRecord, files: dict[str, Path], text: str) -> None:
    if output.json_mode:
        output.document(record.model_dump(mode="json", by_alias=True))
        return
    where = ", ".join(str(p) for p in files.values())
    output.text(f"{text}\n\nRun {record.id} recorded; reports: {where}\n")
