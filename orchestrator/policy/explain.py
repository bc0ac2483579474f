"""What `patchring explain` shows: every resolved value of a host with the file:line that set it.

Pure builders over a loaded `Project` or one `DesiredState`: rows of (resource id, field, value,
location) and (variable, value, location). Values are given as display text (multi-line text
summarised), so the CLI only prints. Imports the package's model, errors and `policy` modules;
never prints.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from orchestrator.errors import UnknownHostError
from orchestrator.model.base import Frozen
from orchestrator.model.desired import DesiredState, Resource
from orchestrator.model.policy import field_names
from orchestrator.policy.validation import suggest
from orchestrator.source import SourceLocation

if TYPE_CHECKING:
    from orchestrator.policy.project import Project


class ResourceRow(Frozen):
    resource: str
    field: str
    value: str
    location: SourceLocation
    default: bool = False


class VarRow(Frozen):
    name: str
    value: str
    location: SourceLocation


class ExceptionRow(Frozen):
    id: str
    kind: str
    what: str
    note: str
    location: SourceLocation | None = None


class Explanation(Frozen):
    host: str
    policies: tuple[str, ...]
    resources: tuple[ResourceRow, ...]
    vars: tuple[VarRow, ...]
    exceptions: tuple[ExceptionRow, ...] = ()


def display(value: Any) -> str:
    """A value as one line of text: strings as written, multi-line text summarised."""
    if isinstance(value, str):
        lines = value.splitlines()
        return value if len(lines) <= 1 else f"{lines[0]} ... ({len(lines)} lines)"
    if value is None:
        return "null"
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value, sort_keys=True, default=str)


def resource_rows(resource: Resource) -> list[ResourceRow]:
    """One row per field of the resource; unwritten fields show their default. A file's content
    is the rendered text, located at its `content:` or `template:`."""
    rows: list[ResourceRow] = []
    for name in field_names(type(resource.spec)):
        value = getattr(resource.spec, name)
        where = resource.field_locations.get(name)
        if name == "content" and resource.content is not None:
            value = resource.content
            where = where or resource.field_locations.get("template")
        row = ResourceRow(
            resource=resource.id,
            field=name,
            value=display(value),
            location=where or resource.location,
            default=where is None,
        )
        rows.append(row)
    return rows


def explain_host(project: Project, host: str) -> Explanation:
    """Every resource field and variable of one host of a loaded project. Raises
    UnknownHostError (with a did-you-mean) for a host the inventory does not have."""
    if host not in project.desired:
        known = project.inventory.hosts
        raise UnknownHostError(f"unknown host '{host}'{suggest(host, known)}")
    return explain_state(project.desired[host])


def explain_state(state: DesiredState) -> Explanation:
    """Every resource field and variable of one resolved host, with where each value was set."""
    return Explanation(
        host=state.host.name,
        policies=state.policies,
        resources=tuple(row for resource in state.resources for row in resource_rows(resource)),
        vars=tuple(
            VarRow(name=name, value=display(var.value), location=var.location)
            for name, var in state.vars.items()
        ),
        exceptions=tuple(
            ExceptionRow(
                id=x.id,
                kind=x.kind,
                what=x.what,
                note=x.note,
                location=x.location,
            )
            for x in state.exceptions
        ),
    )
