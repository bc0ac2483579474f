"""Debian version ordering edge cases (PATCHING.md section 5) and binNMU stripping."""

from __future__ import annotations

import pytest

from orchestrator.patching.versions import (
    compare_versions,
    is_debian_version,
    newest,
    sort_versions,
    strip_binnmu,
)

LOWER_THAN = [
    ("1.0-1", "1:0.1-1"),  # an epoch beats any upstream version
    ("1.0~rc1-1", "1.0-1"),  # ~ sorts before everything, even the end of the string
    ("1.2.3-1~deb12u1", "1.2.3-1"),
    ("1.2.3-1", "1.2.3-1+deb12u1"),
    ("1.2.3-1+b1", "1.2.3-1+deb12u1"),
    ("5.2.15-2", "5.2.15-2+b13"),
    ("20230311+deb12u1", "20250419~deb12u2"),
    ("3.0.20-1~deb12u2", "3.0.22-1~deb12u2"),
    ("6.1.0-9-amd64", "6.1.0-10-amd64"),  # numeric, not string, comparison
    ("1.9", "1.10"),
]


@pytest.mark.parametrize(("lower", "higher"), LOWER_THAN)
def test_lower_versions_sort_first(lower: str, higher: str) -> None:
    assert compare_versions(lower, higher) == -1
    assert compare_versions(higher, lower) == 1


@pytest.mark.parametrize(("left", "right"), [("1.0", "1.0-0"), ("0:1.0-1", "1.0-1"), ("2", "2")])
def test_equal_versions(left: str, right: str) -> None:
    assert compare_versions(left, right) == 0


def test_string_order_would_be_wrong_and_newest_is_not_fooled() -> None:
    versions = ["1.10-1", "1.9-1", "1:0.1-1", "1.9-1~deb12u1"]
    assert max(versions) == "1:0.1-1" and min(versions) != "1.9-1~deb12u1"  # strings mis-sort
    assert newest(versions) == "1:0.1-1"
    assert sort_versions(versions) == ["1.9-1~deb12u1", "1.9-1", "1.10-1", "1:0.1-1"]


@pytest.mark.parametrize(
    ("binary", "source"),
    [
        ("5.2.15-2+b13", "5.2.15-2"),
        ("1:2.66-4+deb12u3+b1", "1:2.66-4+deb12u3"),
        ("1.0+b1x", "1.0+b1x"),  # not a binNMU suffix
        ("3.0.20-1~deb12u2", "3.0.20-1~deb12u2"),
    ],
)
def test_strip_binnmu(binary: str, source: str) -> None:
    assert strip_binnmu(binary) == source


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("1.0-1", True),
        ("1:2.3", True),
        ("0", True),
        ("abc", False),
        ("", False),
        ("1:", False),
        (":1", False),
        ("1.0 2", False),
        ("1.0;rm", False),
    ],
)
def test_is_debian_version(text: str, valid: bool) -> None:
    assert is_debian_version(text) is valid
