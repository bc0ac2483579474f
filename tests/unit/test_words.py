"""Counts in words."""

from __future__ import annotations

from orchestrator.words import counted, plural


def test_one_is_singular_and_everything_else_plural() -> None:
    assert [counted(n, "host") for n in (0, 1, 2)] == ["0 hosts", "1 host", "2 hosts"]
    assert counted(1, "policy") == "1 policy"
    assert counted(3, "policy") == "3 policies"
    assert plural(2, "patch") == "patches"
