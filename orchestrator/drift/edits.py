"""Partial edits of files, per host: from the content the probe sent to the content to write.

The probe sends the whole current content of every file that `lines:`, `settings:` or `blocks:`
edit (`pf <path> -`: no hash matches `-`). `plan_edited_file` applies every edit of one file in
converge order to it, keeping each edit's before and after, so a plan shows the diff of each
change alone, and the apply writes the result once, guarded by the hash the probe saw. A file
that cannot be edited (missing without `create: true`, not a regular file, too large, not UTF-8
text, a block marker without its pair) is a problem of the host's plan, at the entry's location.
Pure; imports the package's model, `drift.observed` and `drift.textedit` only.
"""

from __future__ import annotations

from orchestrator.drift.observed import Observation
from orchestrator.drift.textedit import TextEditError, apply_edit
from orchestrator.model.base import Frozen
from orchestrator.model.desired import DesiredState, Resource
from orchestrator.model.policy import Block, FileEdit, LineEdit, Setting

# The new content travels inside one shell command (base64): well below Linux's 128 KiB limit
# for one argument. Files a package owns in /etc are far smaller.
EDIT_MAX_BYTES = 65536


class EditStep(Frozen):
    resource_id: str
    before: str
    after: str


class EditedFile(Frozen):
    """One file's edits on one host: the content seen (None: the file is missing) and each
    edit's step; `content` is what the file must become."""

    path: str
    seen_sha256: str | None
    steps: tuple[EditStep, ...]

    @property
    def content(self) -> str:
        return self.steps[-1].after if self.steps else ""

    @property
    def changes(self) -> bool:
        return any(step.before != step.after for step in self.steps)


def is_edit(resource: Resource) -> bool:
    return isinstance(resource.spec, FileEdit)


def edit_path(resource: Resource) -> str:
    assert isinstance(resource.spec, FileEdit)
    return resource.spec.path


def edited_paths(desired: DesiredState) -> list[str]:
    """Every file the host's edits touch, once each, in converge order."""
    return list(dict.fromkeys(edit_path(r) for r in desired.resources if is_edit(r)))


def edits_of(desired: DesiredState, path: str) -> list[Resource]:
    return [r for r in desired.resources if is_edit(r) and edit_path(r) == path]


def plan_edited_file(path: str, edits: list[Resource], observed: Observation) -> EditedFile | str:
    """The file's edits applied in order to what the probe saw, or the problem that forbids it."""
    first = edits[0]
    seen = observed.paths.get(path)
    kind = seen.kind if seen else "missing"
    if kind == "missing":
        if not any(isinstance(r.spec, FileEdit) and r.spec.create for r in edits):
            return _problem(first, "the file does not exist (set create: true to create it)")
        text, sha = "", None
    elif kind != "file" or seen is None:
        return _problem(first, f"not a regular file ({kind}); edits need one")
    elif seen.content is None:
        return _problem(first, "the file is too large to edit in place")
    else:
        sha = seen.sha256
        try:
            text = seen.content.decode("utf-8")
        except UnicodeDecodeError:
            return _problem(first, "the file is not UTF-8 text; edits need text")
    steps = []
    for resource in edits:
        try:
            after = apply_edit(text, resource)
        except TextEditError as error:
            return _problem(resource, str(error))
        steps.append(EditStep(resource_id=resource.id, before=text, after=after))
        text = after
    if len(text.encode()) > EDIT_MAX_BYTES:
        return _problem(first, f"the edited file would exceed {EDIT_MAX_BYTES} bytes")
    return EditedFile(path=path, seen_sha256=sha, steps=tuple(steps))


def _problem(resource: Resource, reason: str) -> str:
    return f"{resource.location}: cannot edit {edit_path(resource)}: {reason}"


def plan_edited_files(
    desired: DesiredState, observed: Observation
) -> tuple[dict[str, EditedFile], list[str]]:
    """Every edited file of the host, and the problems (each a located line of text)."""
    planned: dict[str, EditedFile] = {}
    problems: list[str] = []
    for path in edited_paths(desired):
        result = plan_edited_file(path, edits_of(desired, path), observed)
        if isinstance(result, str):
            problems.append(result)
        else:
            planned[path] = result
    return planned, problems


def edit_problems(desired: DesiredState, observed: Observation) -> list[str]:
    return plan_edited_files(desired, observed)[1]


def describe_edit(resource: Resource, created: bool) -> str:
    """A plan's one-line summary of an edit, e.g. `/etc/login.defs: PASS_MAX_DAYS = 90`."""
    spec = resource.spec
    path = edit_path(resource)
    what = ""
    if isinstance(spec, Setting):
        section = f"[{spec.section}] " if spec.section else ""
        what = f"{section}{spec.key} = {spec.value}" if spec.state == "present" else ""
        what = what or f"{section}{spec.key} removed"
    elif isinstance(spec, LineEdit):
        target = spec.line if spec.match is None or spec.state == "present" else spec.match
        what = f"line {target!r}" + (" removed" if spec.state == "absent" else "")
    elif isinstance(spec, Block):
        what = f"block {spec.name}" + (" removed" if spec.state == "absent" else "")
    return f"{path}{' (created)' if created else ''}: {what}"
