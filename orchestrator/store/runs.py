"""The run history: one JSON run record per file in a folder, written atomically, read defensively.

`RunStore` is the only code that reads or writes the history. A record is saved completely or not
at all (see `atomic`); a damaged or foreign file is reported with its path and what is wrong with
it, and never stops the rest of the history from being listed. Imports the standard library,
pydantic, the run record model and `errors`; never the CLI, the report renderers or pyinfra.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import re
import tempfile
from datetime import datetime
from pathlib import Path

import pydantic

from orchestrator.errors import UserInputError
from orchestrator.model.base import Frozen
from orchestrator.model.record import RUN_SCHEMA, RunKind, RunRecord, RunStatus
from orchestrator.store.atomic import write_atomic

RUNS_FOLDER = Path(".patchring") / "runs"
RUN_ID = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)-(?P<kind>[a-z]+)-(?P<rand>[0-9a-f]{4,})$")
_SUFFIX = ".json"


class StoreError(UserInputError):
    """The run history cannot be written, or a record in it cannot be found or read."""


class UnreadableRecordError(StoreError):
    """A file in the history is not a valid run record (truncated, edited, or foreign)."""


class RunSummary(Frozen):
    """One line of the history. `problem` says why a file could not be read (then most fields
    are empty)."""

    id: str
    path: Path
    kind: RunKind | None = None
    status: RunStatus | None = None
    started: datetime | None = None
    commit: str | None = None
    dirty: bool | None = None
    hosts: int = 0
    failed_hosts: int = 0
    checks_passed: int = 0
    checks_total: int = 0
    problem: str | None = None


def dump_record(record: RunRecord) -> str:
    """The record as the history stores it: `schema` first, indented, UTF-8, newline at the end."""
    document = record.model_dump(mode="json", by_alias=True)
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


class RunStore:
    """Run records in `folder` (by default `<repo>/.patchring/runs/`), one `<run id>.json` each."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def for_repo(cls, repo: Path) -> RunStore:
        return cls(repo / RUNS_FOLDER)

    def path_of(self, run_id: str) -> Path:
        return self.folder / f"{run_id}{_SUFFIX}"

    def check_writable(self) -> None:
        """Create the folder and prove a file can be written there, before any host is touched."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(dir=self.folder, prefix=".write-check.", suffix=".tmp")
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise StoreError(
                f"cannot record runs in {self.folder}: {_reason(exc)}",
                hint=f"{_fix(self.folder, exc)}; nothing was run",
            ) from exc

    def save(self, record: RunRecord) -> Path:
        """Write `record` atomically; an existing record of the same id is replaced whole."""
        if not RUN_ID.match(record.id):
            raise ValueError(f"not a run id: {record.id!r}")
        path = self.path_of(record.id)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomic(path, dump_record(record).encode("utf-8"))
        except OSError as exc:
            raise StoreError(
                f"could not save run {record.id} in {self.folder}: {_reason(exc)}",
                hint=f"{_fix(self.folder, exc)}; the run itself finished, only its record is lost",
            ) from exc
        return path

    def load(self, run_id: str) -> RunRecord:
        """The record of exactly `run_id`; StoreError when there is none or it cannot be read."""
        if RUN_ID.match(run_id) and self.path_of(run_id).is_file():
            return self._read(self.path_of(run_id))
        raise self._unknown(run_id)

    def resolve(self, ref: str | None) -> RunRecord:
        """`None` or `latest`: the newest run; otherwise a run id or an unambiguous prefix."""
        ids = self._ids()
        if ref is None or ref == "latest":
            if not ids:
                raise StoreError(
                    f"no runs recorded in {self.folder} yet",
                    hint="`patchring verify` and `patchring rollout` record a run",
                )
            return self._read(self.path_of(ids[0]))
        if ref in ids:
            return self._read(self.path_of(ref))
        matches = [run_id for run_id in ids if run_id.startswith(ref)]
        if len(matches) == 1:
            return self._read(self.path_of(matches[0]))
        if matches:
            shown = ", ".join(matches[:4]) + (", ..." if len(matches) > 4 else "")
            raise StoreError(
                f"run '{ref}' is ambiguous in {self.folder}: {len(matches)} runs match ({shown})",
                hint="give more of the run id",
            )
        raise self._unknown(ref, ids)

    def list(self) -> builtins.list[RunSummary]:
        """Every run, newest first; unreadable files are listed with their problem."""
        summaries = []
        for run_id in self._ids():
            path = self.path_of(run_id)
            try:
                record = self._read(path)
            except StoreError as exc:
                summaries.append(RunSummary(id=run_id, path=path, problem=exc.message))
                continue
            summaries.append(summarize_record(record, path))
        return summaries

    def _ids(self) -> builtins.list[str]:
        """Run ids of the folder, newest first (by time in the id, then by file time)."""
        try:
            entries = builtins.list(os.scandir(self.folder))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StoreError(f"cannot read the run history {self.folder}: {_reason(exc)}") from exc
        found = []
        for entry in entries:
            stem = entry.name.removesuffix(_SUFFIX)
            match = RUN_ID.match(stem)
            if entry.name.endswith(_SUFFIX) and match and entry.is_file():
                found.append((match["stamp"], entry.stat().st_mtime_ns, stem))
        return [stem for _, _, stem in sorted(found, reverse=True)]

    def _unknown(self, ref: str, ids: builtins.list[str] | None = None) -> StoreError:
        ids = self._ids() if ids is None else ids
        latest = ids[0] if ids else "none recorded yet"
        return StoreError(
            f"no run '{ref}' in {self.folder} (latest: {latest})",
            hint="run ids look like 20261127T031840Z-apply-3fa2; leave the id out for the latest",
        )

    def _read(self, path: Path) -> RunRecord:
        hint = f"move {path.name} out of {self.folder} to hide it; other runs are unaffected"
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise StoreError(f"{path}: cannot read run record: {_reason(exc)}") from exc
        parsed = _parse_record(raw, path.stem)
        if isinstance(parsed, str):
            raise UnreadableRecordError(f"{path}: not a readable run record: {parsed}", hint)
        return parsed


def summarize_record(record: RunRecord, path: Path) -> RunSummary:
    """The history line of one record (pure)."""
    hosts = {r.host for r in record.apply} | {v.host for v in record.verify}
    hosts |= {host for ring in record.rings for host in ring.hosts}
    failed = {r.host for r in record.apply if r.status in {"failed", "unreachable"}}
    failed |= {v.host for v in record.verify if v.status != "passed"}
    checks = [c for v in record.verify for c in v.results]
    return RunSummary(
        id=record.id,
        path=path,
        kind=record.kind,
        status=record.status,
        started=record.started,
        commit=record.source.commit,
        dirty=record.source.dirty,
        hosts=len(hosts),
        failed_hosts=len(failed),
        checks_passed=sum(c.status == "passed" for c in checks),
        checks_total=len(checks),
    )


def _parse_record(raw: bytes, expected_id: str) -> RunRecord | str:
    """The record in `raw`, or a sentence saying what is wrong with it."""
    if not raw.strip():
        return "the file is empty"
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return f"not UTF-8 text (byte {exc.start})"
    except json.JSONDecodeError as exc:
        ending = "" if raw.rstrip().endswith(b"}") else " (the file ends early: truncated?)"
        return f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}{ending}"
    if not isinstance(document, dict):
        return "expected a JSON object"
    schema = document.get("schema")
    if schema != RUN_SCHEMA:
        if isinstance(schema, str) and schema.startswith("patchring.run/"):
            return f"schema {schema}; this patchring reads {RUN_SCHEMA} (a newer patchring?)"
        return f"no '{RUN_SCHEMA}' schema key (not a patchring run record)"
    try:
        record = RunRecord.model_validate(document)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return f"{where}: {first['msg']}{more}"
    if record.id != expected_id:
        return f"it holds run {record.id} (was the file renamed?)"
    return record


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _fix(folder: Path, exc: OSError) -> str:
    if exc.errno in {errno.ENOTDIR, errno.EEXIST}:
        blocker = next(
            (p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), folder
        )
        return f"{blocker} is a file where a folder is needed: move it away"
    if exc.errno == errno.EROFS:
        return f"the file system holding {folder} is read-only: run from a writable checkout"
    if exc.errno in {errno.EACCES, errno.EPERM}:
        return f"this user may not write in {folder}: fix its owner or permissions"
    if exc.errno in {errno.ENOSPC, errno.EDQUOT}:
        return "the disk is full: free some space"
    return f"make {folder} a writable folder"
