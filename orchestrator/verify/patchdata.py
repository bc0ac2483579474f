"""The controller-side data of the patch baseline checks, built once per verify run.

`patch_check_data` gathers, from a loaded project, every policy's baseline with its location,
the inventory's `patching:` settings, the lock's first-seen dates and the security tracker
(parsed here from the text the caller read, for the selected hosts' releases only: their
`debian_release` variables and the lock's releases; every release when a host names none).
Pure: the caller reads the files; imports the package's model, `policy`, `inventory` and
`verify.patchchecks`; never testinfra or the CLI.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from orchestrator.inventory.securitydata import parse_security_data
from orchestrator.policy.locked import RELEASE_VAR
from orchestrator.policy.project import Project
from orchestrator.verify.patchchecks import BaselineSetting, PatchCheckData


def patch_check_data(
    project: Project, hosts: Iterable[str], tracker_text: str | None, now: datetime
) -> PatchCheckData:
    """Everything the baseline checks of `hosts` compare with (raises a located
    ValidationError when the security data does not parse)."""
    baselines = {}
    for policy in project.policies:
        baseline = policy.document.patch_baseline
        if baseline is None:
            continue
        urgency = ("patch_baseline", "max_open_urgency")
        baselines[policy.name] = BaselineSetting(
            baseline=baseline,
            location=policy.yaml.key_location(("patch_baseline",)),
            urgency_location=policy.yaml.value_location(urgency)
            if baseline.max_open_urgency is not None
            else None,
        )
    governed = [project.desired[h] for h in hosts if project.desired[h].patch_baseline]
    lock = project.lock.lock if project.lock is not None else None
    tracker = None
    if tracker_text is not None and any(
        baselines[d.patch_baseline or ""].baseline.max_open_urgency
        or baselines[d.patch_baseline or ""].baseline.min_urgency
        for d in governed
    ):
        named = [d.vars.get(RELEASE_VAR) for d in governed]
        releases = (
            None  # a host of unknown release: keep them all
            if any(var is None for var in named)
            else {str(var.value) for var in named if var is not None}
            | set(lock.seen if lock else ())
        )
        tracker = parse_security_data(tracker_text, project.inventory, releases)
    return PatchCheckData(
        baselines=baselines,
        settings=project.inventory.patching,
        now=now,
        seen=lock.seen if lock is not None else {},
        tracker=tracker,
    )
