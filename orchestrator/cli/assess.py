"""`patchring assess`: what each host has pending, whether it must reboot, which CVEs are open.

One probe per host (`engine.assess_hosts`), read by the pure `patching` package, rendered by
`report.assess`. Exit codes: 0 assessed (whatever is pending); 3 a host was unreachable or its
probe failed; with `--detailed-exitcode`, 2 when security updates are pending on an assessed
host and none failed.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.cli.console import Output
from orchestrator.cli.project import Selection, select
from orchestrator.errors import EXIT_CHANGES_PRESENT, EXIT_HOSTS_FAILED, EXIT_OK

if TYPE_CHECKING:
    from orchestrator.model.patching import HostAssessment
    from orchestrator.patching.summary import HostPatchState, HostStatus
    from orchestrator.patching.tracker import SecurityTracker


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "assess",
        parents=[common],
        help="list pending security and other updates, reboots and open CVEs per host and ring",
    )
    p.add_argument("--ring", help="only hosts of this ring")
    p.add_argument("--host", action="append", metavar="HOST", help="only this host (repeatable)")
    p.add_argument(
        "--refresh",
        action="store_true",
        help="run apt-get update on the hosts first (in the same remote command)",
    )
    p.add_argument("--json", action="store_true", help="a patchring.assess/v1 document")
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when security updates are pending (0 when none)",
    )
    p.set_defaults(handler=cmd_assess)


@dataclass(frozen=True)
class FleetAssessment:
    """What one assessment of the selected hosts found: each host's state for reports, the
    parsed assessments (reachable hosts only) and the tracker data they were matched with."""

    states: dict[str, HostPatchState]
    assessments: dict[str, HostAssessment]
    tracker: SecurityTracker | None


def assess_selection(
    selection: Selection,
    repo: Path,
    refresh: bool,
    output: Output,
    before_hosts: Callable[[], object] = lambda: None,
) -> FleetAssessment:
    """Run the one-command probe on every selected host and read it (shared with `patches`).
    `before_hosts` runs once the input is known valid, before any host is contacted."""
    from orchestrator.engine import assess_hosts
    from orchestrator.inventory.securitydata import parse_security_data, read_security_data
    from orchestrator.patching.summary import (
        accepted_risks,
        host_advisories,
        read_probe,
        summarize_host,
        unassessed_host,
    )
    from orchestrator.policy import WorktreeSource

    inventory = selection.project.inventory
    # Read before touching any host: a missing file is an input error, not a host problem.
    tracker_text = read_security_data(WorktreeSource(repo), inventory)
    before_hosts()
    targets = [desired.host for desired in selection.fleet.values()]
    with output.progress("Assessing", len(targets)) as progress:
        raws = assess_hosts(targets, refresh, progress)
    assessed_at = datetime.now(UTC)
    read = {
        name: read_probe(name, raw.output, raw.nonce, assessed_at)
        for name, raw in raws.items()
        if raw.status == "ok"
    }
    releases = {r.assessment.codename for r in read.values() if r.assessment is not None}
    tracker = (
        parse_security_data(tracker_text, inventory, releases) if tracker_text is not None else None
    )
    states: dict[str, HostPatchState] = {}
    assessments: dict[str, HostAssessment] = {}
    for name, raw in raws.items():
        probe = read.get(name)
        if probe is not None and probe.assessment is not None:
            assessments[name] = probe.assessment
            states[name] = summarize_host(
                probe.assessment,
                raw.ring,
                inventory.patching,
                tracker,
                probe.problems,
                raw.remote_commands,
                raw.seconds,
                host_advisories(selection.fleet[name]),
                accepted_risks(selection.fleet[name]),
            )
        else:
            status: HostStatus = "unreachable" if raw.status == "unreachable" else "failed"
            error = (probe.error if probe is not None else None) or raw.error or "no output"
            states[name] = unassessed_host(name, raw.ring, status, error, raw.remote_commands)
    return FleetAssessment(states, assessments, tracker)


def cmd_assess(args: argparse.Namespace, output: Output) -> int:
    from orchestrator.cli.commands import _source
    from orchestrator.cli.runs import Recorder
    from orchestrator.report.assess import assess_document, patching_section, render_assess_text

    selection = select(args.repo, args.inventory, args.ring, args.host, output)
    inventory = selection.project.inventory
    recorders: list[Recorder] = []
    # The record starts once the input is valid (bad input leaves no history folder behind),
    # and before any host is contacted (an unwritable history is refused first).
    states = assess_selection(
        selection,
        args.repo,
        args.refresh,
        output,
        before_hosts=lambda: recorders.append(
            Recorder.start(args.repo, "assess", output, ring=args.ring, host=args.host)
        ),
    ).states
    unassessed = any(s.status != "assessed" for s in states.values())
    record, files = recorders[0].finish(
        selection,
        "failed" if unassessed else "succeeded",
        patching=patching_section(states, selection.rings, inventory.security_data),
    )
    where = ", ".join(str(path) for path in files.values())
    output.show(
        states,
        lambda shown: (
            render_assess_text(shown, selection.rings)
            + f"\nRun {record.id} recorded; reports: {where}\n"
        ),
        lambda shown: (
            assess_document(
                shown,
                selection.rings,
                _source(args),
                inventory.patching.security_origins,
                inventory.security_data,
            )
            | {"run": record.id}
        ),
    )
    if unassessed:
        return EXIT_HOSTS_FAILED
    if args.detailed_exitcode and any(s.security for s in states.values()):
        return EXIT_CHANGES_PRESENT
    return EXIT_OK
