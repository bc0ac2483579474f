"""What a rollback removes: files the rolled-back commit put on a host that the commit rolled
back to no longer declares.

patchring manages only what is declared, so re-applying the older commit alone would leave
behind what only the newer one declared (an apt repository's sources file and key, pointing
at a broken suite). Computed from the two desired states of one host: every file of an apt
repository the target lacks (patchring names those files after the repository, so they are
its own), and a policy file only when the rollout created it (`created`: resource ids the
rollout's apply reported as created); a file that was there before the rollout is left alone.
Pure: desired states in, paths and one shell command out (every path quoted).
"""

from __future__ import annotations

import shlex
from collections.abc import Collection, Sequence

from orchestrator.drift.expected import expected_files
from orchestrator.model.base import Frozen
from orchestrator.model.desired import DesiredState


class RetiredFile(Frozen):
    path: str
    resource_id: str
    policy: str
    apt_source: bool = False


def retired_files(
    rolled_back: DesiredState, target: DesiredState, created: Collection[str] = ()
) -> tuple[RetiredFile, ...]:
    """Files `rolled_back` declared on the host that `target` does not (see the module)."""
    kept_ids = {r.id for r in target.resources}
    kept_paths = {f.path for r in target.resources for f in expected_files(r)}
    found: list[RetiredFile] = []
    for resource in rolled_back.resources:
        ours = resource.kind == "apt_repository" or (
            resource.kind == "file" and resource.id in created
        )
        if resource.id in kept_ids or not ours:
            continue
        found += [
            RetiredFile(
                path=f.path,
                resource_id=resource.id,
                policy=resource.policy,
                apt_source=resource.kind == "apt_repository",
            )
            for f in expected_files(resource)
            if f.path not in kept_paths
        ]
    return tuple(found)


def removal_command(files: Sequence[RetiredFile]) -> str | None:
    """One command removing `files`, then refreshing apt's lists when a source went (so apt
    forgets the repository's packages); None when there is nothing to remove."""
    if not files:
        return None
    command = "rm -f -- " + " ".join(shlex.quote(f.path) for f in files)
    if any(f.apt_source for f in files):
        command += " && apt-get update -qq"
    return command
