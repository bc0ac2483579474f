"""Loading the policy repository and choosing hosts for a command, shared by every command."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.inventory import select_hosts
from orchestrator.model.desired import DesiredState
from orchestrator.policy import Project, WorktreeSource, load_project


@dataclass(frozen=True)
class Selection:
    project: Project
    fleet: dict[str, DesiredState]
    rings: tuple[str, ...]


def load(repo: Path, inventory: str) -> Project:
    return load_project(WorktreeSource(repo), inventory)


def select(repo: Path, inventory: str, ring: str | None, host: str | None) -> Selection:
    project = load(repo, inventory)
    names = select_hosts(project.inventory, ring=ring, host=host)
    fleet = {name: project.desired[name] for name in names}
    rings = tuple(r.name for r in project.inventory.rings)
    return Selection(project=project, fleet=fleet, rings=rings)
