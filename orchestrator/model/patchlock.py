"""The lock file (`patches.lock.yml`): the exact package versions each baseline approves.

`seen` records when patchring first saw each candidate version, per release codename (Debian
repositories carry no release date, so minimum age counts from here). `baselines` holds, per
baseline (the policy that declares it) and per release codename, the one approved version of
each package and the versions seen but held back, each with its reason. A reviewer approves a
lock by reviewing its diff; rollouts install exactly these versions. Pure data: imports only
pydantic and the package's model.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    Field,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic import ValidationError as PydanticValidationError

from orchestrator.model.base import Frozen
from orchestrator.model.patching import Classification

LOCK_SCHEMA_VERSION = 1
LOCK_FILE = "patches.lock.yml"
"""Where the lock lives: at the root of the policy repository, beside `policies/`."""
_DEBIAN_VERSION = re.compile(r"^(?:[0-9]+:)?[0-9][A-Za-z0-9.+~:-]*$")
_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _debian_version(value: str) -> str:
    if not _DEBIAN_VERSION.match(value):
        raise ValueError(f"'{value}' is not a Debian version (like 1.0-2 or 1:2.3-1~deb12u1)")
    return value


def _package_name(value: str) -> str:
    if not _PACKAGE.match(value):
        raise ValueError(f"'{value}' is not a package name")
    return value


def _aware_time(value: Any, handler: ValidatorFunctionWrapHandler) -> datetime:
    try:
        result: datetime = handler(value)
    except PydanticValidationError:
        raise ValueError(
            f"'{value}' is not a date and time with a time zone (like 2026-12-01T09:30:00Z)"
        ) from None
    return result


Version = Annotated[str, AfterValidator(_debian_version)]
Timestamp = Annotated[AwareDatetime, WrapValidator(_aware_time)]
PackageName = Annotated[str, AfterValidator(_package_name)]


class ApprovedVersion(Frozen):
    """The version of a package a baseline approves on one release."""

    version: Version
    source: str = Field("", description="Its source package, when known.")
    classification: Classification
    first_seen: Timestamp
    fixes: tuple[str, ...] = Field((), description="CVE and advisory ids it fixes, sorted.")
    reason: str


class HeldVersion(Frozen):
    """A version seen but not approved (yet): why, and when minimum age will let it in."""

    classification: Classification
    first_seen: Timestamp
    fixes: tuple[str, ...] = ()
    reason: str
    approvable_from: Timestamp | None = None


class ReleaseLock(Frozen):
    """One baseline on one release codename."""

    approved: dict[PackageName, ApprovedVersion] = {}
    held: dict[PackageName, dict[Version, HeldVersion]] = {}


class PatchLock(Frozen):
    """The whole lock file."""

    schema_version: int = Field(description="The lock file format; this patchring writes 1.")
    seen: dict[str, dict[PackageName, dict[Version, Timestamp]]] = Field(
        {}, description="codename -> package -> version -> when patchring first saw it."
    )
    baselines: dict[str, dict[str, ReleaseLock]] = Field(
        {}, description="baseline (policy name) -> codename -> approved and held versions."
    )

    @field_validator("schema_version")
    @classmethod
    def _supported(cls, value: int) -> int:
        if value != LOCK_SCHEMA_VERSION:
            raise ValueError(
                f"lock file schema {value} is not supported (this patchring reads schema "
                f"{LOCK_SCHEMA_VERSION}); run `patchring patches lock` to write it again"
            )
        return value

    def first_seen(self, codename: str, package: str, version: str) -> AwareDatetime | None:
        return self.seen.get(codename, {}).get(package, {}).get(version)

    def approved_version(self, baseline: str, codename: str, package: str) -> str | None:
        release = self.baselines.get(baseline, {}).get(codename)
        entry = release.approved.get(package) if release else None
        return entry.version if entry else None
