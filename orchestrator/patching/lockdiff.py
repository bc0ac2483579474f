"""What re-locking changed, in the words a reviewer approves: approved, held back, removed.

`diff_locks(previous, new)` compares two locks per baseline, release and package: a version
newly approved (or replacing another), a version held back that was not held before (with its
reason and, for minimum age, the moment it becomes approvable), and an approval that is gone
(with the reason the baseline revoked it, when the caller gives one).
`merge_unassessed` keeps the previous lock's releases that no assessed host could speak for
(a lock of one ring must not drop another ring's approvals). Pure; imports only the model.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Literal

from orchestrator.model.base import Frozen
from orchestrator.model.patchlock import PatchLock, ReleaseLock

ChangeKind = Literal["approved", "held", "removed"]


class LockChange(Frozen):
    """One line of the lock's diff."""

    kind: ChangeKind
    baseline: str
    release: str
    package: str
    version: str
    previous_version: str | None = None
    reason: str = ""
    fixes: tuple[str, ...] = ()
    approvable_from: datetime | None = None


def _release(lock: PatchLock | None, baseline: str, release: str) -> ReleaseLock:
    if lock is None:
        return ReleaseLock()
    return lock.baselines.get(baseline, {}).get(release) or ReleaseLock()


def _pairs(*locks: PatchLock | None) -> list[tuple[str, str]]:
    found = {
        (baseline, release)
        for lock in locks
        if lock is not None
        for baseline, releases in lock.baselines.items()
        for release in releases
    }
    return sorted(found)


def diff_locks(
    previous: PatchLock | None,
    new: PatchLock,
    removal_reasons: Mapping[tuple[str, str, str], str] | None = None,
) -> tuple[LockChange, ...]:
    """Every change from `previous` (None: no lock yet) to `new`, sorted; `removal_reasons`:
    (baseline, release, package) -> why its approval was removed."""
    reasons = removal_reasons or {}
    changes: list[LockChange] = []
    for baseline, release in _pairs(previous, new):
        old, now = _release(previous, baseline, release), _release(new, baseline, release)
        where = {"baseline": baseline, "release": release}
        for package, entry in sorted(now.approved.items()):
            before = old.approved.get(package)
            if before is None or before.version != entry.version:
                changes.append(
                    LockChange(
                        kind="approved",
                        package=package,
                        version=entry.version,
                        previous_version=before.version if before else None,
                        reason=entry.reason,
                        fixes=entry.fixes,
                        **where,
                    )
                )
        for package, versions in sorted(now.held.items()):
            for version, held in sorted(versions.items()):
                before_held = old.held.get(package, {}).get(version)
                if before_held is None or before_held.reason != held.reason:
                    changes.append(
                        LockChange(
                            kind="held",
                            package=package,
                            version=version,
                            reason=held.reason,
                            fixes=held.fixes,
                            approvable_from=held.approvable_from,
                            **where,
                        )
                    )
        for package, entry in sorted(old.approved.items()):
            if package not in now.approved:
                reason = reasons.get((baseline, release, package), "")
                changes.append(
                    LockChange(
                        kind="removed",
                        package=package,
                        version=entry.version,
                        reason=reason,
                        **where,
                    )
                )
    return tuple(changes)


def merge_unassessed(
    new: PatchLock,
    previous: PatchLock | None,
    assessed: Mapping[str, Collection[str]],
) -> PatchLock:
    """`new`, plus each (baseline, release) of `previous` for which no host governed by the
    baseline was assessed on that release (`assessed`: baseline -> releases assessed)."""
    if previous is None:
        return new
    baselines = {name: dict(releases) for name, releases in new.baselines.items()}
    for baseline, releases in previous.baselines.items():
        for release, entry in releases.items():
            if release not in assessed.get(baseline, ()):
                baselines.setdefault(baseline, {}).setdefault(release, entry)
    ordered = {name: dict(sorted(releases.items())) for name, releases in sorted(baselines.items())}
    return new.model_copy(update={"baselines": ordered})
