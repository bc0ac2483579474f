"""Patch assessment data: what one host's probe reports about its packages, and what follows.

A `HostAssessment` is the installed packages (with their source packages), the pending updates
with the origins of their candidates, the reboot facts, the processes still mapping deleted
libraries and the age of the apt lists. `PatchingSettings` is the inventory's `patching:`
section (which origins count as security). `Urgency`, `CveExposure` and `HostExposure` carry
what the security tracker says about a host. Pure data: imports only pydantic and the package's
model base; no I/O.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from orchestrator.model.base import Frozen

Classification = Literal["security", "other"]
DEFAULT_SECURITY_ORIGINS = ("l=Debian-Security",)


class AptOrigin(Frozen):
    """Where a candidate version comes from, with the fields unattended-upgrades matches on.
    An empty string is a field apt did not report (it matches only the pattern `*`)."""

    origin: str = Field("", description="`o=`: the Release file's Origin, e.g. Debian.")
    label: str = Field("", description="`l=`: the Release file's Label, e.g. Debian-Security.")
    archive: str = Field("", description="`a=`: the suite, e.g. oldstable-security.")
    codename: str = Field("", description="`n=`: the codename, e.g. bookworm-security.")
    component: str = Field("", description="`c=`: the component, e.g. main.")
    site: str = Field("", description="The repository's host name, e.g. deb.debian.org.")
    version: str = Field("", description="`v=`: the Release file's Version, e.g. 12.15.")


class InstalledPackage(Frozen):
    """One installed binary package (dpkg status `ii`) and the source package it was built from."""

    name: str = Field(description="Binary package, with `:arch` when dpkg shows it.")
    version: str
    architecture: str
    source: str = Field(description="Source package name (the binary's own name if it has none).")
    source_version: str = Field(description="Source version: no binNMU `+bN` suffix.")


class PendingUpdate(Frozen):
    """One package `apt-get -s dist-upgrade` would install or upgrade."""

    package: str
    installed_version: str | None = Field(description="None for a new install.")
    candidate_version: str
    architecture: str
    origins: tuple[AptOrigin, ...] = Field(description="Every repository offering the candidate.")


class RebootStatus(Frozen):
    """Whether the host needs a reboot, and why."""

    required_flag: bool = Field(False, description="/run/reboot-required exists.")
    packages: tuple[str, ...] = Field((), description="/run/reboot-required.pkgs, in file order.")
    running_kernel: str = Field("", description="`uname -r`, e.g. 6.1.0-57-amd64.")
    newest_kernel: str = Field("", description="Newest /boot/vmlinuz-* release, '' if unknown.")

    kernel_outdated: bool = Field(
        False, description="The newest installed kernel is newer than the running one."
    )

    @property
    def required(self) -> bool:
        return self.required_flag or bool(self.packages) or self.kernel_outdated


class StaleProcess(Frozen):
    """A process still mapping files that an upgrade deleted: it runs the old code."""

    pid: int
    unit: str = Field("", description="Its systemd unit, e.g. nginx.service; '' if unknown.")
    deleted_files: tuple[str, ...]


class HostAssessment(Frozen):
    """Everything one probe of one host says about its patch state."""

    host: str
    codename: str = Field(description="VERSION_CODENAME from /etc/os-release, e.g. bookworm.")
    assessed_at: datetime
    installed: tuple[InstalledPackage, ...] = ()
    pending: tuple[PendingUpdate, ...] = ()
    reboot: RebootStatus = RebootStatus()
    stale_processes: tuple[StaleProcess, ...] = ()
    lists_updated_at: datetime | None = Field(
        None, description="Newest apt list file's modification time; None if there are none."
    )
    skipped_lines: int = Field(0, ge=0, description="Probe output lines no parser understood.")

    @property
    def lists_age_seconds(self) -> float | None:
        if self.lists_updated_at is None:
            return None
        return max(0.0, (self.assessed_at - self.lists_updated_at).total_seconds())


def _origin_pattern_text(text: str) -> str:
    parse_origin_pattern(text)  # raises ValueError with the reason
    return text


OriginPatternText = Annotated[str, AfterValidator(_origin_pattern_text)]


class SlaDays(Frozen):
    """Days a host may stay open to a CVE once its fix is available, per urgency bucket (the
    tracker's `not yet assigned` counts as high, `end-of-life` as unimportant). None: no
    deadline for that bucket."""

    high: int | None = Field(30, ge=0)
    medium: int | None = Field(90, ge=0)
    low: int | None = Field(180, ge=0)
    unimportant: int | None = Field(None, ge=0)


class PatchingSettings(Frozen):
    """The inventory's `patching:` section."""

    sla_days: SlaDays = Field(
        SlaDays(),
        description="Patch SLA per urgency (high, medium, low, unimportant), in days from the "
        "first time the fixing version was seen; `patchring compliance` reports what is overdue.",
    )

    security_origins: tuple[OriginPatternText, ...] = Field(
        DEFAULT_SECURITY_ORIGINS,
        description="unattended-upgrades Origins-Pattern strings (`o=Debian,n=${distro_codename}"
        "-security`): an update is `security` when any origin of its candidate matches one.",
    )


ORIGIN_KEYS = {
    "o": "origin",
    "origin": "origin",
    "l": "label",
    "label": "label",
    "a": "archive",
    "suite": "archive",
    "archive": "archive",
    "c": "component",
    "component": "component",
    "n": "codename",
    "codename": "codename",
    "site": "site",
}
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


class OriginPattern(Frozen):
    """One parsed Origins-Pattern: (AptOrigin field, fnmatch glob) pairs that must all match.
    No pairs (an empty pattern) matches nothing, as in unattended-upgrades."""

    text: str
    terms: tuple[tuple[str, str], ...]


def parse_origin_pattern(text: str) -> OriginPattern:
    """Parse `key=glob,key=glob` with unattended-upgrades' keys (`o`/`origin`, `l`/`label`,
    `a`/`suite`/`archive`, `c`/`component`, `n`/`codename`, `site`) and `\\,` for a literal
    comma. Raises ValueError naming the bad term (unknown key, no `=`)."""
    if not text.strip():
        return OriginPattern(text=text, terms=())
    terms: list[tuple[str, str]] = []
    for token in _UNESCAPED_COMMA.split(text.strip()):
        key, equals, value = token.partition("=")
        key = key.strip()
        if not equals:
            raise ValueError(f"origin pattern '{text}': '{token}' is not key=value")
        if key not in ORIGIN_KEYS:
            allowed = ", ".join(sorted(ORIGIN_KEYS))
            raise ValueError(f"origin pattern '{text}': unknown key '{key}' (allowed: {allowed})")
        terms.append((ORIGIN_KEYS[key], value.strip().replace("\\,", ",")))
    return OriginPattern(text=text, terms=tuple(terms))


class Urgency(StrEnum):
    """The tracker's urgency, normalised (`low**`, NVD-derived, is `low`)."""

    UNIMPORTANT = "unimportant"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    NOT_YET_ASSIGNED = "not yet assigned"
    END_OF_LIFE = "end-of-life"

    @property
    def rank(self) -> int:
        """Order for thresholds: unimportant < low < medium < high. `not yet assigned` counts as
        high (an unassessed CVE must not hide below a threshold); `end-of-life` (the release gets
        no more fixes for this package) counts as unimportant: no threshold waits for it."""
        return _RANKS[self]


_RANKS = {
    Urgency.UNIMPORTANT: 0,
    Urgency.END_OF_LIFE: 0,
    Urgency.LOW: 1,
    Urgency.MEDIUM: 2,
    Urgency.HIGH: 3,
    Urgency.NOT_YET_ASSIGNED: 3,
}


class FixingPackage(Frozen):
    """A binary package version from the host's repositories that fixes a CVE."""

    package: str
    version: str


class CveExposure(Frozen):
    """One CVE open on one host: the installed source version is below the fix, or unfixed."""

    cve: str
    source: str
    installed_source_version: str
    urgency: Urgency
    nvd_derived: bool = Field(False, description="Urgency came from NVD (`low**` in the data).")
    status: Literal["resolved", "open", "undetermined"]
    fixed_version: str | None = Field(None, description="First fixed source version, if any.")
    fixed_by: tuple[FixingPackage, ...] = Field(
        (), description="Pending candidates that carry the fix; empty when none is available."
    )
    nodsa: str | None = None

    @property
    def fix_available(self) -> bool:
        return bool(self.fixed_by)


class HostExposure(Frozen):
    """The CVEs open on one host, most urgent first."""

    host: str
    codename: str
    release_tracked: bool = Field(description="The tracker data knows the host's release.")
    open: tuple[CveExposure, ...] = ()
    accepted: tuple[CveExposure, ...] = Field(
        (), description="CVEs that would be open, accepted as a risk by an exception."
    )


class Advisory(Frozen):
    """A hand-written `patches:` entry (or any advisory): fixed in `fixed` of `package`."""

    id: str
    cves: tuple[str, ...] = ()
    package: str = Field(description="Binary or source package name.")
    fixed: str


class AdvisoryExposure(Frozen):
    """A hand-written advisory still open on one host: its package is installed below `fixed`."""

    advisory: str
    cves: tuple[str, ...] = ()
    package: str = Field(description="The package the advisory names (binary or source).")
    installed_version: str = Field(description="The lowest installed version below the fix.")
    fixed: str
    fixed_by: tuple[FixingPackage, ...] = Field(
        (), description="Pending candidates that reach `fixed`; empty when none is available."
    )

    @property
    def fix_available(self) -> bool:
        return bool(self.fixed_by)
