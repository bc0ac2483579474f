"""The order resources apply in: the default order of kinds, moved by each resource's `after`.

A resource's `after` lists ids (`kind:key`, as plans show them) it must come after. The order is
topological over those constraints and otherwise keeps the given (default) order, so a host
without `after` converges exactly as before. Knows no resource kind: it reads only ids and
`spec.after`, so a kind added later takes part without a change here. Pure; imports only the
standard library and `model.desired`.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from orchestrator.model.desired import Resource


def after_ids(resource: Resource) -> tuple[str, ...]:
    """The ids `resource` must come after (empty for a spec without `after`)."""
    return tuple(getattr(resource.spec, "after", ()))


def constraint_edges(resources: Sequence[Resource]) -> list[tuple[str, str]]:
    """(before, after) id pairs among `resources`; ids naming no resource here are left out
    (unknown ids are reported by validation; an unchanged resource needs no ordering)."""
    present = {r.id for r in resources}
    return [(before, r.id) for r in resources for before in after_ids(r) if before in present]


def topological_order(resources: Sequence[Resource]) -> list[Resource]:
    """`resources` with every `after` honoured, ties kept in the given order (Kahn's algorithm,
    always taking the earliest ready resource). Resources caught in a cycle, or waiting on
    one, keep their given order at the end: validation reports the cycle."""
    position = {r.id: index for index, r in enumerate(resources)}
    waits: dict[str, set[str]] = {r.id: set() for r in resources}
    followers: dict[str, list[str]] = {r.id: [] for r in resources}
    for before, after in constraint_edges(resources):
        if before not in waits[after]:
            waits[after].add(before)
            followers[before].append(after)
    ready = [position[i] for i, w in waits.items() if not w]
    heapq.heapify(ready)
    placed: list[Resource] = []
    while ready:
        resource = resources[heapq.heappop(ready)]
        placed.append(resource)
        for follower in followers[resource.id]:
            waits[follower].discard(resource.id)
            if not waits[follower]:
                heapq.heappush(ready, position[follower])
    done = {r.id for r in placed}
    return placed + [r for r in resources if r.id not in done]


def find_cycles(resources: Sequence[Resource]) -> list[tuple[list[str], list[str]]]:
    """Each cycle of `after` constraints once: the ids of the shortest walk from the group's
    first resource (in the given order) through the ids it comes after back to itself, and
    the other members of the same strongly connected group (Tarjan), so every resource caught
    in it is named."""
    position = {r.id: index for index, r in enumerate(resources)}
    needs: dict[str, list[str]] = {r.id: [] for r in resources}
    for before, after in constraint_edges(resources):
        needs[after].append(before)
    cycles: list[tuple[list[str], list[str]]] = []
    for group in _strong_groups(list(position), needs):
        start = min(group, key=position.__getitem__)
        if len(group) == 1 and start not in needs[start]:
            continue
        path = _walk_back(start, set(group), needs)
        others = sorted(set(group) - set(path), key=position.__getitem__)
        cycles.append((path, others))
    return sorted(cycles, key=lambda cycle: position[cycle[0][0]])


def _walk_back(start: str, members: set[str], needs: dict[str, list[str]]) -> list[str]:
    """The shortest walk start -> ... -> start inside `members` (breadth first)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for node in frontier:
            for step in needs[node]:
                if step not in members:
                    continue
                if step == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if step not in came_from:
                    came_from[step] = node
                    following.append(step)
        frontier = following
    return [start, start]


def _strong_groups(nodes: list[str], edges: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                groups.append(group)
    return groups
