"""Policies read from a commit without checkout; ring refs visible with plain git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from orchestrator.errors import UserInputError
from orchestrator.gitops.commits import CommitSource, move_ring_ref, resolve_ref, ring_refs


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.invalid", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q")
    (tmp_path / "policies").mkdir()
    (tmp_path / "inventory").mkdir()
    (tmp_path / "policies" / "a.yml").write_text("name: a\n")
    (tmp_path / "inventory" / "fleet.yml").write_text("rings: []\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "one")
    (tmp_path / "policies" / "a.yml").write_text("name: a2\n")
    (tmp_path / "policies" / "b.yml").write_text("name: b\n")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "two")
    (tmp_path / "policies" / "a.yml").write_text("name: uncommitted\n")
    (tmp_path / "inventory" / "fleet.yml").write_text("rings: [changed]\n")  # not committed
    (tmp_path / "inventory" / "lab.yml").write_text("hosts: {}\n")  # not in Git at all
    return tmp_path


def test_commit_source_reads_the_commit_and_the_live_inventory(repo: Path) -> None:
    first = CommitSource(repo, "HEAD~1")
    assert first.list_files("policies") == ["policies/a.yml"]
    assert first.read_text("policies/a.yml") == "name: a\n"
    assert first.list_files("inventory") == ["inventory/fleet.yml", "inventory/lab.yml"]
    assert first.read_text("inventory/fleet.yml") == "rings: []\n"  # as committed
    assert first.read_text("inventory/lab.yml") == "hosts: {}\n"  # from the working tree
    assert first.root_label.endswith(f"@{first.sha[:12]}")
    head = CommitSource(repo, "HEAD")
    assert head.read_text("policies/a.yml") == "name: a2\n"  # committed, not the working tree
    with pytest.raises(FileNotFoundError):
        head.read_text("policies/missing.yml")


def test_unknown_ref_is_invalid_input(repo: Path) -> None:
    with pytest.raises(UserInputError, match="unknown Git ref 'nope'"):
        resolve_ref(repo, "nope")


def test_ring_refs_move_and_show_in_plain_git(repo: Path) -> None:
    sha = resolve_ref(repo, "HEAD~1")
    move_ring_ref(repo, "canary", sha, "patchring: canary passed")
    assert ring_refs(repo) == {"canary": sha}
    assert _git(repo, "rev-parse", "refs/patchring/rings/canary").strip() == sha
    move_ring_ref(repo, "canary", resolve_ref(repo, "HEAD"), "patchring: canary passed")
    assert ring_refs(repo)["canary"] == resolve_ref(repo, "HEAD")
