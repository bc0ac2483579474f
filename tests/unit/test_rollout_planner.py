"""Rollout decisions, table-driven: ring order, --to, and when a ring may be left."""

from __future__ import annotations

import pytest

from orchestrator.errors import UserInputError
from orchestrator.rollout.planner import ring_waves

RINGS = ["canary", "pilot", "broad"]
HOSTS = {"a": "canary", "b": "pilot", "c": "pilot", "d": "broad", "e": None}


@pytest.mark.parametrize(
    ("to_ring", "expected"),
    [
        (
            None,
            [("canary", ("a",)), ("pilot", ("b", "c")), ("broad", ("d",)), ("(no ring)", ("e",))],
        ),
        ("canary", [("canary", ("a",))]),
        ("pilot", [("canary", ("a",)), ("pilot", ("b", "c"))]),
    ],
)
def test_ring_waves(to_ring: str | None, expected: list) -> None:
    assert ring_waves(RINGS, HOSTS, to_ring) == expected


def test_unknown_to_ring_is_invalid_input() -> None:
    with pytest.raises(UserInputError, match="unknown ring 'pilto' for --to"):
        ring_waves(RINGS, HOSTS, "pilto")
