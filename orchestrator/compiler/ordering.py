"""Honouring `after` in compiled operations: a pass over what the per-kind compilers produce.

The compilers emit operations in the default order of kinds and batch packages into one apt call.
When every `after` constraint already holds in that output (the common case) it is returned as
is. Otherwise the resources are put in topological order (`model.order`) and cut into the
longest runs whose default compilation honours every constraint inside them; each run is
compiled on its own, so a batch is split exactly where a constraint separates its members
(a preseed or `policy-rc.d` file written before one package's install, a command after a
service starts). The runs are joined with the bookkeeping kept whole: the record of due
restarts stays first (one command, before anything changes) and `apt update` runs once, before
the first install, again only in a run whose apt sources changed. Knows no resource kind
beyond those two bookkeeping operations. Pure; imports only the compiler's and model's modules.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from orchestrator.compiler.opspec import OpSpec
from orchestrator.model.desired import DesiredState, Resource
from orchestrator.model.order import constraint_edges, topological_order

RECORD_RESTARTS = "record pending restarts"
"""The description prefix of the one command that records due restarts before any change."""

Compile = Callable[[Collection[str] | None], tuple[OpSpec, ...]]


def order_specs(
    desired: DesiredState, only: Collection[str] | None, compile: Compile
) -> tuple[OpSpec, ...]:
    """`compile(only)`, reordered (and its batches split) so each resource's operations come
    after those of every resource its `after` names."""
    specs = compile(only)
    chosen = [r for r in desired.resources if only is None or r.id in only]
    edges = constraint_edges(chosen)
    if not edges or _honoured(specs, edges):
        return specs
    runs = _runs(topological_order(chosen), edges, compile)
    known = {r.id for r in chosen}
    pending = {i for i in only or () if i not in known}  # restarts left pending by a past run
    parts = [compile(set(run) | (pending if last else set())) for run, last in _with_last(runs)]
    return _joined(specs, parts)


def _with_last(runs: list[list[str]]) -> list[tuple[list[str], bool]]:
    return [(run, index == len(runs) - 1) for index, run in enumerate(runs)]


def _is_bookkeeping(op: OpSpec) -> bool:
    return op.operation == "apt.update" or op.description.startswith(RECORD_RESTARTS)


def _honoured(specs: Sequence[OpSpec], edges: list[tuple[str, str]]) -> bool:
    """Whether every operation of each `before` resource precedes every one of its `after`."""
    places: dict[str, list[int]] = {}
    for index, op in enumerate(specs):
        if not _is_bookkeeping(op):
            for resource_id in op.resource_ids:
                places.setdefault(resource_id, []).append(index)
    return all(
        max(places[before]) < min(places[after])
        for before, after in edges
        if before in places and after in places
    )


def _runs(
    ordered: list[Resource], edges: list[tuple[str, str]], compile: Compile
) -> list[list[str]]:
    """The topological order cut into the longest runs whose own compilation honours the
    constraints inside them (a run only needs checking when a resource joins one it follows)."""
    needs: dict[str, set[str]] = {}
    for before, after in edges:
        needs.setdefault(after, set()).add(before)
    runs: list[list[str]] = [[]]
    for resource in ordered:
        run = runs[-1]
        if needs.get(resource.id, set()) & set(run):
            candidate = [*run, resource.id]
            inside = [(b, a) for b, a in edges if b in candidate and a in candidate]
            if not _honoured(compile(set(candidate)), inside):
                runs.append([resource.id])
                continue
        run.append(resource.id)
    return [run for run in runs if run]


def _joined(whole: tuple[OpSpec, ...], parts: list[tuple[OpSpec, ...]]) -> tuple[OpSpec, ...]:
    """The runs' operations in sequence: the whole host's restart record first, `apt update`
    once before the first install and again only after apt sources changed."""
    record = [op for op in whole if op.description.startswith(RECORD_RESTARTS)]
    joined: list[OpSpec] = list(record)
    updated = False
    for part in parts:
        for op in part:
            if op.description.startswith(RECORD_RESTARTS):
                continue
            if op.operation == "apt.update":
                sources = any(i.startswith("apt_repository:") for i in op.resource_ids)
                if updated and not sources:
                    continue
                updated = True
            joined.append(op)
    return tuple(joined)
