"""`patchring patches lock` and `patchring patches show`: the lock file of approved versions.

`lock` assesses the hosts the policies' patch baselines govern (the same one-command probe as
`assess`), resolves the baselines against what they offer, keeps the first-seen dates of the
previous `patches.lock.yml`, writes the new lock atomically and prints what changed: the diff a
reviewer approves. `show` prints the lock's approvals. Exit codes: 0 written (or unchanged);
1 invalid input (a malformed lock, a bad `--now`, no baseline; nothing written); 3 a host could
not be assessed (the lock is still written from the others, keeping their previous entries).
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from orchestrator.cli.console import Output
from orchestrator.cli.project import Selection, load, select
from orchestrator.errors import EXIT_HOSTS_FAILED, EXIT_OK, UserInputError

if TYPE_CHECKING:
    from orchestrator.model.patching import Advisory
    from orchestrator.model.patchlock import PatchLock
    from orchestrator.patching.lockdiff import LockChange
    from orchestrator.policy import Project

NOW_ENV = "PATCHRING_NOW"
LOCK_DIFF_SCHEMA = "patchring.lock-diff/v1"


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("patches", help="patch baselines and the lock file of approved versions")
    inner = p.add_subparsers(dest="patches_command", metavar="COMMAND", required=True)
    lock = inner.add_parser(
        "lock",
        parents=[common],
        help="assess the hosts, resolve the baselines and write patches.lock.yml",
    )
    lock.add_argument("--ring", help="only hosts of this ring (other entries are kept)")
    lock.add_argument("--host", action="append", metavar="HOST", help="only this host (repeatable)")
    lock.add_argument(
        "--refresh", action="store_true", help="run apt-get update on the hosts first"
    )
    # A test clock: minimum age is counted against it (or the PATCHRING_NOW variable).
    lock.add_argument("--now", help=argparse.SUPPRESS)
    lock.add_argument("--json", action="store_true", help=f"a {LOCK_DIFF_SCHEMA} document")
    lock.set_defaults(handler=cmd_lock)
    show = inner.add_parser("show", parents=[common], help="print the approvals of the lock file")
    show.add_argument("--json", action="store_true", help="the lock as JSON")
    show.set_defaults(handler=cmd_show)


def parse_now(text: str | None) -> datetime:
    """The lock's clock: `--now`, else $PATCHRING_NOW, else the real time (UTC)."""
    text = text or os.environ.get(NOW_ENV) or None
    if text is None:
        return datetime.now(UTC)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise UserInputError(
            f"--now '{text}' is not a date and time with a time zone (like 2026-12-01T09:30:00Z)"
        )
    return when


def _advisories(project: Project) -> tuple[Advisory, ...]:
    """The hand-written `patches:` entries of every host, as advisories a lock can cite."""
    from orchestrator.model.patching import Advisory
    from orchestrator.model.policy import Patch
    from orchestrator.policy.locked import LOCK_ADVISORY

    found: dict[str, Advisory] = {}
    for desired in project.desired.values():
        for resource in desired.resources:
            spec = resource.spec
            if isinstance(spec, Patch) and spec.advisory != LOCK_ADVISORY:
                advisory = Advisory(
                    id=spec.advisory, cves=spec.cves, package=spec.package, fixed=spec.fixed
                )
                found.setdefault(f"{spec.advisory}/{spec.package}", advisory)
    return tuple(found.values())


def cmd_lock(args: argparse.Namespace, output: Output) -> int:
    from orchestrator.cli.assess import assess_selection
    from orchestrator.model.patchlock import LOCK_FILE
    from orchestrator.patching.lock import BaselineAssignment, resolve_lock, revoked_approvals
    from orchestrator.patching.lockdiff import diff_locks, merge_unassessed
    from orchestrator.patching.lockfile import dump_lock
    from orchestrator.store.atomic import write_atomic

    now = parse_now(args.now)
    selection = select(args.repo, args.inventory, args.ring, args.host, output)
    project = selection.project
    governed = {n: d for n, d in selection.fleet.items() if d.patch_baseline is not None}
    if not governed:
        raise UserInputError(
            "no selected host is governed by a patch baseline",
            hint="add `patch_baseline:` to a policy that selects them",
        )
    previous = project.lock.lock if project.lock is not None else None
    fleet = Selection(project=project, fleet=governed, rings=selection.rings)
    found = assess_selection(fleet, args.repo, args.refresh, output)
    baselines = {p.name: p.document.patch_baseline for p in project.policies}
    assignments = [
        BaselineAssignment(
            name=name,
            baseline=baseline,
            hosts=tuple(h for h, d in governed.items() if d.patch_baseline == name),
        )
        for name, baseline in baselines.items()
        if baseline is not None
    ]
    assessments = list(found.assessments.values())
    new = resolve_lock(
        assignments,
        assessments,
        now,
        previous,
        project.inventory.patching,
        found.tracker,
        _advisories(project),
    )
    assessed: dict[str, set[str]] = {}
    for name, assessment in found.assessments.items():
        baseline = governed[name].patch_baseline or ""
        assessed.setdefault(baseline, set()).add(assessment.codename)
    new = merge_unassessed(new, previous, assessed)
    text = dump_lock(new)
    path = args.repo / LOCK_FILE
    old_text = path.read_text() if path.exists() else None
    if text != old_text:
        write_atomic(path, text.encode())
    changes = diff_locks(previous, new, revoked_approvals(assignments, previous))
    failed = {n: s.error or s.status for n, s in found.states.items() if s.status != "assessed"}
    output.show(
        changes,
        lambda shown: _render_changes(shown, failed, text != old_text),
        lambda shown: _changes_document(shown, failed, text != old_text),
    )
    return EXIT_HOSTS_FAILED if failed else EXIT_OK


def _render_changes(changes: tuple[LockChange, ...], failed: dict[str, str], wrote: bool) -> str:
    from orchestrator.model.patchlock import LOCK_FILE

    lines: list[str] = []
    for change in changes:
        where = f"{change.baseline}/{change.release}"
        fixes = f" (fixes {', '.join(change.fixes)})" if change.fixes else ""
        if change.kind == "approved":
            was = f" (was {change.previous_version})" if change.previous_version else ""
            lines.append(
                f"+ approved  {where}: {change.package} {change.version}{was}{fixes}: "
                f"{change.reason}"
            )
        elif change.kind == "held":
            until = (
                f" until {change.approvable_from.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"
                if change.approvable_from
                else ""
            )
            lines.append(
                f"~ held back {where}: {change.package} {change.version}{until}: {change.reason}"
            )
        else:
            reason = f": {change.reason}" if change.reason else ""
            lines.append(f"- removed   {where}: {change.package} {change.version}{reason}")
    for host, reason in sorted(failed.items()):
        lines.append(f"! not assessed: {host}: {reason}")
    state = "written" if wrote else "unchanged"
    summary = f"{LOCK_FILE} {state}: {len(changes)} change{'s' if len(changes) != 1 else ''}"
    if wrote:
        summary += "; review the diff, commit it, and roll it out"
    return "\n".join([*lines, summary]) + "\n"


def _changes_document(
    changes: tuple[LockChange, ...], failed: dict[str, str], wrote: bool
) -> dict[str, Any]:
    from orchestrator.model.patchlock import LOCK_FILE

    return {
        "schema": LOCK_DIFF_SCHEMA,
        "lock_file": LOCK_FILE,
        "written": wrote,
        "changes": [change.model_dump(mode="json") for change in changes],
        "not_assessed": [{"host": h, "error": e} for h, e in sorted(failed.items())],
    }


def cmd_show(args: argparse.Namespace, output: Output) -> int:
    project = load(args.repo, args.inventory, output)
    if project.lock is None:
        raise UserInputError(
            "the repository has no patches.lock.yml", hint="run `patchring patches lock`"
        )
    output.show(
        project.lock.lock,
        _render_lock,
        lambda lock: lock.model_dump(mode="json", exclude_defaults=True),
    )
    return EXIT_OK


def _render_lock(lock: PatchLock) -> str:
    lines: list[str] = []
    for baseline, releases in sorted(lock.baselines.items()):
        for release, entry in sorted(releases.items()):
            lines.append(f"{baseline} ({release}):")
            for package, approved in sorted(entry.approved.items()):
                fixes = f" fixes {', '.join(approved.fixes)}" if approved.fixes else ""
                lines.append(f"  {package} {approved.version}{fixes}")
            held = sum(len(versions) for versions in entry.held.values())
            if not entry.approved:
                lines.append("  (nothing approved)")
            if held:
                lines.append(f"  {held} version{'s' if held != 1 else ''} held back")
    return "\n".join(lines or ["the lock approves nothing"]) + "\n"
