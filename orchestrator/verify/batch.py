"""Many shell commands in one remote script, each answer framed so none can be confused.

`build_batch_script(commands, marker)` writes a POSIX shell script that runs every command in a
subshell of its own (through `eval`, so one malformed command cannot break the others), with its
stdout and stderr in temporary files on the host, and then prints one line per command:
`<marker> <index> <exit status> <base64 stdout> <base64 stderr>`, and `<marker> end` last. The
marker is random per batch, and every answer is base64, so nothing a command prints can forge or
split a frame. `parse_batch_output` reads the frames back and says when the output was cut short.
Pure: no I/O, no subprocess.
"""

from __future__ import annotations

import base64
import binascii
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

_PRELUDE = r"""d=$(mktemp -d) || exit 97
trap 'rm -rf "$d"' EXIT
f() { printf '%s %s %s ' "$m" "$1" "$2"; base64 -w0 "$d/o"; printf ' '; base64 -w0 "$d/e"; echo; }
"""


@dataclass(frozen=True)
class Answer:
    """What the host answered to one command."""

    exit_status: int
    stdout: bytes = b""
    stderr: bytes = b""


class BatchOutputError(RuntimeError):
    """The batch's output is incomplete: the connection dropped or the script was killed."""


def build_batch_script(commands: Sequence[str], marker: str) -> str:
    """One script running `commands` in order, whatever each one's exit status."""
    lines = [f"m={shlex.quote(marker)}", _PRELUDE]
    lines += [
        f'( eval {shlex.quote(command)} ) >"$d/o" 2>"$d/e" </dev/null; f {index} $?'
        for index, command in enumerate(commands)
    ]
    lines.append('echo "$m end"')
    return "\n".join(lines) + "\n"


def parse_batch_output(stdout: bytes, marker: str, count: int) -> list[Answer]:
    """The answers of a batch of `count` commands, in order. Raises BatchOutputError."""
    found: dict[int, Answer] = {}
    ended = False
    head = marker.encode() + b" "
    for line in stdout.split(b"\n"):
        if not line.startswith(head):
            continue
        fields = line[len(head) :].split(b" ")
        if fields == [b"end"]:
            ended = True
        elif len(fields) == 4:
            try:
                index, status = int(fields[0]), int(fields[1])
                found[index] = Answer(
                    status, base64.b64decode(fields[2]), base64.b64decode(fields[3])
                )
            except (ValueError, binascii.Error) as error:
                raise BatchOutputError(f"unreadable answer in batch output: {error}") from None
    if not ended or len(found) != count:
        raise BatchOutputError(
            f"batch output cut short: {len(found)} of {count} answers"
            + ("" if ended else ", no end marker")
        )
    return [found[index] for index in range(count)]
