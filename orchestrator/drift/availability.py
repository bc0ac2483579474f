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

from debian.debian_support import version_compare

from orchestrator.drift.observed import Observation
from orchestrator.model.desired import DesiredState
from orchestrator.model.policy import Package, Patch

_FORMAT = "${db:Status-Abbrev}${Version}"


def offer_key(package: str, version: str) -> str:
    return f"{package}={version}"


def _wanted_versions(desired: DesiredState) -> list[tuple[str, str, bool]]:
    """(package, version, is a patch) for every exact version a host must have: patches (only
    an upgrade) and pinned packages (any other version, or none installed)."""
    found: dict[str, tuple[str, str, bool]] = {}
    for resource in desired.resources:
        spec = resource.spec
        if isinstance(spec, Patch):
            found.setdefault(offer_key(spec.package, spec.fixed), (spec.package, spec.fixed, True))
        elif isinstance(spec, Package) and spec.version is not None:
            found.setdefault(offer_key(spec.name, spec.version), (spec.name, spec.version, False))
    return list(found.values())


def offer_lines(desired: DesiredState) -> list[str]:
    """One shell line per exact version: `offer<TAB>pkg<TAB>version<TAB>yes|no`, printed only
    when the host would have to install it (a patch: installed below it; a pin: not installed
    at it), so there is one apt-cache call per install actually needed."""
    lines: list[str] = []
    for package, version, is_patch in _wanted_versions(desired):
        name, wanted = quote(package), quote(version)
        answer = f"printf 'offer\\t%s\\t%s\\t%s\\n' {name} {wanted}"
        ask = (
            f"if apt-cache show {quote(offer_key(package, version))} 2>/dev/null "
            f"| grep -q '^Package: '; then {answer} yes; else {answer} no; fi"
        )
        installed = f"v=$(dpkg-query -W -f='{_FORMAT}' {name} 2>/dev/null); "
        if is_patch:
            lines.append(
                installed + f'case "$v" in "ii "*) v=${{v#ii }}; '
                f'if dpkg --compare-versions "$v" lt {wanted}; then {ask}; fi;; esac'
            )
        else:
            lines.append(installed + f'if [ "$v" != "ii "{wanted} ]; then {ask}; fi')
    return lines


def unoffered_versions(
    desired: DesiredState, observed: Observation, lists_refreshed: bool = False
) -> tuple[str, ...]:
    """Each exact version the host needs but its repositories do not offer, in words naming
    where it was set. With `lists_refreshed` (an apt repository changes first, so apt will
    know more by then) pinned packages are not judged: only patches, which the mirror already
    had to offer for them to be locked."""
    found: list[str] = []
    for resource in desired.resources:
        spec = resource.spec
        if isinstance(spec, Patch):
            if _needs_patch(spec, observed) and observed.offered.get(_patch_key(spec)) is False:
                where = resource.field_locations.get("fixed") or resource.location
                found.append(f"{spec.package} {spec.fixed} ({spec.advisory}, {where})")
        elif (
            isinstance(spec, Package)
            and spec.version is not None
            and not lists_refreshed
            and observed.offered.get(offer_key(spec.name, spec.version)) is False
        ):
            where = resource.field_locations.get("version") or resource.location
            found.append(f"{spec.name} {spec.version} (pinned at {where})")
    return tuple(dict.fromkeys(found))


def _patch_key(spec: Patch) -> str:
    return offer_key(spec.package, spec.fixed)


def _needs_patch(spec: Patch, observed: Observation) -> bool:
    """A patch upgrades only an installed package below its version (a pin to the same
    version may have asked apt about it for a host that lacks the package)."""
    seen = observed.packages.get(spec.package)
    return (
        seen is not None
        and seen.installed
        and seen.version is not None
        and version_compare(seen.version, spec.fixed) < 0
    )


def unoffered_error(missing: tuple[str, ...]) -> str:
    return (
        "not offered by this host's apt repositories (nothing was changed): "
        + "; ".join(missing)
        + ". Pin a version the repositories have (`apt-cache policy PACKAGE` on the host lists "
        "them), run `patchring patches lock --refresh` again for a locked patch, or restore "
        "the repository"
    )
