"""Work shared between hosts while resolving a fleet: what each policy entry reads, and memos.

On a large fleet most hosts get the same resources: an entry whose templates read no variable,
or only group and ring variables, renders the same for every host that sees the same values.
So each entry's templates are read once for the variables they use (`EntryReads`), and its
resource is built once per distinct set of those variables. Variables are told apart by the
identity of their `VarValue` (each is built once, where it is written: every host of a group
shares its group's), so recognising a known set costs a tuple of ids, not a comparison of
values. An entry whose templates read `host`, or whose reads cannot be told (an include), is
rendered for each host; when only its template file does (its own fields are plain text), the
resource is built once and each host gets a copy with its own content. A host's merge and order
checks are then kept per distinct list of resources (`OrderMemo`). The ids are only compared
while every object they name is alive (held by the inventory, the policies or this object).
Pure; imports the package's model and `policy.render` only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from orchestrator.errors import Diagnostic
from orchestrator.model.desired import Resource, ResourceKind, VarValue
from orchestrator.model.policy import Block, File
from orchestrator.policy.render import TemplateRenderer, is_template

PolicyItem = tuple[ResourceKind, int, Resource, object]
"""(kind, position in its section, resource, the object standing for its structure)."""
HOST_VAR = "host"
"""The built-in every template sees: reading it makes an entry's result differ per host."""


@dataclass(frozen=True)
class EntryReads:
    """One entry of a policy section, and the variables its templates read."""

    section: str
    kind: ResourceKind
    index: int
    spec: BaseModel
    names: frozenset[str] | None
    """Every variable its strings and template file read; None when that cannot be told."""
    content_only: bool
    """Its own fields are plain text: rendering can change only its `content`."""

    @property
    def at(self) -> tuple[str, ResourceKind, int, BaseModel]:
        """(section, kind, index, spec), as the resolver renders an entry."""
        return self.section, self.kind, self.index, self.spec

    @property
    def per_host(self) -> bool:
        return self.names is None or HOST_VAR in self.names


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def entry_reads(
    section: str,
    kind: ResourceKind,
    index: int,
    spec: BaseModel,
    raw: Any,
    renderer: TemplateRenderer,
) -> EntryReads:
    """What the entry `raw` (validated as `spec`) reads when rendered."""
    texts = [text for text in _strings(raw) if is_template(text)]
    names: set[str] | None = set()
    for text in texts:
        found = renderer.names_read(text=text)
        names = None if found is None or names is None else names | found
    template = spec.template if isinstance(spec, File | Block) else None
    if template is not None and names is not None:
        written = raw.get("template") if isinstance(raw, dict) else None
        found = None if is_template(str(written)) else renderer.names_read(path=template)
        names = None if found is None else names | found
    frozen = frozenset(names) if names is not None else None
    return EntryReads(section, kind, index, spec, frozen, content_only=not texts)


@dataclass(frozen=True)
class PolicyReads:
    """A policy's entries: those shared by the hosts that see the same values of the names a
    group reads (entries grouped by the names they read, so an entry that reads a ring
    variable is not rebuilt for every group), and those rendered per host."""

    common: tuple[tuple[tuple[str, ...], tuple[EntryReads, ...]], ...]
    per_host: tuple[EntryReads, ...]

    @classmethod
    def of(cls, entries: list[EntryReads]) -> PolicyReads:
        groups: dict[tuple[str, ...], list[EntryReads]] = {}
        for entry in (e for e in entries if not e.per_host):
            groups.setdefault(tuple(sorted(entry.names or ())), []).append(entry)
        common = tuple((names, tuple(group)) for names, group in groups.items())
        return cls(common, tuple(e for e in entries if e.per_host))


def variables_key(names: tuple[str, ...], variables: Mapping[str, VarValue]) -> tuple[int, ...]:
    """Which values of `names` a host has, by identity (see the module docstring)."""
    return tuple([id(variables.get(name)) for name in names])


@dataclass(frozen=True)
class OrderMemo:
    """A host's merged and ordered resources, as positions in its sorted list, and what the
    checks found (only kept when no two resources share an id: then no merge happened)."""

    positions: tuple[int, ...]
    problems: tuple[Diagnostic, ...]
    order_problems: tuple[Diagnostic, ...]
    kept: tuple[object, ...]
    """The objects whose ids make its key, held so those ids stay theirs."""


@dataclass
class SharedResolution:
    """Memos of one resolution of a fleet (one `resolve_hosts` call); never shared wider."""

    reads: dict[int, PolicyReads] = field(default_factory=dict)
    rendered: dict[tuple[int, int, tuple[int, ...]], list[PolicyItem]] = field(default_factory=dict)
    bases: dict[tuple[int, str, int], Resource] = field(default_factory=dict)
    defaults: dict[int, dict[str, VarValue]] = field(default_factory=dict)
    orders: dict[tuple[int, ...], OrderMemo] = field(default_factory=dict)
