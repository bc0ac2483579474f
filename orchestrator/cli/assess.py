"""`patchring assess`: what each host has pending, whether it must reboot, which CVEs are open.

One probe per host (`engine.assess_hosts`), read by the pure `patching` package, rendered by
`report.assess`. Exit codes: 0 assessed (whatever is pending); 3 a host was unreachable or its
probe failed; with `--detailed-exitcode`, 2 when security updates are pending on an assessed
host and none failed.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from orchestrator.cli.console import Output
from orchestrator.cli.project import select
from orchestrator.errors import EXIT_CHANGES_PRESENT, EXIT_HOSTS_FAILED, EXIT_OK


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


def cmd_assess(args: argparse.Namespace, output: Output) -> int:
    from orchestrator.cli.commands import _source
    from orchestrator.engine import assess_hosts
    from orchestrator.inventory.securitydata import parse_security_data, read_security_data
    from orchestrator.patching.summary import (
        HostPatchState,
        HostStatus,
        host_advisories,
        read_probe,
        summarize_host,
        unassessed_host,
    )
    from orchestrator.policy import WorktreeSource
    from orchestrator.report.assess import assess_document, render_assess_text

    selection = select(args.repo, args.inventory, args.ring, args.host, output)
    inventory = selection.project.inventory
    # Read before touching any host: a missing file is an input error, not a host problem.
    tracker_text = read_security_data(WorktreeSource(args.repo), inventory)
    targets = [desired.host for desired in selection.fleet.values()]
    with output.progress("Assessing", len(targets)) as progress:
        raws = assess_hosts(targets, args.refresh, progress)
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
    for name, raw in raws.items():
        probe = read.get(name)
        if probe is not None and probe.assessment is not None:
            states[name] = summarize_host(
                probe.assessment,
                raw.ring,
                inventory.patching,
                tracker,
                probe.problems,
                raw.remote_commands,
                raw.seconds,
                host_advisories(selection.fleet[name]),
            )
        else:
            status: HostStatus = "unreachable" if raw.status == "unreachable" else "failed"
            error = (probe.error if probe is not None else None) or raw.error or "no output"
            states[name] = unassessed_host(name, raw.ring, status, error, raw.remote_commands)
    output.show(
        states,
        lambda shown: render_assess_text(shown, selection.rings),
        lambda shown: assess_document(
            shown,
            selection.rings,
            _source(args),
            inventory.patching.security_origins,
            inventory.security_data,
        ),
    )
    if any(s.status != "assessed" for s in states.values()):
        return EXIT_HOSTS_FAILED
    if args.detailed_exitcode and any(s.security for s in states.values()):
        return EXIT_CHANGES_PRESENT
    return EXIT_OK
