"""Partial edits of files compiled into one guarded write per file.

The controller has already computed each edited file's new content from what the probe saw
(`drift.edits`); the host gets one command per file that writes it only if the file still has
the hash the probe saw (else it fails, naming the file: a file changed in between is never
silently overwritten), through a temporary file in the same folder that takes the old file's
owner, group and mode and is renamed over it (atomic). All edits of a file make one write.
Without an observation (golden cases, `explain`) edits compile to nothing: what to write depends
on the host's file. Pure; imports the package's model and `drift` only.
"""

from __future__ import annotations

import base64
import hashlib
from shlex import quote

from orchestrator.compiler.opspec import OpSpec
from orchestrator.drift.edits import EditedFile, edit_path, edits_of, is_edit, plan_edited_file
from orchestrator.drift.observed import Observation
from orchestrator.model.desired import DesiredState, Resource


def edit_operations(
    desired: DesiredState, chosen: list[Resource], observed: Observation | None
) -> list[OpSpec]:
    """One write per file that a chosen edit changes, in the order the files first appear."""
    if observed is None:
        return []
    ops = []
    for path in dict.fromkeys(edit_path(r) for r in chosen if is_edit(r)):
        planned = plan_edited_file(path, edits_of(desired, path), observed)
        if isinstance(planned, str) or not planned.changes:
            continue  # a problem fails the host's plan before anything is compiled
        ids = {r.id for r in chosen}
        edits = [r for r in edits_of(desired, path) if r.id in ids]
        first = edits[0]
        ops.append(
            OpSpec(
                operation="server.shell",
                args={"commands": [guarded_write_command(planned)]},
                effect=(path,),  # and a sibling temp file, renamed over it
                resource_ids=tuple(r.id for r in edits),
                policy=first.policy,
                location=first.location,
                description=f"edit {path}",
            )
        )
    return ops


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def guarded_write_command(planned: EditedFile) -> str:
    """POSIX sh (hosts run dash): check the hash, write a sibling temp file, rename it over."""
    f = quote(planned.path)
    seen = planned.seen_sha256 or "missing"
    body = quote(base64.b64encode(planned.content.encode()).decode())
    new = _sha256(planned.content)
    keep = (
        'chmod 644 "$t"'
        if planned.seen_sha256 is None
        else 'chown --reference="$f" "$t" && chmod --reference="$f" "$t"'
    )
    make_dir = 'mkdir -p "$(dirname "$f")" && ' if planned.seen_sha256 is None else ""
    return "\n".join(
        [
            f"f={f}",
            'if [ -e "$f" ] || [ -L "$f" ]; then cur=$(sha256sum < "$f" | cut -d" " -f1); '
            "else cur=missing; fi",
            f'if [ "$cur" != {seen} ]; then echo "patchring: error: $f changed since it was '
            f'probed (sha256 $cur, the plan saw {seen}); not overwritten: plan again" >&2; '
            "exit 1; fi",
            f'{make_dir}t=$(mktemp "$f.patchring-XXXXXX") || exit 1',
            "trap 'rm -f \"$t\"' EXIT",
            f'printf %s {body} | base64 -d > "$t" || exit 1',
            f'[ "$(sha256sum < "$t" | cut -d" " -f1)" = {new} ] || '
            '{ echo "patchring: error: $f: the written content has the wrong hash" >&2; exit 1; }',
            f'{keep} && sync "$t" && mv -f "$t" "$f"',
        ]
    )
