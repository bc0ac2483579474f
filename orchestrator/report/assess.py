"""Patch assessments as text (per ring and host) and as the versioned `patchring.assess/v1` JSON.

Additions keep the version; renames or removals bump it (documented in README). Pure builders
over `patching.summary.HostPatchState`; never prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.model.patching import AdvisoryExposure, CveExposure
from orchestrator.model.record import HostPatching, OpenCve, PatchingSection, PendingPackage
from orchestrator.patching.summary import ClassifiedUpdate, HostPatchState
from orchestrator.words import counted

ASSESS_SCHEMA = "patchring.assess/v1"
NO_RING = "(no ring)"
_DAY = 86400.0


def lists_age_text(seconds: float | None) -> str:
    if seconds is None:
        return "package lists never fetched; --refresh to update"
    if seconds < 3600:
        age = _plural(int(seconds // 60), "minute")
    elif seconds < 2 * _DAY:
        age = _plural(int(seconds // 3600), "hour")
    else:
        age = _plural(int(seconds // _DAY), "day")
    return f"package lists {age} old; --refresh to update"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _ring_names(states: Mapping[str, HostPatchState], rings: Sequence[str]) -> list[str]:
    named = {s.ring or NO_RING for s in states.values()}
    return [r for r in rings if r in named] + sorted(named - set(rings))


def _update_line(update: ClassifiedUpdate) -> str:
    origins = ", ".join(
        sorted(
            {f"{o.label or o.origin or o.site}:{o.codename or o.archive}" for o in update.origins}
        )
    )
    installed = update.installed_version or "(new)"
    return (
        f"      {update.classification:<8} {update.package} {installed} -> "
        f"{update.candidate_version} ({origins})"
    )


def _cve_line(cve: CveExposure) -> str:
    if cve.fix_available:
        fix = "fix available: " + ", ".join(f"{f.package} {f.version}" for f in cve.fixed_by)
    elif cve.fixed_version:
        fix = f"fixed in {cve.fixed_version}, not offered by this host's repositories"
    else:
        fix = "no fix yet"
    return (
        f"      {cve.cve} {cve.source} {cve.installed_source_version} "
        f"urgency {cve.urgency.value}; {fix}"
    )


def _advisory_line(advisory: AdvisoryExposure) -> str:
    if advisory.fix_available:
        fix = "fix available: " + ", ".join(f"{f.package} {f.version}" for f in advisory.fixed_by)
    else:
        fix = "fix not offered by this host's repositories"
    cves = f" ({', '.join(advisory.cves)})" if advisory.cves else ""
    return (
        f"      {advisory.advisory}{cves} {advisory.package} {advisory.installed_version} "
        f"< {advisory.fixed}; {fix}"
    )


def _reboot_text(state: HostPatchState) -> str:
    reboot = state.reboot
    if not reboot.required:
        return "no reboot required"
    why = []
    if reboot.required_flag:
        why.append("/run/reboot-required")
    if reboot.packages:
        why.append("for " + ", ".join(reboot.packages))
    if reboot.kernel_outdated:
        why.append(f"running kernel {reboot.running_kernel}, newest {reboot.newest_kernel}")
    return f"reboot required ({'; '.join(why)})"


def _host_lines(state: HostPatchState) -> list[str]:
    head = f"  {state.host}"
    if state.status != "assessed":
        return [f"{head}: {state.status}: {state.error}"]
    lines = [
        f"{head} ({state.codename or 'unknown release'}): {len(state.security)} security, "
        f"{len(state.other)} other updates pending; {_reboot_text(state)}"
    ]
    lines += [_update_line(u) for u in (*state.security, *state.other)]
    if state.security:
        age = lists_age_text(state.lists_age_seconds).split(";")[0].removeprefix("package lists ")
        lines.append(
            f"    oldest pending security update: pending at least since the lists were fetched "
            f"({age}); exact first-seen dates need a patch lock"
        )
    units = sorted({p.unit or f"pid {p.pid}" for p in state.stale_processes})
    if units:
        lines.append(f"    running deleted libraries: {', '.join(units)}")
    if state.exposure is not None:
        if not state.exposure.release_tracked:
            lines.append(f"    security data has no release '{state.codename}'")
        elif state.exposure.open:
            lines.append(f"    open CVEs: {len(state.exposure.open)}")
            lines += [_cve_line(c) for c in state.exposure.open]
        else:
            lines.append("    open CVEs: none")
        if state.exposure.accepted:
            ids = ", ".join(c.cve for c in state.exposure.accepted)
            lines.append(f"    accepted as a risk (exceptions): {ids}")
    if state.advisories:
        lines.append(f"    open advisories (policies' patches): {len(state.advisories)}")
        lines += [_advisory_line(a) for a in state.advisories]
    lines += [f"    warning: {problem}" for problem in state.problems]
    if state.skipped_lines:
        lines.append(f"    warning: {_plural(state.skipped_lines, 'probe line')} not understood")
    lines.append(f"    {lists_age_text(state.lists_age_seconds)}")
    return lines


def render_assess_text(states: Mapping[str, HostPatchState], rings: Sequence[str]) -> str:
    lines: list[str] = []
    for ring in _ring_names(states, rings):
        members = [s for s in states.values() if (s.ring or NO_RING) == ring]
        counts = _counts(members)
        lines.append(
            f"ring {ring}: {_plural(len(members), 'host')}, {counts['security_updates']} "
            f"security and {counts['other_updates']} other updates pending, "
            f"{counts['reboot_required']} need a reboot"
        )
        for state in members:
            lines += _host_lines(state)
    total = _counts(list(states.values()))
    lines.append(
        f"\n{counted(total['hosts'], 'host')}: {total['hosts_with_security_updates']} with "
        f"security updates pending, {total['reboot_required']} need a reboot, "
        f"{total['unreachable']} unreachable, {total['failed']} failed"
    )
    return "\n".join(lines) + "\n"


def _counts(states: Sequence[HostPatchState]) -> dict[str, int]:
    assessed = [s for s in states if s.status == "assessed"]
    return {
        "hosts": len(states),
        "assessed": len(assessed),
        "unreachable": sum(s.status == "unreachable" for s in states),
        "failed": sum(s.status == "failed" for s in states),
        "security_updates": sum(len(s.security) for s in assessed),
        "other_updates": sum(len(s.other) for s in assessed),
        "hosts_with_security_updates": sum(bool(s.security) for s in assessed),
        "reboot_required": sum(s.reboot.required for s in assessed),
        "services_on_deleted_libraries": sum(len(s.stale_processes) for s in assessed),
        "open_cves": sum(len(s.exposure.open) for s in assessed if s.exposure),
        "hosts_exposed": sum(bool(s.exposure and s.exposure.open) for s in assessed),
        "open_advisories": sum(len(s.advisories) for s in assessed),
    }


def _host_document(state: HostPatchState) -> dict[str, Any]:
    doc = state.model_dump(mode="json", exclude={"exposure", "reboot", "advisories"})
    doc["advisories"] = [
        {**a.model_dump(mode="json"), "fix_available": a.fix_available} for a in state.advisories
    ]
    doc["reboot"] = {**state.reboot.model_dump(mode="json"), "required": state.reboot.required}
    if state.exposure is None:
        doc["exposure"] = None
    else:
        doc["exposure"] = {
            "release": state.exposure.codename,
            "release_tracked": state.exposure.release_tracked,
            "open": [
                {**c.model_dump(mode="json"), "fix_available": c.fix_available}
                for c in state.exposure.open
            ],
            "accepted": [c.cve for c in state.exposure.accepted],
        }
    return doc


def assess_document(
    states: Mapping[str, HostPatchState],
    rings: Sequence[str],
    source: Mapping[str, Any],
    security_origins: Sequence[str],
    security_data: str | None,
) -> dict[str, Any]:
    return {
        "schema": ASSESS_SCHEMA,
        "source": dict(source),
        "security_origins": list(security_origins),
        "security_data": security_data,
        "summary": _counts(list(states.values())),
        "rings": [
            {
                "ring": ring,
                **_counts([s for s in states.values() if (s.ring or NO_RING) == ring]),
            }
            for ring in _ring_names(states, rings)
        ],
        "hosts": [_host_document(state) for state in states.values()],
    }


def _open_cve(cve: CveExposure) -> OpenCve:
    return OpenCve(
        cve=cve.cve,
        source=cve.source,
        installed_source_version=cve.installed_source_version,
        urgency=cve.urgency,
        status=cve.status,
        fixed_version=cve.fixed_version,
        fix_available=cve.fix_available,
        fixed_by=tuple(f"{fix.package} {fix.version}" for fix in cve.fixed_by),
    )


def patching_section(
    states: Mapping[str, HostPatchState], rings: Sequence[str], security_data: str | None
) -> PatchingSection:
    """What an assess run record keeps of each host (the `patching` section of patchring.run/v1):
    pending updates by classification, reboot, and open CVEs (None without security data)."""
    return PatchingSection(
        security_data=security_data,
        rings=tuple(rings),
        hosts=tuple(
            HostPatching(
                host=state.host,
                ring=state.ring,
                status=state.status,
                error=state.error,
                codename=state.codename,
                pending=tuple(
                    PendingPackage(
                        package=u.package,
                        installed_version=u.installed_version,
                        candidate_version=u.candidate_version,
                        classification=u.classification,
                    )
                    for u in state.pending
                ),
                reboot_required=state.reboot.required,
                open_cves=(
                    tuple(_open_cve(c) for c in state.exposure.open)
                    if state.exposure is not None
                    else None
                ),
                accepted_cves=(
                    tuple(c.cve for c in state.exposure.accepted) if state.exposure else ()
                ),
            )
            for state in states.values()
        ),
    )
