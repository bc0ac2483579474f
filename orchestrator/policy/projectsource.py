"""Where policy, inventory and template files are read from: the working tree, later a Git commit.

`ProjectSource` is the port every loader reads through, so the same loading code validates the
working tree and a commit alike; `WorktreeSource` is its adapter for a directory on disk. A source
refuses any path that escapes its root (`..`, absolute paths, symlinks pointing outside), which is
what keeps a policy's `template:` inside the repository, and reads only regular files (a FIFO
would hang the loader). Environment variables (for `!env NAME` values) are read through the
source too, so tests and callers can give their own. Imports only the standard library and
`errors`; never the CLI, pyinfra or gitpython.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Protocol

from orchestrator.errors import UserInputError

YAML_SUFFIXES = (".yml", ".yaml")
MAX_FILE_BYTES = 16 * 1024 * 1024
_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device"}
_KINDS |= {stat.S_IFSOCK: "a socket"}


class NotRegularFileError(OSError):
    """Only regular files are read: a FIFO or a device could block or never end."""


class PathOutsideRootError(UserInputError):
    """A relative path that would leave the project root (`..`, absolute, or a symlink out)."""


class ProjectSource(Protocol):
    """Read-only access to the files of one version of a policy repository."""

    root_label: str
    """How to name the source to a person: a directory, or `<repo>@<commit>`."""

    root_dir: Path | None
    """The directory on the controller's disk that relative paths start from, or None when the
    files are not on disk (a Git commit): used to make inventory `identity_file` paths absolute."""

    def list_files(self, folder: str, suffixes: tuple[str, ...] = YAML_SUFFIXES) -> list[str]:
        """Files under `folder` (recursive) ending in one of `suffixes`: sorted relative posix
        paths, hidden files and folders (`.name`, editor lock files) left out; an empty list
        when the folder does not exist."""
        ...

    def read_text(self, path: str) -> str:
        """The UTF-8 text of a file. FileNotFoundError when absent, IsADirectoryError for a
        folder, PathOutsideRootError when `path` escapes the root."""
        ...

    def read_bytes(self, path: str) -> bytes:
        """The bytes of a file (at most MAX_FILE_BYTES), as `read_text` finds it: files copied
        verbatim to hosts (`source:`, apt `key_file:`)."""
        ...

    def read_env(self, name: str) -> str | None:
        """The value of environment variable `name`, or None when it is not set."""
        ...


def check_relative(path: str) -> PurePosixPath:
    """`path` as a clean relative posix path, or PathOutsideRootError if it could leave the root."""
    pure = PurePosixPath(path.replace("\\", "/"))
    if pure.is_absolute() or (pure.parts and ":" in pure.parts[0]):
        raise PathOutsideRootError(
            f"'{path}' is an absolute path; use a path inside the repository"
        )
    if ".." in pure.parts:
        raise PathOutsideRootError(f"'{path}' leaves the repository ('..' is not allowed)")
    return pure


class WorktreeSource:
    """A policy repository as a directory on disk (the working tree, or any folder)."""

    def __init__(self, root: Path, environment: Mapping[str, str] | None = None) -> None:
        self.root_dir: Path | None = root.resolve()
        self._environment = os.environ if environment is None else environment
        self._root = root.resolve()
        self.root_label = str(self._root)

    def _resolve(self, path: str) -> Path:
        full = self._root.joinpath(*check_relative(path).parts)
        real = full.resolve()
        if real != self._root and not real.is_relative_to(self._root):
            raise PathOutsideRootError(f"'{path}' points outside the repository (via a symlink)")
        return real

    def list_files(self, folder: str, suffixes: tuple[str, ...] = YAML_SUFFIXES) -> list[str]:
        base = self._resolve(folder)
        if not base.is_dir():
            return []
        prefix = check_relative(folder)
        found = [
            (prefix / entry.relative_to(base)).as_posix()
            for entry in base.rglob("*")
            if entry.name.endswith(suffixes)
            and not any(part.startswith(".") for part in entry.relative_to(base).parts)
            and entry.is_file()
        ]
        return sorted(found)

    def read_text(self, path: str) -> str:
        real = self._resolve(path)
        if real.is_dir():
            raise IsADirectoryError(path)
        return self.read_bytes(path).decode("utf-8")

    def read_bytes(self, path: str) -> bytes:
        real = self._resolve(path)
        if real.is_dir():
            raise IsADirectoryError(path)
        return read_regular_file(real)

    def read_env(self, name: str) -> str | None:
        return self._environment.get(name)


def read_regular_file(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES. Opens without blocking (a FIFO
    with no writer would wait forever) and checks what was opened, not what a name pointed to
    before (no race). Raises NotRegularFileError, or OSError as `open` does."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            kind = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise NotRegularFileError(0, f"not a regular file ({kind})", str(path))
        if info.st_size > MAX_FILE_BYTES:
            limit = MAX_FILE_BYTES // (1024 * 1024)
            raise NotRegularFileError(0, f"larger than {limit} MiB", str(path))
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise NotRegularFileError(0, "grew while being read", str(path))
    return data
