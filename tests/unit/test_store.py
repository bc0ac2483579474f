"""The run history: atomic saves, newest-first listing, resolving ids, and damaged files reported
clearly instead of crashing. Runs as root, so an unwritable folder is a path under a regular file
or a read-only bind mount."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.errors import UserInputError
from orchestrator.model.record import RunRecord
from orchestrator.store import RunStore, StoreError, UnreadableRecordError, dump_record
from orchestrator.store import atomic as atomic_module
from tests.unit.test_report_record import failed_rollout

FIRST = "20261127T031840Z-rollout-3fa2"
SECOND = "20261127T041500Z-verify-0b1c"
THIRD = "20261128T090000Z-apply-77aa"


def _record(run_id: str, hours: int = 0) -> RunRecord:
    base = failed_rollout()
    kind = run_id.split("-")[1]
    return base.model_copy(
        update={
            "id": run_id,
            "kind": kind,
            "started": base.started + timedelta(hours=hours),
            "finished": base.finished + timedelta(hours=hours),
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    runs = RunStore(tmp_path / ".patchring" / "runs")
    runs.save(_record(FIRST))
    runs.save(_record(SECOND, 1))
    runs.save(_record(THIRD, 30))
    return runs


def test_default_folder_is_inside_the_repository(tmp_path: Path) -> None:
    assert RunStore.for_repo(tmp_path).folder == tmp_path / ".patchring" / "runs"


def test_saved_record_reads_back_equal_and_is_plain_json(store: RunStore) -> None:
    path = store.path_of(FIRST)
    assert store.load(FIRST) == _record(FIRST)
    text = path.read_text(encoding="utf-8")
    assert text == dump_record(_record(FIRST))
    assert next(iter(json.loads(text))) == "schema"
    assert json.loads(text)["schema"] == "patchring.run/v1"
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_list_is_newest_first_with_summaries(store: RunStore) -> None:
    runs = store.list()
    assert [r.id for r in runs] == [THIRD, SECOND, FIRST]
    first = runs[-1]
    assert (first.kind, first.status, first.hosts, first.failed_hosts) == (
        "rollout",
        "halted",
        6,
        2,
    )
    assert (first.checks_passed, first.checks_total, first.problem) == (12, 18, None)
    assert first.commit == "9c1e4b2a7f3d5e6c8b9a0d1e2f3a4b5c6d7e8f90"


def test_resolve_latest_exact_and_prefix(store: RunStore) -> None:
    assert store.resolve(None).id == THIRD
    assert store.resolve("latest").id == THIRD
    assert store.resolve(SECOND).id == SECOND
    assert store.resolve("20261127T0318").id == FIRST


def test_unknown_run_names_the_folder_and_the_latest(store: RunStore) -> None:
    with pytest.raises(UserInputError) as caught:
        store.resolve("20250101T000000Z-apply-dead")
    assert caught.value.message == (
        f"no run '20250101T000000Z-apply-dead' in {store.folder} (latest: {THIRD})"
    )
    with pytest.raises(StoreError, match=r"no run '\.\./\.\./etc/passwd'"):
        store.load("../../etc/passwd")


def test_ambiguous_prefix_lists_the_candidates(store: RunStore) -> None:
    with pytest.raises(StoreError, match=r"ambiguous .* 2 runs match") as caught:
        store.resolve("20261127")
    assert caught.value.hint == "give more of the run id"


def test_empty_history(tmp_path: Path) -> None:
    empty = RunStore(tmp_path / "runs")
    assert empty.list() == []
    with pytest.raises(StoreError, match=r"no runs recorded in .* yet"):
        empty.resolve(None)
    with pytest.raises(StoreError, match=r"\(latest: none recorded yet\)"):
        empty.resolve("20261127T031840Z-apply-3fa2")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "the file is empty"),
        (None, "invalid JSON at line .* \\(the file ends early: truncated\\?\\)"),
        (b"\xff\xfe garbage", "not UTF-8 text"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"schema": "patchring.run/v9"}', "schema patchring.run/v9; this patchring reads"),
        (b'{"hello": "world"}', "not a patchring run record"),
        (b'{"schema": "patchring.run/v1", "id": "x"}', "kind: Field required \\(and .* more\\)"),
    ],
)
def test_damaged_record_is_reported_with_its_path(
    store: RunStore, content: bytes | None, problem: str
) -> None:
    path = store.path_of(SECOND)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2] if content is None else content)
    with pytest.raises(UnreadableRecordError, match=problem) as caught:
        store.load(SECOND)
    assert str(path) in caught.value.message
    assert caught.value.hint and path.name in caught.value.hint
    runs = store.list()  # the rest of the history is still listed
    assert [(r.id, r.problem is not None) for r in runs] == [
        (THIRD, False),
        (SECOND, True),
        (FIRST, False),
    ]
    assert store.resolve(None).id == THIRD


def test_damaged_latest_is_reported_not_skipped(store: RunStore) -> None:
    store.path_of(THIRD).write_text('{"schema": "patchring.run/v1", ')
    with pytest.raises(UnreadableRecordError, match="truncated"):
        store.resolve(None)


def test_renamed_record_is_detected(store: RunStore) -> None:
    other = "20261129T000000Z-apply-aaaa"
    shutil.copy(store.path_of(FIRST), store.path_of(other))
    with pytest.raises(UnreadableRecordError, match=f"it holds run {FIRST}"):
        store.load(other)


def test_foreign_files_in_the_folder_are_ignored(store: RunStore) -> None:
    (store.folder / "notes.json").write_text("{}")
    (store.folder / f"{FIRST}.html").write_text("<html>")
    (store.folder / f".{FIRST}.json.abc.tmp").write_text("{")
    assert [r.id for r in store.list()] == [THIRD, SECOND, FIRST]


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_write_leaves_no_partial_file_and_old_records_intact(
    store: RunStore, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    before = {p.name: p.read_bytes() for p in store.folder.iterdir()}

    def disk_full(*args: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_module.os, failing, disk_full)
    new_id = "20261130T000000Z-apply-beef"
    with pytest.raises(StoreError, match=f"could not save run {new_id}") as caught:
        store.save(_record(new_id, 60))
    assert caught.value.hint is not None and "disk is full" in caught.value.hint
    replaced = _record(FIRST).model_copy(update={"status": "succeeded"})
    with pytest.raises(StoreError):
        store.save(replaced)  # overwriting an existing record fails whole too
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in store.folder.iterdir()} == before
    assert _temp_files(store.folder) == []
    assert store.load(FIRST).status == "halted"


def test_write_interrupted_midway_leaves_the_old_record(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash while bytes are being written: the half-written temp file is removed."""
    real_fdopen = os.fdopen

    class HalfWriter:
        def __init__(self, fd: int, mode: str) -> None:
            self._stream = real_fdopen(fd, mode)

        def __enter__(self) -> HalfWriter:
            return self

        def __exit__(self, *exc: object) -> None:
            self._stream.close()

        def write(self, data: bytes) -> None:
            self._stream.write(data[: len(data) // 2])
            self._stream.flush()
            raise KeyboardInterrupt

    monkeypatch.setattr(atomic_module.os, "fdopen", HalfWriter)
    with pytest.raises(KeyboardInterrupt):
        store.save(_record(FIRST).model_copy(update={"status": "succeeded"}))
    monkeypatch.undo()
    assert _temp_files(store.folder) == []
    assert store.load(FIRST).status == "halted"


def test_check_writable_creates_the_folder_and_leaves_nothing(tmp_path: Path) -> None:
    runs = RunStore(tmp_path / "repo" / ".patchring" / "runs")
    runs.check_writable()
    assert runs.folder.is_dir() and list(runs.folder.iterdir()) == []


def test_folder_under_a_regular_file_is_a_store_error_with_a_hint(tmp_path: Path) -> None:
    blocker = tmp_path / ".patchring"
    blocker.write_text("not a folder")
    runs = RunStore(blocker / "runs")
    with pytest.raises(StoreError) as caught:
        runs.check_writable()
    assert caught.value.message.startswith(f"cannot record runs in {runs.folder}: ")
    assert caught.value.hint == (
        f"{blocker} is a file where a folder is needed: move it away; nothing was run"
    )
    assert caught.value.exit_code == 1
    with pytest.raises(StoreError) as caught:
        runs.save(_record(FIRST))
    assert caught.value.hint is not None and caught.value.hint.endswith("only its record is lost")


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a read-only bind mount needs root")
    mounted = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind mount here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_read_only_file_system_is_a_store_error_with_a_hint(read_only_folder: Path) -> None:
    runs = RunStore(read_only_folder / "runs")
    with pytest.raises(StoreError, match="Read-only file system") as caught:
        runs.check_writable()
    assert caught.value.hint is not None and "read-only" in caught.value.hint


def test_invalid_run_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a run id"):
        RunStore(tmp_path).save(_record(FIRST).model_copy(update={"id": "../evil"}))
