"""Policies at a Git commit, and the per-ring refs that show what each ring runs.

`CommitSource` is a `ProjectSource` over a commit's tree (no checkout), so a rollout of
`--ref COMMIT` and a rollback to the last commit that passed a ring load exactly what was
committed. In the inventory folder, files that are not in the commit (the lab's generated
`inventory/lab.yml`, hosts kept out of Git) come from the working tree: the fleet as it is now;
committed inventory files (rings, variables) come from the commit like everything else.
Ring refs live under `refs/patchring/rings/<ring>`; see them with `git for-each-ref refs/patchring`.
Every repository opened here is closed when done (`with`; a `CommitSource` is a context manager),
so no `git cat-file` process outlives its use (see `gitops`).
"""

from __future__ import annotations

import difflib
from pathlib import Path, PurePosixPath
from types import TracebackType

import git

from orchestrator.errors import UserInputError
from orchestrator.policy.projectsource import (
    MAX_FILE_BYTES,
    YAML_SUFFIXES,
    NotRegularFileError,
    WorktreeSource,
    check_relative,
)

RING_REF_PREFIX = "refs/patchring/rings/"


def open_repo(repo: Path) -> git.Repo:
    try:
        return git.Repo(repo, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError) as error:
        raise UserInputError(
            f"{repo} is not a Git repository",
            hint="patchring reads policies from Git: run `git init` and commit them",
        ) from error


def resolve_ref(repo: Path, ref: str) -> str:
    """The full sha a ref, tag, branch or abbreviated sha names; a clear error otherwise."""
    with open_repo(repo) as r:
        try:
            return r.commit(ref).hexsha
        except (git.BadName, ValueError) as error:
            names = [h.name for h in r.refs]
            close = difflib.get_close_matches(ref, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UserInputError(f"unknown Git ref '{ref}'{hint}") from error


class CommitSource:
    """Files as committed at one commit; in `live` folders (the inventory), files the commit
    does not have are read from the working tree."""

    def __init__(self, repo: Path, ref: str, live: tuple[str, ...] = ("inventory",)) -> None:
        self.sha = resolve_ref(repo, ref)
        self._repo = open_repo(repo)
        self._tree = self._repo.commit(self.sha).tree
        self._worktree = WorktreeSource(repo)
        self._live = tuple(PurePosixPath(folder) for folder in live)
        self.root_dir: Path | None = self._worktree.root_dir
        self.root_label = f"{self._worktree.root_label}@{self.sha[:12]}"

    def close(self) -> None:
        """Stop the repository's `git cat-file` processes; the source reads nothing after."""
        self._repo.close()

    def __enter__(self) -> CommitSource:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _is_live(self, path: str) -> bool:
        pure = check_relative(path)
        return any(pure == live or live in pure.parents for live in self._live)

    def list_files(self, folder: str, suffixes: tuple[str, ...] = YAML_SUFFIXES) -> list[str]:
        committed = self._committed_files(folder, suffixes)
        if self._is_live(folder):
            return sorted(set(committed) | set(self._worktree.list_files(folder, suffixes)))
        return committed

    def _committed_files(self, folder: str, suffixes: tuple[str, ...]) -> list[str]:
        prefix = check_relative(folder)
        try:
            node = self._tree / prefix.as_posix() if prefix.parts else self._tree
        except KeyError:
            return []
        if not isinstance(node, git.Tree):
            return []
        return sorted(
            str(blob.path)
            for blob in node.traverse()
            if isinstance(blob, git.Blob)
            and blob.name.endswith(suffixes)
            and not any(part.startswith(".") for part in PurePosixPath(blob.path).parts)
        )

    def read_text(self, path: str) -> str:
        return self.read_bytes(path).decode("utf-8")

    def read_bytes(self, path: str) -> bytes:
        pure = check_relative(path)
        try:
            node = self._tree / pure.as_posix()
        except KeyError:
            if self._is_live(path):
                return self._worktree.read_bytes(path)
            raise FileNotFoundError(path) from None
        if isinstance(node, git.Tree):
            raise IsADirectoryError(path)
        if node.size > MAX_FILE_BYTES:  # the same limit as files read from the working tree
            raise NotRegularFileError(0, f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB", path)
        data: bytes = node.data_stream.read()
        return data

    def read_env(self, name: str) -> str | None:
        return self._worktree.read_env(name)


def ring_refs(repo: Path) -> dict[str, str]:
    """Ring name -> the commit patchring last promoted through it."""
    with open_repo(repo) as r:
        return {
            ref.path.removeprefix(RING_REF_PREFIX): ref.commit.hexsha
            for ref in r.refs
            if ref.path.startswith(RING_REF_PREFIX)
        }


def move_ring_ref(repo: Path, ring: str, sha: str, message: str) -> None:
    """Point `refs/patchring/rings/<ring>` at `sha`, with a reflog entry saying why."""
    with open_repo(repo) as r:
        git.Reference.create(r, f"{RING_REF_PREFIX}{ring}", sha, logmsg=message, force=True)
