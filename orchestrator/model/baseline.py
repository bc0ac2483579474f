"""A policy's patch baseline: which pending updates are approved for the hosts it selects.

Evaluated in AWS SSM Patch Manager's order: the filters (classification, include/exclude
package patterns), then the approval rules (minimum urgency of the CVEs an update fixes, minimum
age since patchring first saw the version), then explicit approvals (which override filters and
rules), then explicit rejections (which win over everything). Package patterns are
case-sensitive fnmatch globs. Pure data: imports only pydantic and the package's model.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from orchestrator.model.base import Frozen
from orchestrator.model.patching import Urgency

_PACKAGE_GLOB = r"^[A-Za-z0-9*?\[][A-Za-z0-9_.+*?\[\]!:-]*$"
_VERSION = r"^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$"


def _package_glob(pattern: str) -> str:
    if not re.match(_PACKAGE_GLOB, pattern):
        raise ValueError(f"'{pattern}' is not a package name or glob (like linux-image-*)")
    return pattern


PackageGlob = Annotated[str, AfterValidator(_package_glob)]


class PackageVersionRef(Frozen):
    """A package (glob) and, optionally, one exact version of it."""

    package: PackageGlob = Field(description="Package name or glob, e.g. linux-*.")
    version: str | None = Field(None, pattern=_VERSION, description="Only this exact version.")


_URGENCY_CHOICES = Literal["unimportant", "low", "medium", "high"]


class PatchBaseline(Frozen):
    """Which updates are approved: `classification` and the patterns filter, `min_urgency` and
    `min_age_days` decide, `approved` overrides, `rejected` always wins."""

    classification: Literal["security", "all"] = Field(
        "security", description="security: only updates from a security origin; all: any update."
    )
    min_urgency: _URGENCY_CHOICES | None = Field(
        None,
        description="Approve only updates that fix a CVE of at least this urgency (an update "
        "fixing no known CVE is then not approved). `not yet assigned` counts as high.",
    )
    min_age_days: int = Field(
        0, ge=0, description="Approve a version only this many days after patchring first saw it."
    )
    max_open_urgency: _URGENCY_CHOICES | None = Field(
        None,
        description="`verify` fails a host on which a CVE of this urgency or higher is open while "
        "its repositories offer the fixing version (checked when the inventory names "
        "`security_data:`). `not yet assigned` counts as high.",
    )
    include: tuple[PackageGlob, ...] = Field(
        (), description="Only packages matching one of these globs (all when empty)."
    )
    exclude: tuple[PackageGlob, ...] = Field((), description="Never packages matching these globs.")
    approved: tuple[PackageVersionRef, ...] = Field(
        (), description="Approved whatever the filters and rules say (not over a rejection)."
    )
    rejected: tuple[PackageVersionRef, ...] = Field(
        (), description="Never approved: the package, or only the version given."
    )

    @property
    def minimum_urgency(self) -> Urgency | None:
        return None if self.min_urgency is None else Urgency(self.min_urgency)
