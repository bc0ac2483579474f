"""Bounded fan-out: work over a fleet in windows of at most `parallel` hosts.

A command over ten thousand hosts must not open ten thousand SSH connections at once (sockets,
file descriptors, and some hundreds of kilobytes of controller memory per live connection). The
engine and the verifier hand each window to their own per-window work, which connects its hosts,
runs them in parallel and closes every connection before the next window starts; so at most
`parallel` connections are ever open. Windows, not a sliding pool, because a pyinfra State runs
one phase at a time for all its hosts (preparing operations, then executing them); the price is
that a slow host holds up the start of the next window. Pure: imports nothing of the package.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

V = TypeVar("V")
R = TypeVar("R")


def in_windows(
    fleet: Mapping[str, V], parallel: int, work: Callable[[dict[str, V]], Mapping[str, R]]
) -> dict[str, R]:
    """`work` over consecutive windows of at most `parallel` hosts of `fleet` (in its order),
    one window after the other; the results of every host, in the fleet's order."""
    if parallel < 1:
        raise ValueError(f"parallel must be at least 1, not {parallel}")
    names = list(fleet)
    results: dict[str, R] = {}
    for start in range(0, len(names), parallel):
        results.update(work({name: fleet[name] for name in names[start : start + parallel]}))
    return {name: results[name] for name in names}
