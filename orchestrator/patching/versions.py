"""Debian version ordering, and the source version a binary version implies.

Wraps python-debian's `version_compare` (apt_pkg when present, which may return any sign-bearing
integer, so only the sign is used). Never compare Debian versions as strings. Imports only
python-debian.
"""

from __future__ import annotations

import re
from functools import cmp_to_key

from debian.debian_support import version_compare

_BINNMU = re.compile(r"\+b[0-9]+$")
# Debian policy 5.6.12: [epoch:]upstream[-revision], upstream starting with a digit.
_DEBIAN_VERSION = re.compile(r"^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$")


def is_debian_version(text: str) -> bool:
    """Whether `text` is a well-formed Debian version (host output and data are checked with
    this before any comparison, so a junk value is skipped instead of mis-ordered)."""
    return bool(_DEBIAN_VERSION.match(text)) and not text.endswith(":")


def compare_versions(left: str, right: str) -> int:
    """-1, 0 or 1 as `left` sorts before, equal to or after `right` in Debian ordering."""
    result = version_compare(left, right)
    return (result > 0) - (result < 0)


def is_lower(left: str, right: str) -> bool:
    return compare_versions(left, right) < 0


def newest(versions: list[str]) -> str:
    """The highest of non-empty `versions` in Debian ordering."""
    return max(versions, key=cmp_to_key(compare_versions))


def sort_versions(versions: list[str]) -> list[str]:
    return sorted(versions, key=cmp_to_key(compare_versions))


def strip_binnmu(version: str) -> str:
    """The version without a binNMU suffix: `5.2.15-2+b13` -> `5.2.15-2`. A binNMU rebuilds the
    binary only, so the source version never carries `+bN`."""
    return _BINNMU.sub("", version)
