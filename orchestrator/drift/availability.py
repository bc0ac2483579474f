"""Whether the versions a host must upgrade to are offered by its apt repositories.

A patch (a hand-written advisory, or a version pinned by `patches.lock.yml`) installs exactly
one version. When the mirror has moved on and no longer offers it, the host must fail in the
plan, before anything is touched, not halfway through an apply. The probe asks apt only for
patches the host actually needs (installed, and below the version): `offer_lines` gives those
shell lines, `unoffered_versions` reads the answers. `apt-cache show name=version` exits 0
with no output for a version apt does not know, so the answer is whether it printed a stanza.
Pure; imports only the package's model.
"""

from __future__ import annotations

from shlex import quote

from orchestrator.drift.observed import Observation
from orchestrator.model.desired import DesiredState
from orchestrator.model.policy import Patch

_FORMAT = "${db:Status-Abbrev}${Version}"


def offer_key(package: str, version: str) -> str:
    return f"{package}={version}"


def offer_lines(desired: DesiredState) -> list[str]:
    """One shell line per patch: `offer<TAB>pkg<TAB>version<TAB>yes|no`, printed only when the
    package is installed below the version (one apt-cache call per upgrade actually needed)."""
    lines: list[str] = []
    seen: set[str] = set()
    for resource in desired.resources:
        spec = resource.spec
        if not isinstance(spec, Patch) or offer_key(spec.package, spec.fixed) in seen:
            continue
        seen.add(offer_key(spec.package, spec.fixed))
        name, version = quote(spec.package), quote(spec.fixed)
        answer = f"printf 'offer\\t%s\\t%s\\t%s\\n' {name} {version}"
        lines.append(
            f"v=$(dpkg-query -W -f='{_FORMAT}' {name} 2>/dev/null); "
            f'case "$v" in "ii "*) v=${{v#ii }}; '
            f'if dpkg --compare-versions "$v" lt {version}; then '
            f"if apt-cache show {quote(offer_key(spec.package, spec.fixed))} 2>/dev/null "
            "| grep -q '^Package: '; "
            f"then {answer} yes; else {answer} no; fi; fi;; esac"
        )
    return lines


def unoffered_versions(desired: DesiredState, observed: Observation) -> tuple[str, ...]:
    """Each patch whose version the host needs but its repositories do not offer, in words
    naming where the version was set."""
    found: list[str] = []
    for resource in desired.resources:
        spec = resource.spec
        if (
            isinstance(spec, Patch)
            and observed.offered.get(offer_key(spec.package, spec.fixed)) is False
        ):
            where = resource.field_locations.get("fixed") or resource.location
            found.append(f"{spec.package} {spec.fixed} ({spec.advisory}, {where})")
    return tuple(dict.fromkeys(found))


def unoffered_error(missing: tuple[str, ...]) -> str:
    return (
        "not offered by this host's apt repositories (nothing was changed): "
        + "; ".join(missing)
        + ". Run `patchring patches lock --refresh` again, or restore the repository"
    )
