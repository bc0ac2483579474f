"""Fingerprints for saved plans, and what changed since one was made, in words.

`desired_digest` and `observed_digest` are sha256 over a canonical JSON form (sorted keys;
bytes by their sha256; where a value came from left out, so moving a line in a policy changes
the inputs' hashes but not a host's desired state). `observed_differences` names what differs
between two probes of a host (`package acme-agent: version 1.0-2 -> 1.0-1`), so a refusal
says what drifted. Pure: imports no pyinfra and reads nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, SecretStr

from orchestrator.drift.observed import Observation
from orchestrator.model.desired import DesiredState

_WHERE_FIELDS = frozenset({"location", "field_locations"})
# Observation sections and the words a difference in them is named with.
_SECTIONS = {
    "packages": "package",
    "paths": "path",
    "services": "service",
    "users": "user",
    "groups": "group",
    "sysctls": "sysctl",
    "commands_satisfied": "command",
    "pending_restarts": "pending restart",
    "offered": "apt offers",
}


def desired_digest(state: DesiredState) -> str:
    return _digest(_canonical(state.model_dump(mode="python")))


def observed_digest(observed: Observation) -> str:
    return _digest(_canonical(for_plan(observed).model_dump(mode="python")))


def for_plan(observed: Observation) -> Observation:
    """The observation as a plan file keeps it: file contents (shown by the plan's diffs, and
    possibly secret) left out; their hashes stay."""
    paths = {k: p.model_copy(update={"content": None}) for k, p in observed.paths.items()}
    return observed.model_copy(update={"paths": paths})


def observed_differences(before: Observation, after: Observation) -> list[str]:
    """Each difference between two probes of one host, one line each, in section order."""
    old, new = for_plan(before).model_dump(mode="json"), for_plan(after).model_dump(mode="json")
    lines: list[str] = []
    for section, word in _SECTIONS.items():
        a, b = old.get(section, {}), new.get(section, {})
        for key in list(b) + [k for k in a if k not in b]:
            if a.get(key) != b.get(key):
                lines.append(f"{word} {key}: {_what_changed(a.get(key), b.get(key))}")
    return lines


def _what_changed(before: Any, after: Any) -> str:
    if before is None:
        return "not seen when the plan was made"
    if after is None:
        return "no longer seen"
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return f"{before} -> {after}"
    parts = [
        f"{field} {_short(before.get(field))} -> {_short(after.get(field))}"
        for field in after
        if before.get(field) != after.get(field)
    ]
    return ", ".join(parts)


def _short(value: Any) -> str:
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]  # a sha256
    return "-" if value is None else str(value)


def input_differences(planned: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    """Input files added, removed or changed since the plan, one line each."""
    lines = []
    for name in sorted(set(planned) | set(now)):
        if name not in now:
            lines.append(f"{name}: no longer used")
        elif name not in planned:
            lines.append(f"{name}: new since the plan")
        elif planned[name] != now[name]:
            lines.append(f"{name}: changed since the plan")
    return lines


def _canonical(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return _canonical(value.model_dump(mode="python"))
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items() if k not in _WHERE_FIELDS}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_canonical(v) for v in value]
        return sorted(items, key=json.dumps) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, bytes):
        return "sha256:" + hashlib.sha256(value).hexdigest()
    if isinstance(value, SecretStr):  # not hashed into a published file: a weak one would tell
        return "(secret)"
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
