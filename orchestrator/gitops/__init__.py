"""The gitpython adapter: which commit the policies come from, and fingerprints of the files used.

The only gitpython importer. Reads the repository and the files a run used; never writes, never
imports the CLI, pyinfra or testinfra. Every `git.Repo` is closed as soon as it is done with
(`with`): an open one keeps `git cat-file` processes whose finalizers, run at interpreter exit
after gevent's hub is gone, print "Exception ignored ... greenlet is being finalized".

gitpython is imported only by the functions that need its object model (a commit's tree, the
history of a file): importing it costs every command a seventh of a second of CPU, and what
every run records (`git_source`: the commit and whether the tree is dirty) takes two plain
`git` commands.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import subprocess
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from orchestrator.errors import Diagnostic
from orchestrator.model.record import GitSource

if TYPE_CHECKING:
    import git

    from orchestrator.policy.project import Project

HISTORY_FOLDER = ".patchring"  # patchring's own output: never makes the policies "dirty"


def describe_source(repo: Path) -> dict[str, Any]:
    """The policy repository's commit (sha, author, date, message) and whether it was dirty."""
    return source_summary(git_source(repo))


def source_summary(source: GitSource) -> dict[str, Any]:
    """A GitSource as plan and apply JSON show it: the message's first line only."""
    if source.commit is None:
        return {"repo": source.repo, "commit": None, "dirty": None}
    return {**source.model_dump(), "message": (source.message or "").split("\n", 1)[0]}


def git_source(repo: Path, at: str | None = None) -> GitSource:
    """The commit checked out in `repo` (sha, author, date, full message) and whether the working
    tree differs from it, untracked files included. Not a repository (or no commit yet): a
    GitSource with `commit` None. With `at` (a sha), that commit instead: what a rollout read,
    whatever is checked out; never dirty, since nothing came from the working tree."""
    root = str(repo.resolve())
    rev = at if at is not None else "HEAD"
    if not _SHA_OR_HEAD.fullmatch(rev):
        return GitSource(repo=root)
    shown = _git(repo, "log", "-1", "--format=%H%x00%an%x00%ae%x00%aI%x00%B", rev, "--")
    if shown.returncode != 0 or "\0" not in shown.stdout:
        return GitSource(repo=root)  # not a repository, no commit yet, or an unknown sha
    sha, name, email, date, message = shown.stdout.split("\0", 4)
    return GitSource(
        repo=root,
        commit=sha,
        author=f"{name} <{email}>",
        date=date,
        message=message.strip(),
        dirty=False if at is not None else _is_dirty(repo),
    )


_SHA_OR_HEAD = re.compile(r"HEAD|[0-9a-fA-F]{4,64}")


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _is_dirty(repo: Path) -> bool:
    """Changed, staged or untracked files outside patchring's own folder, from one `git status`
    (its porcelain paths are relative to the repository's top, wherever `repo` is in it)."""
    status = _git(repo, "status", "--porcelain=v1", "-z", "--untracked-files=all")
    entries = status.stdout.split("\0")
    paths = []
    renamed = False
    for entry in entries:
        if renamed:  # the source path of a rename, after its entry
            renamed = False
            continue
        if len(entry) > 3:
            paths.append(entry[3:])
            renamed = entry[0] in "RC"
    return any(PurePosixPath(path).parts[:1] != (HISTORY_FOLDER,) for path in paths)


def compute_inputs(
    repo: Path, project: Project, extra: Iterable[str] = (), at: str | None = None
) -> dict[str, str]:
    """sha256 of every file a run used: policy, inventory, template and check files, plus `extra`
    paths. Keys are repo-relative posix paths (absolute for files outside the repo),
    sorted; a file that has gone missing since it was loaded is recorded as `missing`. With
    `at` (a sha), files are hashed as committed there (what a rollout of that commit read);
    files the commit does not have (the uncommitted lab inventory) from the working tree."""
    root = repo.resolve()
    with contextlib.ExitStack() as stack:
        tree = None
        if at:
            import git  # a sixth of a second to import: only for a commit's files

            opened = stack.enter_context(git.Repo(repo, search_parent_directories=True))
            tree = opened.commit(at).tree
        top = Path(tree.repo.working_tree_dir or root).resolve() if tree is not None else root
        inputs: dict[str, str] = {}
        for name in sorted(set(used_files(project)) | set(extra)):
            full = (root / name).resolve()
            inside = full.is_relative_to(root)
            key = full.relative_to(root).as_posix() if inside else full.as_posix()
            committed = _committed_sha256(tree, full, top) if tree is not None else None
            inputs[key] = committed or _sha256(full)
    return dict(sorted(inputs.items()))


def _committed_sha256(tree: git.Tree, full: Path, top: Path) -> str | None:
    """sha256 of the file as committed in `tree`, or None when the commit does not have it."""
    import git

    if not full.is_relative_to(top):
        return None
    try:
        blob = tree / full.relative_to(top).as_posix()
    except KeyError:
        return None
    if not isinstance(blob, git.Blob):
        return None
    return hashlib.sha256(blob.data_stream.read()).hexdigest()


def used_files(project: Project) -> list[str]:
    """The files a loaded project was built from, as the loaders name them (pure)."""
    files = [policy.file for policy in project.policies]
    files += list(project.inventory.files)
    files += [check for policy in project.policies for check in policy.document.checks]
    for state in project.desired.values():
        for resource in state.resources:
            template = getattr(resource.spec, "template", None)
            if isinstance(template, str):
                files.append(template)
    return sorted(set(files))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 16), b""):
                digest.update(block)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return "missing"
    return digest.hexdigest()


def exception_approvers(repo: Path, project: Project) -> list[Diagnostic]:
    """With the inventory's `exceptions.approver_not_author`, an exception whose approver is
    the Git author of the commit that added it (found with `git log -G` on its id line, oldest
    first) is an error at its `approved_by`. Exceptions not committed yet are left alone: the
    rule is about who wrote the commit."""
    if not project.exceptions or not project.inventory.exception_rules.approver_not_author:
        return []
    import git

    found: list[Diagnostic] = []
    try:
        opened = git.Repo(repo, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        return []
    with opened:
        top = Path(opened.working_tree_dir or repo).resolve()
        for item in project.exceptions:
            path = (repo.resolve() / item.file).relative_to(top).as_posix()
            # A POSIX basic regex (git's -G): ids hold only [A-Za-z0-9_.+-].
            name = re.sub(r"([.+])", r"[\1]", item.entry.id)
            pattern = f"id:[[:space:]]*[\"']*{name}[\"']*[[:space:]]*$"
            try:
                log = opened.git.log(
                    "--reverse", "--format=%H%x00%an%x00%ae", "-G", pattern, "--", path
                )
            except git.GitCommandError:
                continue
            first = log.splitlines()[0] if log.strip() else ""
            if not first:
                continue
            sha, name, email = first.split("\0")
            approver = item.entry.approved_by.strip().lower()
            if approver in {name.strip().lower(), email.strip().lower()} or (
                email and email.lower() in approver
            ):
                found.append(
                    Diagnostic(
                        item.field_locations["approved_by"],
                        f"exception '{item.entry.id}' is approved by {item.entry.approved_by}, "
                        f"who authored the commit that added it ({sha[:10]}); another person "
                        "must approve it (inventory exceptions.approver_not_author)",
                    )
                )
    return found
