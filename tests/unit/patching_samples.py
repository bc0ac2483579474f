"""Shared samples for the patching unit tests: tracker JSON in the tracker's exact format
(generated here, never downloaded) and assessments built from real-looking package rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from orchestrator.model.patching import AptOrigin, HostAssessment, InstalledPackage, PendingUpdate

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
SECURITY = AptOrigin(
    origin="Debian",
    label="Debian-Security",
    archive="oldstable-security",
    codename="bookworm-security",
    component="main",
    site="deb.debian.org",
    version="12",
)
POINT = AptOrigin(
    origin="Debian",
    label="Debian",
    archive="oldstable",
    codename="bookworm",
    component="main",
    site="deb.debian.org",
    version="12.15",
)


def release(
    status: str, fixed: str | None = None, urgency: str | None = "medium", **extra: Any
) -> dict[str, Any]:
    """One release object as the tracker writes it (None-valued keys omitted)."""
    entry: dict[str, Any] = {"status": status, "repositories": {"bookworm": "x"}}
    if fixed is not None:
        entry["fixed_version"] = fixed
    if urgency is not None:
        entry["urgency"] = urgency
    return {**entry, **extra}


def tracker_json(data: dict[str, dict[str, dict[str, dict[str, Any]]]]) -> str:
    """source -> CVE -> release -> release object, wrapped with the CVE-level keys."""
    return json.dumps(
        {
            source: {
                cve: {
                    "description": f"{cve} in {source}",
                    "scope": "remote",
                    "debianbug": 1000001,
                    "releases": releases,
                }
                for cve, releases in cves.items()
            }
            for source, cves in data.items()
        },
        indent=1,
    )


def installed(
    name: str,
    version: str,
    source: str | None = None,
    source_version: str | None = None,
    arch: str = "amd64",
) -> InstalledPackage:
    return InstalledPackage(
        name=name,
        version=version,
        architecture=arch,
        source=source or name,
        source_version=source_version or version,
    )


def pending(
    name: str, old: str | None, new: str, *origins: AptOrigin, arch: str = "amd64"
) -> PendingUpdate:
    return PendingUpdate(
        package=name,
        installed_version=old,
        candidate_version=new,
        architecture=arch,
        origins=origins or (SECURITY,),
    )


def assessment(
    host: str,
    codename: str = "bookworm",
    installed_: tuple[InstalledPackage, ...] = (),
    pending_: tuple[PendingUpdate, ...] = (),
) -> HostAssessment:
    return HostAssessment(
        host=host, codename=codename, assessed_at=NOW, installed=installed_, pending=pending_
    )
