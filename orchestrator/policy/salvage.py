"""Keeping what is valid in a policy file that is not, so one run finds every error.

A policy with one bad entry (say `mode: 0640` unquoted) is still reported as invalid, but its
valid entries go on to resolution, so a missing template, a rendering error or a conflict in the
same file shows up in the same run. Every list section is checked entry by entry; the entries
that fail, and unknown top-level keys, are left out, and the rest is validated again as a whole.
When what remains is still invalid (a bad `name` or `select`), nothing of the file is resolved.
The located YAML is renumbered to match, so every location stays true. Knows no section by
name: it reads the `PolicyDocument` fields. Pure; imports pydantic and the package's modules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, TypeVar, get_args, get_origin

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticError

from orchestrator.model.policy import PolicyDocument
from orchestrator.policy.yamlsource import LocatedYaml, YamlPath

T = TypeVar("T")


def _element_type(section: str) -> Any:
    """The type of one entry of a list section, or None for a field that is not a list."""
    field = PolicyDocument.model_fields[section]
    if get_origin(field.annotation) is tuple and get_args(field.annotation)[1:] == (...,):
        return get_args(field.annotation)[0]
    return None


def _valid(adapter: TypeAdapter[Any], value: Any) -> bool:
    try:
        adapter.validate_python(value, context={"rendered": False})
    except PydanticError:
        return False
    return True


def salvage_policy(
    located: LocatedYaml,
) -> tuple[PolicyDocument | None, LocatedYaml, tuple[tuple[str, Any], ...]]:
    """The document of the file's valid parts, the located YAML renumbered to match, and the
    (section, raw entry) pairs left out; (None, located, ()) when nothing can be kept."""
    if not isinstance(located.data, dict):
        return None, located, ()
    data: dict[str, Any] = {}
    renumber: dict[YamlPath, YamlPath | None] = {}
    dropped: list[tuple[str, Any]] = []
    for key, value in located.data.items():
        if key not in PolicyDocument.model_fields:
            renumber[(key,)] = None
            continue
        element = _element_type(key)
        if element is None or not isinstance(value, list):
            data[key] = value
            continue
        adapter: TypeAdapter[Any] = TypeAdapter(element)
        kept: list[Any] = []
        for index, entry in enumerate(value):
            if _valid(adapter, entry):
                renumber[(key, index)] = (key, len(kept))
                kept.append(entry)
            else:
                renumber[(key, index)] = None
                dropped.append((key, entry))
        data[key] = kept
    try:
        document = PolicyDocument.model_validate(data, context={"rendered": False})
    except PydanticError:
        return None, located, ()
    return document, _renumbered(located, data, renumber), tuple(dropped)


def _moved(path: YamlPath, renumber: Mapping[YamlPath, YamlPath | None]) -> YamlPath | None:
    for size in (2, 1):
        if path[:size] in renumber:
            target = renumber[path[:size]]
            return None if target is None else (*target, *path[size:])
    return path


def _renumbered(
    located: LocatedYaml, data: dict[str, Any], renumber: Mapping[YamlPath, YamlPath | None]
) -> LocatedYaml:
    def remap(table: Mapping[YamlPath, T]) -> dict[YamlPath, T]:
        moved = {path: _moved(path, renumber) for path in table}
        return {target: table[path] for path, target in moved.items() if target is not None}

    secrets = {_moved(path, renumber) for path in located.secrets}
    return replace(
        located,
        data=data,
        values=remap(located.values),
        keys=remap(located.keys),
        texts=remap(located.texts),
        secrets=frozenset(path for path in secrets if path is not None),
    )
