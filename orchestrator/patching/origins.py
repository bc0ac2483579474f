"""unattended-upgrades' Origins-Pattern matching, and security classification of pending updates.

A pattern's terms all must match one origin (case-sensitive fnmatch globs); an update is
`security` when any origin of its candidate matches any security pattern. `${distro_codename}`
and `${distro_id}` are filled from the host, as unattended-upgrades does with `lsb_release`.
Parsing lives in `model.patching` so that the inventory model validates patterns at load time.
Imports only the package's model.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from string import Template

from orchestrator.model.patching import (
    AptOrigin,
    Classification,
    OriginPattern,
    PatchingSettings,
    PendingUpdate,
    parse_origin_pattern,
)

DISTRO_ID = "Debian"


def substitute(pattern: OriginPattern, codename: str, distro_id: str = DISTRO_ID) -> OriginPattern:
    """The pattern with `${distro_codename}` and `${distro_id}` filled in (other `$` text kept)."""
    values = {"distro_codename": codename, "distro_id": distro_id}
    terms = tuple((key, Template(glob).safe_substitute(values)) for key, glob in pattern.terms)
    return pattern.model_copy(update={"terms": terms})


def matches_origin(pattern: OriginPattern, origin: AptOrigin) -> bool:
    """Whether every term of `pattern` matches `origin`; an empty pattern matches nothing, and
    the dpkg status pseudo-origin (`a=now`) is never matched."""
    if not pattern.terms or origin.archive == "now":
        return False
    return all(fnmatchcase(getattr(origin, key), glob) for key, glob in pattern.terms)


def security_patterns(settings: PatchingSettings, codename: str) -> tuple[OriginPattern, ...]:
    """The inventory's security patterns, parsed and filled in for a host of `codename`."""
    return tuple(
        substitute(parse_origin_pattern(text), codename) for text in settings.security_origins
    )


def classify_update(update: PendingUpdate, patterns: Sequence[OriginPattern]) -> Classification:
    """`security` when any origin of the candidate matches any pattern, else `other`."""
    hit = any(matches_origin(p, origin) for p in patterns for origin in update.origins)
    return "security" if hit else "other"
