"""`plan --base REF [--head REF]`: what a change between two commits does to the fleet.

Loads the project at both commits (no checkout; the uncommitted lab inventory from the working
tree, as a rollout reads it), compares every host's desired state and prints the impact as
text, JSON or Markdown. No host is contacted unless `--live` asks for the probe as well.
"""

from __future__ import annotations

import argparse
from typing import Any

from orchestrator.cli.console import Output
from orchestrator.errors import EXIT_CHANGES_PRESENT, EXIT_HOSTS_FAILED, EXIT_OK, UserInputError
from orchestrator.inventory import select_hosts
from orchestrator.policy import Project, load_project


def cmd_impact(args: argparse.Namespace, output: Output) -> int:
    from orchestrator.drift.impact import compare_exceptions, compare_fleets
    from orchestrator.report.impact import (
        has_changes,
        impact_document,
        render_impact_markdown,
        render_impact_text,
    )

    if args.out:
        raise UserInputError("--out saves a plan of the hosts; it does not go with --base")
    head_ref = args.head or "HEAD"
    base, base_sha = _load_at(args, output, "--base", args.base)
    head, head_sha = _load_at(args, output, "--head", head_ref)
    names = _selected(head, base, args)
    base_fleet = {n: base.desired[n] for n in names if n in base.desired}
    head_fleet = {n: head.desired[n] for n in names if n in head.desired}
    impacts = output.masked(compare_fleets(base_fleet, head_fleet))
    exceptions = output.masked(
        compare_exceptions(
            [x.entry for x in base.exceptions],
            [x.entry for x in head.exceptions],
            base_fleet,
            head_fleet,
        )
    )
    rings = tuple(r.name for r in head.inventory.rings)
    refs = ({"ref": args.base, "commit": base_sha}, {"ref": head_ref, "commit": head_sha})
    if args.head is None and _dirty(args):
        output.note("note: uncommitted changes are not part of the impact (head is HEAD)")
    live, live_text, live_failed = (
        _live(head_fleet, rings, output) if args.live else (None, "", False)
    )
    if output.json_mode:
        output.document(impact_document(impacts, rings, *refs, live=live, exceptions=exceptions))
    elif args.format == "markdown":
        output.text(render_impact_markdown(impacts, rings, *refs, exceptions=exceptions))
    else:
        output.text(
            render_impact_text(impacts, rings, *refs, full=args.full, exceptions=exceptions)
        )
        if live is not None:
            output.text("\nLive (the hosts today against the head):\n" + live_text)
    if live_failed:
        return EXIT_HOSTS_FAILED
    live_changes = bool(live and live["summary"]["changes"])
    if args.detailed_exitcode and (has_changes(impacts, exceptions) or live_changes):
        return EXIT_CHANGES_PRESENT
    return EXIT_OK


def _load_at(args: argparse.Namespace, output: Output, flag: str, ref: str) -> tuple[Project, str]:
    from orchestrator.gitops.commits import CommitSource

    try:
        source = CommitSource(args.repo, ref)
    except UserInputError as error:
        raise UserInputError(f"{flag} {ref}: {error.message}", hint=error.hint) from None
    with source:
        project = load_project(source, args.inventory)
    output.protect(project.secrets)
    return project, source.sha


def _selected(head: Project, base: Project, args: argparse.Namespace) -> list[str]:
    """The hosts `--ring`/`--host` choose at the head, then hosts only the base has that the
    same filter would have chosen there (a host removed by the change)."""
    names = list(select_hosts(head.inventory, ring=args.ring, hosts=args.host or ()))
    for name, state in base.desired.items():
        chosen = (not args.ring and not args.host) or name in (args.host or ())
        if name not in head.desired and (chosen or (args.ring and state.host.ring == args.ring)):
            names.append(name)
    return names


def _dirty(args: argparse.Namespace) -> bool:
    from orchestrator.gitops import git_source

    return bool(git_source(args.repo).dirty)


def _live(
    fleet: dict[str, Any], rings: tuple[str, ...], output: Output
) -> tuple[dict[str, Any], str, bool]:
    """`--live`: the probe of every head host, as `plan` shows it."""
    from orchestrator.engine import plan_hosts
    from orchestrator.report.plan import plan_document, render_plan_text

    with output.progress("Reading hosts", len(fleet)) as progress:
        plans = output.masked(plan_hosts(fleet, progress))
    failed = any(p.status in {"unreachable", "failed"} for p in plans.values())
    return plan_document(plans, rings, {}), render_plan_text(plans, rings), failed
