"""Exceptions: holds and waivers with an owner, a reason and an expiry, kept in the policy repo.

An exception file (`exceptions/**/*.yml`) lists entries; each excepts exactly one thing for the
hosts it selects (the policies' selectors):
- `hold`: a package stays at a version; no policy pin, advisory or lock upgrades it there;
- `accept`: CVE or advisory ids accepted as a risk: listed as accepted, never as open;
- `waive`: check ids (globs allowed, e.g. `hardening/*`): reported `waived`, the real result kept.
Every entry names its owner, reason, approver and expiry date (the ticket is optional). An
expired entry stops applying. Pure models; no I/O.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from orchestrator.model.base import Frozen
from orchestrator.model.grammar import Line, check_package
from orchestrator.model.policy import NAME, Selector, check_debian_version
from orchestrator.source import SourceLocation

EXCEPTIONS_FOLDER = "exceptions"
_RISK_ID = re.compile(r"^(CVE-\d{4}-\d{4,}|[A-Z][A-Z0-9]*-[A-Za-z0-9][A-Za-z0-9.:-]*)$")
_CVE = re.compile(r"^CVE-\d{4}-\d{4,}$")
_CHECK_GLOB = re.compile(r"^[A-Za-z0-9_.+*?:/@=\[\]-]+$")


def _risk_id(value: str) -> str:
    if not _RISK_ID.match(value) or (value.startswith("CVE-") and not _CVE.match(value)):
        raise ValueError(
            f"'{value}' is not a CVE id (CVE-2026-1234) nor an advisory id (DSA-5678-1, DLA-...)"
        )
    return value


def _check_glob(value: str) -> str:
    if not _CHECK_GLOB.match(value):
        raise ValueError(
            f"'{value}' is not a check id or glob (like 'hardening/setting:/etc/login.defs:"
            "PASS_MAX_DAYS/value' or 'hardening/*')"
        )
    return value


RiskId = Annotated[str, AfterValidator(_risk_id)]
CheckGlob = Annotated[str, AfterValidator(_check_glob)]
ExceptionKind = Literal["hold", "accept", "waive"]


class Hold(Frozen):
    package: Annotated[str, AfterValidator(check_package)]
    version: Annotated[str, AfterValidator(check_debian_version)] = Field(
        description="The version the package stays at on the selected hosts."
    )


def excepted_text(hold: Hold | None, accept: tuple[str, ...], waive: tuple[str, ...]) -> str:
    """What an exception excepts, in words: `acme-agent held at 1.0-1`, or its ids."""
    return f"{hold.package} held at {hold.version}" if hold else ", ".join(accept or waive)


class ExceptionEntry(Frozen):
    """One exception: what is excepted (exactly one of hold, accept, waive), for which hosts,
    who owns it, why, who approved it, and until when."""

    id: str = Field(pattern=NAME, description="Unique across the repository; reports name it.")
    hold: Hold | None = Field(None, description="Keep a package at a version.")
    accept: tuple[RiskId, ...] = Field((), description="CVE or advisory ids accepted as a risk.")
    waive: tuple[CheckGlob, ...] = Field((), description="Check ids or globs waived.")
    select: Selector
    owner: Line = Field(description="Who is accountable (a person or team, e.g. an e-mail).")
    reason: Line
    ticket: Line | None = Field(None, description="The change or risk ticket, e.g. CHG0012345.")
    approved_by: Line = Field(description="Who approved the exception.")
    expires: dt.date = Field(description="Last day the exception applies (YYYY-MM-DD).")

    @model_validator(mode="after")
    def _one_thing(self) -> ExceptionEntry:
        given = [k for k in ("hold", "accept", "waive") if getattr(self, k)]
        if len(given) != 1:
            said = f"it sets {' and '.join(given)}" if given else "it sets none"
            raise ValueError(f"an exception excepts exactly one of hold, accept, waive; {said}")
        return self

    @property
    def kind(self) -> ExceptionKind:
        return "hold" if self.hold else "accept" if self.accept else "waive"

    @property
    def what(self) -> str:
        return excepted_text(self.hold, self.accept, self.waive)


class ExceptionsDocument(Frozen):
    """One exceptions file."""

    exceptions: tuple[ExceptionEntry, ...] = Field(min_length=1)


class ExceptionRules(Frozen):
    """The inventory's `exceptions:` section: how exceptions are governed."""

    warn_days: int = Field(
        14, ge=0, description="`validate` warns this many days before an exception expires."
    )
    approver_not_author: bool = Field(
        False,
        description="The approver of an exception must not be the Git author of the commit "
        "that added it.",
    )


class ActiveException(Frozen):
    """An exception in force on one host, as the desired state, checks and reports carry it."""

    id: str
    kind: ExceptionKind
    owner: str
    reason: str
    approved_by: str
    expires: dt.date
    ticket: str | None = None
    hold: Hold | None = None
    accept: tuple[str, ...] = ()
    waive: tuple[str, ...] = ()
    location: SourceLocation | None = None

    @property
    def what(self) -> str:
        return excepted_text(self.hold, self.accept, self.waive)

    def waives(self, check_id: str) -> bool:
        return any(fnmatch.fnmatchcase(check_id, pattern) for pattern in self.waive)

    def accepts(self, *ids: str) -> bool:
        return any(risk in self.accept for risk in ids)

    @property
    def note(self) -> str:
        """`waived by <id> (owner dana, until 2027-01-31, CHG1)`: how reports name it."""
        ticket = f", {self.ticket}" if self.ticket else ""
        verb = {"hold": "held", "accept": "accepted", "waive": "waived"}[self.kind]
        return f"{verb} by {self.id} (owner {self.owner}, until {self.expires}{ticket})"
