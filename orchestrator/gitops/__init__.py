"""The gitpython adapter: which commit the policies come from. The only gitpython importer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import git


def describe_source(repo: Path) -> dict[str, Any]:
    """The policy repository's commit (sha, author, date, message) and whether it was dirty."""
    try:
        r = git.Repo(repo, search_parent_directories=True)
        commit = r.head.commit
    except (git.InvalidGitRepositoryError, git.NoSuchPathError, ValueError):
        return {"repo": str(repo.resolve()), "commit": None, "dirty": None}
    return {
        "repo": str(repo.resolve()),
        "commit": commit.hexsha,
        "author": f"{commit.author.name} <{commit.author.email}>",
        "date": commit.authored_datetime.isoformat(),
        "message": str(commit.message).strip().splitlines()[0] if commit.message else "",
        "dirty": r.is_dirty(untracked_files=True),
    }
