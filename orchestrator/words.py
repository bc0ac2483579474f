"""Counts in words for people: `counted(1, "host")` is "1 host", `counted(2, "policy")` is
"2 policies". Pure; imports nothing of the package."""

from __future__ import annotations

_IRREGULAR = {"policy": "policies", "is": "are", "was": "were", "needs": "need"}


def plural(count: int, word: str) -> str:
    """`word` as it goes with `count`: host/hosts, policy/policies."""
    if count == 1:
        return word
    return _IRREGULAR.get(word, word + ("es" if word.endswith(("s", "sh", "ch", "x")) else "s"))


def counted(count: int, word: str) -> str:
    """The count and the word that goes with it: "1 host", "3 hosts"."""
    return f"{count} {plural(count, word)}"
