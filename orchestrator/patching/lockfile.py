"""The lock file's text: deterministic YAML out, located `file:line:col` errors in.

`dump_lock` writes sorted keys, UTC times to the second and no empty defaults, so re-locking
with nothing new gives the same bytes and a diff shows only what changed. `load_lock` reads it
with the policy loader's located YAML and reports every problem at its key or value. Imports
PyYAML and the package's model, errors and `policy` YAML/validation modules; no file I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime

import yaml

from orchestrator.errors import ValidationError
from orchestrator.model.patchlock import LOCK_FILE, PatchLock
from orchestrator.policy.validation import validate_located
from orchestrator.policy.yamlsource import parse_yaml

__all__ = ["HEADER", "LOCK_FILE", "dump_lock", "load_lock"]

HEADER = (
    "# Written by `patchring patches lock`. A change to this file is a change to what gets\n"
    "# installed: review its diff, commit it, and roll it out ring by ring.\n"
)


def _utc_times(lock: PatchLock) -> dict[str, object]:
    data = lock.model_dump(mode="python", exclude_defaults=True)

    def convert(value: object) -> object:
        if isinstance(value, dict):
            return {key: convert(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [convert(item) for item in value]
        if isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return value

    result = convert(data)
    assert isinstance(result, dict)
    result["schema_version"] = lock.schema_version
    return result


def dump_lock(lock: PatchLock) -> str:
    """The lock as YAML text, byte-for-byte the same for the same lock: the schema version
    first, then the baselines a reviewer reads, then the `seen` dates; keys sorted below."""
    data = _utc_times(lock)
    parts = [
        yaml.safe_dump(
            {key: data[key]},
            sort_keys=True,
            default_flow_style=False,
            allow_unicode=True,
            width=1000,
        )
        for key in ("schema_version", "baselines", "seen")
        if key in data
    ]
    return HEADER + "".join(parts)


def load_lock(text: str, file: str = LOCK_FILE) -> PatchLock:
    """Parse and validate a lock file; raises ValidationError with every located problem."""
    located = parse_yaml(text, file, "lock")
    lock, problems = validate_located(PatchLock, located)
    if lock is None:
        raise ValidationError(problems)
    return lock
