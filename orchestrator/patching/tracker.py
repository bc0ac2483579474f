"""The Debian Security Tracker's JSON (`/tracker/data/json`), read once into a compact index.

The format is source package -> `CVE-*`/`TEMP-*` id -> `releases` -> release name -> `status`,
`fixed_version`, `urgency`, `nodsa`, `nodsa_reason` (None-valued keys omitted). The real file is
tens of megabytes: `json.loads` runs with an object hook that turns each release object into a
small shared `ReleaseStatus` as soon as it is read and drops every CVE's description, so the
peak is the text plus the index, never the whole document as dicts. Releases nobody runs can be
left out (`releases=`). Malformed input is a `ValidationError` located at `file:line:col` (JSON
syntax) or at its JSON path (wrong shape), never a traceback. Imports only the package's model,
errors, source and `patching.versions`; no I/O (the caller reads the file).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import Diagnostic, ValidationError
from orchestrator.model.patching import Urgency
from orchestrator.patching.versions import is_debian_version
from orchestrator.source import SourceLocation

STATUSES = ("resolved", "open", "undetermined")
MAX_PROBLEMS = 20
_URGENCIES = {urgency.value: urgency for urgency in Urgency}


@dataclass(frozen=True, slots=True)
class ReleaseStatus:
    """What the tracker says about one CVE in one release's source package."""

    status: str
    urgency: Urgency
    nvd_derived: bool = False
    fixed_version: str | None = None
    nodsa: str | None = None
    nodsa_reason: str | None = None

    @property
    def not_affected(self) -> bool:
        """`fixed_version` "0": the release's package never had the bug (`<not-affected>`)."""
        return self.fixed_version == "0"


@dataclass(frozen=True)
class SecurityTracker:
    """source package -> CVE id -> release name -> `ReleaseStatus`."""

    sources: Mapping[str, Mapping[str, Mapping[str, ReleaseStatus]]]
    releases: frozenset[str]
    """Every release name the data mentions (before any filter), e.g. bookworm, trixie, sid."""

    def entries(self, source: str, release: str) -> Iterator[tuple[str, ReleaseStatus]]:
        """(CVE id, status) for every CVE the tracker lists for `source` in `release`."""
        for cve, releases in self.sources.get(source, {}).items():
            status = releases.get(release)
            if status is not None:
                yield cve, status

    @property
    def cve_count(self) -> int:
        return sum(len(cves) for cves in self.sources.values())


@dataclass(frozen=True, slots=True)
class _Invalid:
    """A release object the hook could not read: the walk reports it at its path."""

    key: str
    message: str


@dataclass(frozen=True, slots=True)
class _Cve:
    releases: Any


def normalise_urgency(text: str) -> tuple[Urgency, bool] | None:
    """(urgency, NVD-derived) from the tracker's text: `low**` is (low, True); None if unknown."""
    stripped = text.rstrip("*")
    urgency = _URGENCIES.get(stripped)
    return None if urgency is None else (urgency, stripped != text)


def _field(obj: dict[str, Any], key: str) -> str | _Invalid | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    return _Invalid(key, f"expected a string, got {type(value).__name__}")


def _read_release(obj: dict[str, Any], cache: dict[tuple[Any, ...], ReleaseStatus]) -> Any:
    status = obj.get("status")
    if not isinstance(status, str):
        return _Invalid("status", "missing" if status is None else "expected a string")
    if status not in STATUSES:
        return _Invalid("status", f"unknown status '{status}' (expected {', '.join(STATUSES)})")
    fields: dict[str, str | None] = {}
    for key in ("fixed_version", "urgency", "nodsa", "nodsa_reason"):
        value = _field(obj, key)
        if isinstance(value, _Invalid):
            return value
        fields[key] = value
    fixed = fields["fixed_version"]
    if fixed is not None and not is_debian_version(fixed):
        return _Invalid("fixed_version", f"'{fixed}' is not a Debian version")
    urgency = normalise_urgency(fields["urgency"] or Urgency.NOT_YET_ASSIGNED.value)
    if urgency is None:
        allowed = ", ".join(u.value for u in Urgency)
        return _Invalid("urgency", f"unknown urgency '{fields['urgency']}' (expected {allowed})")
    shared = (status, *urgency, fixed, fields["nodsa"], fields["nodsa_reason"])
    found = cache.get(shared)
    if found is None:
        # Identical statuses are shared: most CVEs of a release read alike.
        found = ReleaseStatus(
            status, urgency[0], urgency[1], fixed, fields["nodsa"], fields["nodsa_reason"]
        )
        cache[shared] = found
    return found


def _json_path(parts: tuple[str, ...]) -> str:
    text = "$"
    for part in parts:
        simple = part.replace("-", "").replace("_", "").replace(".", "").isalnum()
        text += f".{part}" if simple else f"[{json.dumps(part)}]"
    return text


class _Walk:
    """Checks the shape the hook left and builds the index, collecting located problems."""

    def __init__(self, file: str, wanted: Collection[str] | None) -> None:
        self.file = file
        self.wanted = None if wanted is None else frozenset(wanted)
        self.problems: list[Diagnostic] = []
        self.releases: set[str] = set()

    def problem(self, path: tuple[str, ...], message: str) -> None:
        self.problems.append(
            Diagnostic(SourceLocation(self.file), f"{_json_path(path)}: {message}")
        )

    def sources(self, data: Any) -> dict[str, dict[str, dict[str, ReleaseStatus]]]:
        if not isinstance(data, dict):
            self.problem((), f"expected an object of source packages, got {_kind(data)}")
            return {}
        index: dict[str, dict[str, dict[str, ReleaseStatus]]] = {}
        for source, cves in data.items():
            if not isinstance(cves, dict):
                self.problem((source,), f"expected an object of CVEs, got {_kind(cves)}")
                continue
            kept = {}
            for cve, entry in cves.items():
                releases = self.cve((source, cve), entry)
                if releases:
                    kept[cve] = releases
            if kept:
                index[source] = kept
        return index

    def cve(self, path: tuple[str, ...], entry: Any) -> dict[str, ReleaseStatus]:
        if not isinstance(entry, _Cve):
            found = "an object without 'releases'" if isinstance(entry, dict) else _kind(entry)
            self.problem(path, f"expected a CVE object with 'releases', got {found}")
            return {}
        if not isinstance(entry.releases, dict):
            self.problem((*path, "releases"), f"expected an object, got {_kind(entry.releases)}")
            return {}
        kept: dict[str, ReleaseStatus] = {}
        for release, status in entry.releases.items():
            self.releases.add(release)
            where = (*path, "releases", release)
            if isinstance(status, dict):  # the hook left it: it has no usable status
                status = _read_release(status, {})
            if isinstance(status, _Invalid):
                self.problem((*where, status.key), status.message)
            elif not isinstance(status, ReleaseStatus):
                self.problem(where, f"expected an object, got {_kind(status)}")
            elif self.wanted is None or release in self.wanted:
                kept[release] = status
        return kept


def _kind(value: Any) -> str:
    if isinstance(value, dict | _Cve):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else type(value).__name__


def parse_tracker(
    text: str | bytes, file: str = "security tracker data", releases: Collection[str] | None = None
) -> SecurityTracker:
    """Parse the tracker JSON; keep only `releases` (all when None). Raises ValidationError with
    every problem (at most `MAX_PROBLEMS`, then a count of the rest)."""
    cache: dict[tuple[Any, ...], ReleaseStatus] = {}

    def hook(obj: dict[str, Any]) -> Any:
        if isinstance(obj.get("status"), str):
            return _read_release(obj, cache)
        if "releases" in obj:
            return _Cve(obj["releases"])  # description, scope and debianbug are not needed
        return obj

    try:
        data = json.loads(text, object_hook=hook)
    except json.JSONDecodeError as error:
        where = SourceLocation(file, error.lineno, error.colno)
        raise ValidationError([Diagnostic(where, f"invalid JSON: {error.msg}")]) from None
    except UnicodeDecodeError:
        raise ValidationError([Diagnostic(SourceLocation(file), "not UTF-8 JSON")]) from None
    except RecursionError:
        raise ValidationError(
            [Diagnostic(SourceLocation(file), "JSON nested too deeply")]
        ) from None
    walk = _Walk(file, releases)
    index = walk.sources(data)
    if walk.problems:
        shown = walk.problems[:MAX_PROBLEMS]
        if len(walk.problems) > MAX_PROBLEMS:
            more = len(walk.problems) - MAX_PROBLEMS
            shown.append(Diagnostic(SourceLocation(file), f"... and {more} more problems"))
        raise ValidationError(shown)
    return SecurityTracker(sources=index, releases=frozenset(walk.releases))
