"""Partial edits of a file's text: a line, a key's setting, a block between markers.

Each edit is a pure function old text -> new text that leaves every other line byte for byte as
it was, and is idempotent (applying it to its own result changes nothing). The formats are read
by `verify.probes` (`find_setting`, `find_block`), the same functions the generated checks use.
Rules, per edit:
- line present: every line `match` finds becomes `line`; else, when `line` is already there,
  nothing; else it is inserted after the last line `after` finds, before the first `before`
  finds, or at the end. Absent: every line `match` finds (or equal to `line`) is removed.
- setting present: every active line of the key (in its section) gets the value, keeping its
  own indentation and separator (sshd reads the first, login.defs the last: changing all is
  right for both). A commented-out default (`#PermitRootLogin yes`) stays as is; a missing key
  goes after the last such comment of it, else at the end of its scope (for `space` files before
  sshd's first `Match`; for INI at the end of its section, which is created when missing).
  Absent: every active line of the key is removed.
- block present: the lines between its markers are replaced (the markers are inserted as for a
  line when missing). Absent: the markers and what is between them are removed.
Pure; imports the package's model and `verify.probes` (its readers) only.
"""

from __future__ import annotations

import re

from orchestrator.model.desired import Resource
from orchestrator.model.policy import Block, LineEdit, Setting
from orchestrator.verify.probes import (
    block_markers,
    find_block,
    find_setting,
    line_bodies,
    same_key,
    setting_parts,
    setting_scope,
    split_lines,
)

_SEPARATOR = {"space": " ", "equals": "=", "ini": "="}


class TextEditError(ValueError):
    """The file's text cannot take the edit (a block's BEGIN marker without its END)."""


def apply_edit(text: str, resource: Resource) -> str:
    """The text with one edit resource applied."""
    spec = resource.spec
    if isinstance(spec, LineEdit):
        return edit_line(text, spec)
    if isinstance(spec, Setting):
        return edit_setting(text, spec)
    if isinstance(spec, Block):
        return edit_block(text, spec, resource.content or "")
    raise TypeError(f"{resource.id} is not an edit")


def _joined(lines: list[str], at: int, new: list[str]) -> str:
    """`lines` with `new` (bodies) inserted before index `at`; a last line without its newline
    gets one when something follows it."""
    lines = list(lines)
    if at > 0 and not lines[at - 1].endswith("\n"):
        lines[at - 1] += "\n"
    return "".join(lines[:at] + [body + "\n" for body in new] + lines[at:])


def _insert_at(bodies: list[str], after: str | None, before: str | None) -> int:
    """Where a missing line goes: after the last line `after` finds, before the first line
    `before` finds, else at the end."""
    if after is not None:
        found = [i for i, body in enumerate(bodies) if re.search(after, body)]
        if found:
            return found[-1] + 1
    if before is not None:
        found = [i for i, body in enumerate(bodies) if re.search(before, body)]
        if found:
            return found[0]
    return len(bodies)


def edit_line(text: str, spec: LineEdit) -> str:
    lines = split_lines(text)
    bodies = line_bodies(text)
    pattern = re.compile(spec.match) if spec.match is not None else None
    if spec.state == "absent":

        def doomed(body: str) -> bool:
            return bool(pattern.search(body)) if pattern is not None else body == spec.line

        return "".join(line for line, body in zip(lines, bodies, strict=True) if not doomed(body))
    assert spec.line is not None
    if pattern is not None:
        found = [i for i, body in enumerate(bodies) if pattern.search(body)]
        if found:
            for i in found:
                lines[i] = spec.line + lines[i][len(bodies[i]) :]
            return "".join(lines)
    if spec.line in bodies:
        return text
    return _joined(lines, _insert_at(bodies, spec.insert_after, spec.insert_before), [spec.line])


def edit_setting(text: str, spec: Setting) -> str:
    lines = split_lines(text)
    bodies = line_bodies(text)
    found = find_setting(bodies, spec.format, spec.section, spec.key)
    if spec.state == "absent":
        doomed = {i for i, _ in found}
        return "".join(line for i, line in enumerate(lines) if i not in doomed)
    assert spec.value is not None
    if found:
        for i, have in found:
            if have != spec.value:
                indent, key, sep, _ = _parts(bodies[i], spec)
                sep = sep or _SEPARATOR[spec.format]
                lines[i] = f"{indent}{key}{sep}{spec.value}" + lines[i][len(bodies[i]) :]
        return "".join(lines)
    new = f"{spec.key}{_SEPARATOR[spec.format]}{spec.value}"
    scopes = setting_scope(bodies, spec.format, spec.section)
    if not scopes:  # an INI section not in the file yet: a new one at the end
        gap = [""] if bodies and bodies[-1].strip() else []
        return _joined(lines, len(lines), [*gap, f"[{spec.section}]", new])
    return _joined(lines, _setting_slot(bodies, spec, scopes), [new])


def _parts(body: str, spec: Setting) -> tuple[str, str, str, str]:
    parts = setting_parts(body, spec.format)
    assert parts is not None  # found by find_setting, so it parses
    return parts


def _setting_slot(bodies: list[str], spec: Setting, scopes: list[range]) -> int:
    """After the last commented-out default of the key in scope, else after the last
    non-blank line of the (last) scope."""
    comment = re.compile(r"^\s*[#;]\s*(\S+?)(\s|=|$)")
    for scope in reversed(scopes):
        for i in reversed(scope):
            m = comment.match(bodies[i])
            if m and same_key(m.group(1), spec.key, spec.format):
                return i + 1
    last = scopes[-1]
    if last.stop == len(bodies):
        return len(bodies)
    filled = [i for i in last if bodies[i].strip()]
    return filled[-1] + 1 if filled else last.start


def edit_block(text: str, spec: Block, content: str) -> str:
    lines = split_lines(text)
    bodies = line_bodies(text)
    begin, end = block_markers(spec.marker, spec.name)
    try:
        span = find_block(bodies, begin, end)
    except ValueError as error:
        raise TextEditError(str(error)) from None
    if spec.state == "absent":
        if span is None:
            return text
        return "".join(lines[: span[0]] + lines[span[1] + 1 :])
    inner = line_bodies(content)
    if span is None:
        at = _insert_at(bodies, spec.insert_after, spec.insert_before)
        return _joined(lines, at, [begin, *inner, end])
    if bodies[span[0] + 1 : span[1]] == inner:
        return text
    return _joined(lines[: span[0] + 1] + lines[span[1] :], span[0] + 1, inner)
