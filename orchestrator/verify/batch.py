"""Many shell commands in one remote script, each answer kept apart so none can be confused.

`build_batch_script(commands, marker)` writes a POSIX shell script that runs every command in a
subshell of its own (through `eval`, so one malformed command cannot break the others), its
stdout and stderr going to files `N.out` and `N.err` in a temporary folder on the host and its
exit status to a line `N STATUS` of the file `status`. At the end the folder travels back as one
gzipped tar, base64-encoded, between the lines `<marker> data` and `<marker> end`. Nothing a
command prints reaches the script's own output, so nothing can forge or split an answer; and
packing once, not per command, keeps the work on the host to the commands themselves (tar,
gzip and base64 are in every Debian). `parse_batch_output` unpacks the answers and says when the
output was cut short. Pure: no I/O beyond memory, no subprocess.
"""

from __future__ import annotations

import base64
import binascii
import io
import shlex
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass

_PRELUDE = """d=$(mktemp -d) || exit 97
trap 'rm -rf "$d"' EXIT
"""
_PACK = """echo "$m data"
tar -C "$d" -czf - . | base64 -w0
echo
echo "$m end"
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
        f'( eval {shlex.quote(command)} ) >"$d/{index}.out" 2>"$d/{index}.err" </dev/null; '
        f'echo "{index} $?" >>"$d/status"'
        for index, command in enumerate(commands)
    ]
    lines.append(_PACK)
    return "\n".join(lines)


def parse_batch_output(stdout: bytes, marker: str, count: int) -> list[Answer]:
    """The answers of a batch of `count` commands, in order. Raises BatchOutputError."""
    lines = stdout.split(b"\n")
    head, tail = f"{marker} data".encode(), f"{marker} end".encode()
    if head not in lines or tail not in lines[lines.index(head) :]:
        raise BatchOutputError("batch output cut short (no end marker)")
    packed = lines[lines.index(head) + 1]
    try:
        with tarfile.open(fileobj=io.BytesIO(base64.b64decode(packed)), mode="r:gz") as tar:
            files = {
                member.name.removeprefix("./"): _read(tar, member)
                for member in tar.getmembers()
                if member.isfile()
            }
    except (binascii.Error, tarfile.TarError, EOFError, OSError) as error:
        raise BatchOutputError(f"unreadable batch output: {error}") from None
    statuses = dict(
        line.split(" ", 1) for line in files.get("status", b"").decode().splitlines() if line
    )
    missing = [index for index in range(count) if str(index) not in statuses]
    if missing:
        raise BatchOutputError(f"batch output cut short: {count - len(missing)} of {count} answers")
    return [
        Answer(
            int(statuses[str(index)]),
            files.get(f"{index}.out", b""),
            files.get(f"{index}.err", b""),
        )
        for index in range(count)
    ]


def _read(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    return handle.read() if handle is not None else b""
