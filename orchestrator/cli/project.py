"""Loading the policy repository and choosing hosts for a command, shared by every command.

Loading is also where the command's output learns the project's secrets: whatever a command
prints or writes afterwards goes through `Output`, which masks them.
"""

from __future__ import annotations

import argparse
import gc
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from orchestrator.cli.console import Output
from orchestrator.errors import ValidationError
from orchestrator.inventory import select_hosts
from orchestrator.model.desired import DesiredState
from orchestrator.model.inventory import Inventory
from orchestrator.policy import Project, WorktreeSource, load_project
from orchestrator.policy.project import HostChoice


@dataclass(frozen=True)
class Selection:
    project: Project
    fleet: dict[str, DesiredState]
    rings: tuple[str, ...]


def add_parallel_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--parallel",
        type=_parallel_count,
        metavar="N",
        help="hosts worked on at once, so at most N SSH connections are open "
        "(default: the inventory's settings: parallel, else 50)",
    )


def _parallel_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return count


def parallel_for(args: argparse.Namespace, project: Project) -> int:
    """Hosts at once: `--parallel`, else the inventory's `settings: parallel`."""
    flag: int | None = getattr(args, "parallel", None)
    return flag or project.inventory.settings.parallel


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading a large fleet builds millions of objects and no cycles worth collecting, which
    Python's cyclic collector would scan again and again (a third of the time at 10,000 hosts).
    It is paused while loading; what the load built is then frozen out of later collections
    (it lives as long as the command)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def load(
    repo: Path,
    inventory: str,
    output: Output,
    hosts: HostChoice | None = None,
    counts_only: bool = False,
) -> Project:
    """The project at `repo`; with `hosts`, only the hosts it chooses are resolved; with
    `counts_only`, all are, but only their resource counts are kept."""
    with _collector_paused():
        project = load_project(
            WorktreeSource(repo), inventory, hosts=hosts, counts_only=counts_only
        )
    output.protect(project.secrets)
    if project.exceptions and project.inventory.exception_rules.approver_not_author:
        from orchestrator.gitops import exception_approvers

        problems = exception_approvers(repo, project)
        if problems:
            raise ValidationError(problems)
    return project


def select(
    repo: Path,
    inventory: str,
    ring: str | None,
    hosts: Sequence[str] | None,
    output: Output,
) -> Selection:
    project = load(repo, inventory, output, _chosen(ring, hosts) if ring or hosts else None)
    names = select_hosts(project.inventory, ring=ring, hosts=hosts or ())
    fleet = {name: project.desired[name] for name in names}
    rings = tuple(r.name for r in project.inventory.rings)
    return Selection(project=project, fleet=fleet, rings=rings)


def _chosen(ring: str | None, hosts: Sequence[str] | None) -> HostChoice:
    """The hosts to resolve for a selection (unknown names are left to `select_hosts`)."""
    wanted = frozenset(hosts or ())

    def choose(inventory: Inventory) -> Collection[str]:
        return [
            name
            for name, host in inventory.hosts.items()
            if (ring is None or host.ring == ring) and (not wanted or name in wanted)
        ]

    return choose
